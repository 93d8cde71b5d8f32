#!/usr/bin/env bash
# A real disk-full run on SQLite (docs/reliability.md "Disk full"): the demo clinic is
# copied onto a small tmpfs, served by a real `keta serve`, and signed in to; the rest of the
# tmpfs is then filled with a file, and patients are registered over HTTP until the server
# answers 507. Then it checks that readiness (/healthz) reports `disk_full`, a read still works,
# the server is still running, and, once the filler file is deleted, readiness is 200 again and
# writes succeed. At the end every acknowledged write must be in the database, and
# `PRAGMA integrity_check` and `keta audit verify` must pass (also checked while the disk is full).
#
#   bench/disk-full.sh                 (KETA_DF_SIZE=16m the tmpfs size, KETA_DF_PORT=18931)
#
# Mounting a tmpfs needs root or an unprivileged user namespace (`unshare -rm`, used when not
# root); where neither is allowed the script says so and exits 2. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${KETA_DF_SIZE:-16m}
PORT=${KETA_DF_PORT:-18931}
BASE=http://127.0.0.1:$PORT

if [ -z "${KETA_DF_INNER:-}" ]; then
  cargo build --locked -p keta-cli --bin keta
  if [ "$(id -u)" -ne 0 ]; then
    unshare -rm true 2>/dev/null || { echo "disk-full: cannot mount a tmpfs (not root, no user namespaces)" >&2; exit 2; }
    exec unshare -rm env KETA_DF_INNER=1 "$0" "$@"
  fi
fi
KETA=$PWD/target/debug/keta
for tool in curl jq sqlite3; do
  command -v $tool >/dev/null || { echo "disk-full: needs $tool" >&2; exit 2; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/keta-diskfull.XXXXXX")
DISK=$WORK/disk
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  mountpoint -q "$DISK" && umount "$DISK"
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
wait_ready() {
  for _ in $(seq 1 120); do curl -s -o /dev/null "$BASE/healthz" && return 0; sleep 0.5; done
  fail "the server did not start (log: $WORK/server.log)"
}

echo "== the demo clinic, copied onto a $SIZE tmpfs"
"$KETA" demo --dir "$WORK/build" --bind "127.0.0.1:$PORT" >"$WORK/demo.log" 2>&1 &
SERVER=$!
wait_ready
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
mkdir -p "$DISK"
mount -t tmpfs -o size="$SIZE" tmpfs "$DISK"
cp "$WORK/build/demo.db" "$DISK/keta.db"
[ -f "$WORK/build/demo.db-wal" ] && cp "$WORK/build/demo.db-wal" "$DISK/keta.db-wal"
URL=sqlite://$DISK/keta.db

"$KETA" serve --database-url "$URL" --bind "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
wait_ready
[ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz")" = 200 ] || fail "not ready before the disk filled"

CODE=$("$KETA" totp KETADEMOPRESCRIBERAAAAAAAAAAAAAA)
COOKIE=$(curl -si -H 'content-type: application/json' \
  -d "{\"username\":\"dr.demo\",\"password\":\"ketamine demo clinic\",\"code\":\"$CODE\"}" \
  "$BASE/api/v1/auth/login" | grep -i '^set-cookie' | sed 's/.*\(__Host-keta=[0-9a-f]*\).*/\1/' | tr -d '\r')
CSRF=$(curl -s -H "cookie: $COOKIE" "$BASE/api/v1/auth/me" | jq -r .csrf_token)
SITE=$(curl -s -H "cookie: $COOKIE" "$BASE/api/v1/sites" | jq '.[0].id // .sites[0].id')
[ -n "$CSRF" ] && [ "$CSRF" != null ] && [ "$SITE" != null ] || fail "could not sign in as dr.demo"

register() { # MRN -> HTTP status; the problem body goes to $WORK/last.json
  curl -s -o "$WORK/last.json" -w '%{http_code}' -H "cookie: $COOKIE" -H "x-csrf-token: $CSRF" \
    -H 'content-type: application/json' "$BASE/api/v1/patients" \
    -d "{\"site_id\":$SITE,\"mrn\":\"$1\",\"given_name\":\"Disk\",\"family_name\":\"Full\",\"date_of_birth\":\"1980-01-01\",\"sex\":\"female\",\"indication\":\"depression\",\"diagnoses\":[\"F33.2\"]}"
}
check_db() { # integrity check and audit verify, on the live file
  [ "$(sqlite3 "$DISK/keta.db" 'PRAGMA integrity_check')" = ok ] || fail "integrity_check ($1)"
  "$KETA" audit verify --database-url "$URL" >"$WORK/verify.log" 2>&1 || { cat "$WORK/verify.log" >&2; fail "audit verify ($1)"; }
}
: >"$WORK/acked"

echo "== filling the disk"
dd if=/dev/zero of="$DISK/filler" bs=64k status=none 2>/dev/null || true
df -h "$DISK" | tail -1
full=
for i in $(seq 1 5000); do
  s=$(register "DF-$i")
  case $s in
    201) echo "DF-$i" >>"$WORK/acked" ;;
    507) full=DF-$i; break ;;
    *) cat "$WORK/last.json" >&2; fail "DF-$i answered $s (want 201 or 507)" ;;
  esac
done
[ -n "$full" ] || fail "no 507 after 5000 writes"
echo "507 at $full after $(wc -l <"$WORK/acked") acknowledged writes: $(jq -r .detail "$WORK/last.json")"
jq -e '.detail | contains("the database disk is full; nothing was saved")' "$WORK/last.json" >/dev/null || fail "507 problem text"

echo "== while full"
s=$(curl -s -o "$WORK/health.json" -w '%{http_code}' "$BASE/healthz")
[ "$s" = 503 ] && jq -e '.database == "disk_full"' "$WORK/health.json" >/dev/null || fail "readiness: $s $(cat "$WORK/health.json")"
echo "readiness: $s $(jq -c . "$WORK/health.json")"
s=$(curl -s -o /dev/null -w '%{http_code}' -H "cookie: $COOKIE" "$BASE/api/v1/auth/me")
[ "$s" = 200 ] || fail "a read answered $s"
echo "read /api/v1/auth/me: $s"
s=$(register "DF-again")
[ "$s" = 507 ] || { [ "$s" = 201 ] && echo DF-again >>"$WORK/acked"; }
kill -0 "$SERVER" || fail "the server stopped"
check_db "while full"

echo "== space freed"
rm -f "$DISK/filler"
s=$(curl -s -o "$WORK/health.json" -w '%{http_code}' "$BASE/healthz")
[ "$s" = 200 ] || fail "readiness after freeing space: $s $(cat "$WORK/health.json")"
s=$(register "DF-after")
[ "$s" = 201 ] || { cat "$WORK/last.json" >&2; fail "a write after freeing space answered $s"; }
echo DF-after >>"$WORK/acked"
echo "readiness 200, write 201"

kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
check_db "after"
stored=$(sqlite3 "$DISK/keta.db" "SELECT mrn FROM patients WHERE mrn LIKE 'DF-%'" | sort)
missing=$(comm -23 <(sort "$WORK/acked") <(echo "$stored"))
[ -z "$missing" ] || fail "acknowledged but missing: $missing"
echo "OK: $(wc -l <"$WORK/acked") acknowledged writes all stored; integrity_check and audit verify clean throughout"
