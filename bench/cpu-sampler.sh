#!/usr/bin/env bash
# Prints, every second: the time (epoch seconds), the cumulative CPU ticks (user + system) of every
# postgres process and of every keta process, and the ticks per second. Beside a benchmark, the
# difference between two lines over a phase is each side's CPU in it (docs/benchmarks.md).
hz=$(getconf CLK_TCK)
while :; do
  pg=0; k=0
  for p in /proc/[0-9]*; do
    [ -r "$p/stat" ] || continue
    read -r line < "$p/stat" 2>/dev/null || continue
    comm=${line#*(}; comm=${comm%%)*}
    rest=${line##*) }
    set -- $rest
    t=$(( ${12} + ${13} ))
    case $comm in
      postgres) pg=$((pg + t)) ;;
      keta*) k=$((k + t)) ;;
    esac
  done
  echo "$(date +%s.%N | cut -c1-14) $pg $k $hz"
  sleep 1
done
