#!/usr/bin/env bash
# The API contract, proven: validates docs/openapi.json with openapi-spec-validator,
# then starts a fresh demo clinic, signs in as the demo prescriber and then the administrator
# (password + TOTP, CSRF header) and runs schemathesis over the whole document with every check, a bounded number
# of examples per operation. Any failure fails the run. Operations added later are covered
# without changes here; per-operation exceptions, each with its reason, live in
# e2e/schemathesis.toml.
#
# Needs python3 with venv (.ci/run installs python3-venv) and the keta binary
# (KETA_BIN, default target/debug/keta). Tools are pinned and installed into target/py-venv.
# CONTRACT_EXAMPLES sets the examples per operation (default 20); CONTRACT_SEED the generator's
# seed (default 17: CI is reproducible; other seeds explore further).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KETA_BIN="${KETA_BIN:-$ROOT/target/debug/keta}"
VENV="$ROOT/target/py-venv"
EXAMPLES="${CONTRACT_EXAMPLES:-20}"
SEED="${CONTRACT_SEED:-17}"
PINS=(schemathesis==4.32.5 openapi-spec-validator==0.9.0)

[ -x "$KETA_BIN" ] || { echo "error: $KETA_BIN is missing: cargo build -p keta-cli --bin keta" >&2; exit 1; }
installed() {
  "$VENV/bin/python" - "${PINS[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if all(version(n) == v for n, v in (p.split("==") for p in sys.argv[1:])) else 1)
PY
}
if ! installed; then
  python3 -m venv "$VENV" || { echo "error: python3 -m venv failed: apt-get install -y python3-venv" >&2; exit 1; }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
fi

echo "== OpenAPI document: docs/openapi.json"
"$VENV/bin/openapi-spec-validator" docs/openapi.json

WORK=$(mktemp -d)
PID=
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
BASE="http://127.0.0.1:$PORT"
echo "== demo clinic on $BASE (data in $WORK)"
(cd "$WORK" && exec "$KETA_BIN" demo --bind "127.0.0.1:$PORT" --fresh >"$WORK/server.log" 2>&1) &
PID=$!
for _ in $(seq 1 600); do
  curl -fs "$BASE/healthz" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "error: keta demo exited" >&2; exit 1; }
  sleep 0.5
done
curl -fs "$BASE/healthz" >/dev/null || { tail -50 "$WORK/server.log" >&2; echo "error: keta demo did not come up" >&2; exit 1; }

# README "From a script": password and TOTP code; the cookie and the CSRF token for writes.
# Once per role whose permissions differ most: the prescriber (clinical work) and the
# administrator (users, sites, settings, audit), so every operation is reached signed in.
fuzz_as() {
  local user=$1 key=$2 code cookie csrf
  code=$("$KETA_BIN" totp "$key")
  curl -s -D "$WORK/login.headers" -o "$WORK/login.json" -H 'content-type: application/json' \
    -d "{\"username\":\"$user\",\"password\":\"ketamine demo clinic\",\"code\":\"$code\"}" \
    "$BASE/api/v1/auth/login"
  cookie=$(grep -i '^set-cookie' "$WORK/login.headers" | sed 's/.*\(__Host-keta=[0-9a-f]*\).*/\1/' | tr -d '\r')
  csrf=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("csrf_token", ""))' "$WORK/login.json")
  [ -n "$cookie" ] && [ -n "$csrf" ] || { cat "$WORK/login.headers" "$WORK/login.json" >&2; echo "error: $user could not sign in" >&2; return 1; }

  echo "== schemathesis as $user: every operation, --checks all, $EXAMPLES examples each"
  # Signing out would end the session the run uses; sign-in is throttled per address by
  # design (AC-9). Both are covered by the security suite instead.
  (cd "$WORK" && "$VENV/bin/st" --config-file "$ROOT/e2e/schemathesis.toml" run "$BASE/api/openapi.json" \
    --checks all \
    --max-examples "$EXAMPLES" \
    --workers 2 \
    --seed "$SEED" \
    --generation-deterministic \
    --no-color \
    --exclude-path /api/v1/auth/logout \
    --exclude-path /api/v1/auth/login \
    -H "Cookie: $cookie" \
    -H "X-CSRF-Token: $csrf")
}

status=0
fuzz_as dr.demo KETADEMOPRESCRIBERAAAAAAAAAAAAAA || status=$?
# A new TOTP step: a code is accepted once.
sleep_until_next_step() { local s; s=$(date +%s); sleep $((30 - s % 30 + 1)); }
if [ "$status" -eq 0 ]; then
  sleep_until_next_step
  fuzz_as admin.demo KETADEMOADMINISTRATORAAAAAAAAAAA || status=$?
fi
if [ "$status" -ne 0 ]; then
  echo "--- server log (last 60 lines)" >&2
  tail -60 "$WORK/server.log" >&2
  echo "error: schemathesis found contract failures (exit $status)" >&2
  exit "$status"
fi
echo "schemathesis: 0 failures"
