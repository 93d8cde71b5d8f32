#!/usr/bin/env bash
# What PostgreSQL itself allows on this machine for Keta's vitals write, with no Keta in the way
# (docs/benchmarks.md, "The PostgreSQL ceiling"). pgbench, 16 clients, prepared statements,
# on a copy of the tables the write touches (bench/pg-ceiling/schema.sql: sessions, sites,
# vitals, alerts and audit_log with Keta's indexes and foreign keys), after VACUUM ANALYZE, with
# the write's statements (bench/pg-ceiling/write.sql) sent four ways:
#
#   bare               BEGIN; one INSERT; COMMIT                      (keta bench's "bare commit")
#   one-trip-each      the vitals write's statements, a round trip each: the session row
#                      locked, the baseline with the site's settings, the reading, the open
#                      alerts, the audit entry
#   two-trips          the same statements in two round trips, as Keta sends them: BEGIN and
#                      all but the audit entry together, then the audit entry with COMMIT
#   pipelined          the same statements sent together, one round trip
#   pipelined+sealer   the pipelined script while a loop does what Keta's audit sealer does to
#                      the entries (migration 0028, bench/pg-ceiling/sealer.sql, seal.sql: the append-only
#                      trigger, one UPDATE per batch of unsealed entries, every 20 ms)
#   pipelined+side-chain  the same with a sealer of a design not built yet: the chain in an
#                      insert-only side table (bench/pg-ceiling/seal-side.sql), audit_log without
#                      its two chain indexes for the run
#   pipelined+blocks   the same with a sealer that writes one row per batch, a hash over its
#                      entries (bench/pg-ceiling/seal-blocks.sql), audit_log as for side-chain
#   eight-per-commit   eight such writes, to eight chairs (each client its own), in one
#                      transaction, pipelined: what a group commit across requests would do
#
# Usage: bench/pg-ceiling.sh [seconds per script, default 12] [rounds, default 2]
# Needs pgbench (postgresql-client) and PostgreSQL on 127.0.0.1:5432 with trust authentication
# (KETA_BENCH_POSTGRES); creates and drops the database keta_pg_ceiling.
set -euo pipefail
cd "$(dirname "$0")/pg-ceiling"
SERVER="${KETA_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
SECS="${1:-12}"
ROUNDS="${2:-2}"
DB=keta_pg_ceiling
SCRIPTS=$(mktemp -d)
psql "$SERVER/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
trap 'psql "$SERVER/postgres" -qc "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"'"'$DB'"'"'" >/dev/null 2>&1 || true; psql "$SERVER/postgres" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true; rm -rf "$SCRIPTS"' EXIT

# The pgbench scripts, made from the one copy of the write's statements (write.sql).
write() { grep -v '^--' write.sql | sed "s/:s\b/:$1/g"; }
{ echo '\set s random(1, 200)'; echo 'BEGIN;'; write s; echo 'END;'; } >"$SCRIPTS/one-trip-each.sql"
{ echo '\set s random(1, 200)'; echo '\startpipeline'; echo 'BEGIN;'; write s | sed '$d'; echo '\endpipeline'
  echo '\startpipeline'; write s | tail -n 1; echo 'END;'; echo '\endpipeline'; } >"$SCRIPTS/two-trips.sql"
{ echo '\set s random(1, 200)'; echo '\startpipeline'; echo 'BEGIN;'; write s; echo 'END;'; echo '\endpipeline'; } \
  >"$SCRIPTS/pipelined.sql"
{ # Each client its own eight chairs, so the batches never wait on each other's row locks.
  for i in 1 2 3 4 5 6 7 8; do echo "\\set s$i (:client_id % 25) * 8 + $i"; done
  echo '\startpipeline'; echo 'BEGIN;'
  for i in 1 2 3 4 5 6 7 8; do write "s$i"; done
  echo 'END;'; echo '\endpipeline'
} >"$SCRIPTS/eight-per-commit.sql"
cp bare.sql "$SCRIPTS/"
psql "$SERVER/$DB" -q -f schema.sql
# The sealer's trigger, its function taken from the migration rather than copied.
sed -n '/^CREATE OR REPLACE FUNCTION audit_log_append_only/,/^\$\$;/p' \
  ../../crates/store/migrations/postgres/0028_audit_request_id.sql | psql "$SERVER/$DB" -q
psql "$SERVER/$DB" -q -f sealer.sql
cp "$SCRIPTS/pipelined.sql" "$SCRIPTS/pipelined+sealer.sql"
cp "$SCRIPTS/pipelined.sql" "$SCRIPTS/pipelined+side-chain.sql"
cp "$SCRIPTS/pipelined.sql" "$SCRIPTS/pipelined+blocks.sql"
psql "$SERVER/$DB" -qc "CREATE TABLE audit_blocks (first_seq BIGINT PRIMARY KEY, last_seq BIGINT NOT NULL, entries BIGINT NOT NULL, block_hash TEXT NOT NULL)"
psql "$SERVER/$DB" -qc "CREATE TABLE audit_chain (seq BIGINT PRIMARY KEY, chain_seq BIGINT NOT NULL UNIQUE, prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL)"
psql "$SERVER/$DB" -qc "VACUUM ANALYZE"
echo "| round | script | transactions/s | audited vitals writes/s |"
echo "|---:|---|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
  for script in bare one-trip-each two-trips pipelined pipelined+sealer pipelined+side-chain pipelined+blocks eight-per-commit; do
    # Nothing left unsealed from the script before.
    while [ "$(psql "$SERVER/$DB" -Atc "SELECT count(*) FROM audit_log WHERE chain_seq IS NULL")" -gt 0 ]; do
      psql "$SERVER/$DB" -q -f seal.sql
    done
    sealer=
    case $script in
      pipelined+sealer) seal=seal.sql ;;
      pipelined+side-chain)
        seal=seal-side.sql
        psql "$SERVER/$DB" -qc "INSERT INTO audit_chain SELECT seq, chain_seq, prev_hash, row_hash FROM audit_log WHERE seq > (SELECT coalesce(max(seq), 0) FROM audit_chain) AND chain_seq IS NOT NULL" \
          -c "DROP INDEX audit_log_unsealed" -c "DROP INDEX audit_log_chain_seq_idx" ;;
      pipelined+blocks)
        seal=seal-blocks.sql
        psql "$SERVER/$DB" -qc "INSERT INTO audit_blocks SELECT coalesce(max(seq), 0) + 1, max(seq), 0, '' FROM audit_log" \
          -c "DROP INDEX audit_log_unsealed" -c "DROP INDEX audit_log_chain_seq_idx" ;;
      *) seal= ;;
    esac
    if [ -n "$seal" ]; then
      # One connection, as Keta's sealer keeps: the batch, then 20 ms, again.
      (while :; do grep -v '^--' "$seal"; echo "SELECT pg_sleep(0.02);"; done | psql "$SERVER/$DB" -q) >/dev/null 2>&1 &
      sealer=$!
    fi
    tps=$(pgbench "$SERVER/$DB" -n -M prepared -c 16 -j 2 -T "$SECS" -f "$SCRIPTS/$script.sql" 2>/dev/null \
      | awk '/^tps/ {print int($3)}')
    case $script in
      bare) writes="-" ;;
      eight-per-commit) writes=$((tps * 8)) ;;
      *) writes=$tps ;;
    esac
    if [ -n "$sealer" ]; then # the loop, its psql, then the subshell
      pkill -P "$sealer" || true
      kill "$sealer" 2>/dev/null || true
      wait "$sealer" 2>/dev/null || true
    fi
    if [ "$script" = pipelined+side-chain ] || [ "$script" = pipelined+blocks ]; then
      psql "$SERVER/$DB" -qc "CREATE UNIQUE INDEX audit_log_chain_seq_idx ON audit_log(chain_seq)" \
        -c "CREATE INDEX audit_log_unsealed ON audit_log(seq) WHERE chain_seq IS NULL"
    fi
    echo "| $round | $script | $tps | $writes |"
  done
done
