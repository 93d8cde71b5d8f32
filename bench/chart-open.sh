#!/usr/bin/env bash
# Chart-open latency, one client (docs/benchmarks.md, "Cold connections"): serves the demo
# clinic in a PostgreSQL database with the given binary, signs in as dr.demo, opens 15
# patients' charts once each (printing the first three: cold statements), then 150 more in
# turn, and prints p50 / p90 / p99 of those 150. Run two binaries one after the other on the
# same database to compare them.
#
# Usage: bench/chart-open.sh KETA_BINARY LABEL [DATABASE_URL]
#   default database postgres://postgres@127.0.0.1:5432/keta_chart_open (created if missing;
#   the demo clinic is built there on first use and reused after)
set -euo pipefail
BIN=$1; LABEL=$2
SERVER=postgres://postgres@127.0.0.1:5432
URL=${3:-$SERVER/keta_chart_open}
[ $# -ge 3 ] || psql "$SERVER/postgres" -qAtc "SELECT 1 FROM pg_database WHERE datname = 'keta_chart_open'" | grep -q 1 \
  || psql "$SERVER/postgres" -qc "CREATE DATABASE keta_chart_open"
PORT=${KETA_CHART_PORT:-18080}; BASE=http://127.0.0.1:$PORT
WORK=$(mktemp -d)
"$BIN" demo --database-url "$URL" --bind "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 600); do curl -fs "$BASE/healthz" >/dev/null 2>&1 && break; sleep 1; done
for _ in 1 2 3; do
  code=$("$BIN" totp KETADEMOPRESCRIBERAAAAAAAAAAAAAA)
  curl -fsS -D "$WORK/login.h" -o /dev/null -H 'content-type: application/json' \
    -d "{\"username\":\"dr.demo\",\"password\":\"ketamine demo clinic\",\"code\":\"$code\"}" "$BASE/api/v1/auth/login" && break
  sleep $((31 - $(date +%s) % 30))   # a code is accepted once per 30 s step
done
COOKIE=$(grep -i '^set-cookie' "$WORK/login.h" | sed 's/.*\(__Host-keta=[0-9a-f]*\).*/\1/' | tr -d '\r')
IDS=$(curl -fsS -H "cookie: $COOKIE" "$BASE/api/v1/patients?limit=15" | jq -r 'if type=="array" then .[] else .items[] end | .id' | head -15)
for id in $IDS; do curl -s -o /dev/null -w "$LABEL first open %{time_total} s\n" -H "cookie: $COOKIE" "$BASE/patients/$id"; done | head -3
for _ in $(seq 1 10); do
  for id in $IDS; do curl -s -o /dev/null -w '%{time_total}\n' -H "cookie: $COOKIE" "$BASE/patients/$id"; done
done | sort -n | awk -v l="$LABEL" '{a[NR]=$1} END {printf "%s: n=%d p50=%.1f ms p90=%.1f ms p99=%.1f ms\n", l, NR, a[int(NR*0.5)]*1000, a[int(NR*0.9)]*1000, a[int(NR*0.99)]*1000}'
