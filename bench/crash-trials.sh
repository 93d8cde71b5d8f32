#!/usr/bin/env bash
# Kill -9 trials on both backends (docs/reliability.md): `keta crash-trials` builds the demo
# clinic in a fresh database, serves it with `keta serve`, has concurrent writers record vitals,
# questionnaire responses and ledger counts over HTTP, kills the server at a random moment,
# checks that every acknowledged write is there exactly once (PRAGMA integrity_check on SQLite,
# `keta audit verify` on both), restarts it and goes on. Exits non-zero on any loss or duplicate.
#
#   bench/crash-trials.sh [TRIALS] [WRITERS]        (defaults: 100 trials, 12 writers)
#   KETA_CRASH_BACKENDS="sqlite" bench/crash-trials.sh 2     a quick SQLite-only run
#   KETA_CRASH_RELEASE=1 ...                                  use a release build
#   KETA_CRASH_PG=postgres://postgres@127.0.0.1:5432          the PostgreSQL server (a database
#                                                             is created for the run and dropped)
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${1:-100}
WRITERS=${2:-12}
BACKENDS=${KETA_CRASH_BACKENDS:-sqlite postgres}
PG=${KETA_CRASH_PG:-postgres://postgres@127.0.0.1:5432}
if [ -n "${KETA_CRASH_RELEASE:-}" ]; then
  cargo build --release --locked -p keta-cli --bin keta
  KETA=$PWD/target/release/keta
else
  cargo build --locked -p keta-cli --bin keta
  KETA=$PWD/target/debug/keta
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/keta-crash.XXXXXX")
DB=keta_crash_$$
cleanup() {
  if [[ " $BACKENDS " == *" postgres "* ]]; then
    psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
status=0
for b in $BACKENDS; do
  case $b in
    sqlite) URL="sqlite://$WORK/crash.db" ;;
    postgres)
      psql -q "$PG/postgres" -c "CREATE DATABASE $DB" >/dev/null
      URL="$PG/$DB" ;;
    *) echo "unknown backend $b (sqlite or postgres)" >&2; exit 2 ;;
  esac
  "$KETA" crash-trials --database-url "$URL" --trials "$TRIALS" --writers "$WRITERS" \
    --server-log "$WORK/server-$b.log" || status=1
done
exit $status
