#!/usr/bin/env bash
# Bedside monitors end to end (docs/monitors.md): starts a fresh demo clinic with the MLLP
# listener on, then e2e/monitors.py sends HL7 v2 messages with an outside client, the PyPI
# `hl7` package's `mllp_send`, and checks them through the API and the review page.
# Needs python3 with venv and the keta binary (KETA_BIN, default target/debug/keta); the
# client is pinned and installed into target/py-venv-hl7.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KETA_BIN="${KETA_BIN:-$ROOT/target/debug/keta}"
VENV="$ROOT/target/py-venv-hl7"
PIN=hl7==0.4.5

[ -x "$KETA_BIN" ] || { echo "error: $KETA_BIN is missing: cargo build -p keta-cli --bin keta" >&2; exit 1; }
if ! "$VENV/bin/python" -c 'from importlib.metadata import version; import sys; sys.exit(version("hl7") != "0.4.5")' 2>/dev/null; then
  python3 -m venv "$VENV" || { echo "error: python3 -m venv failed: apt-get install -y python3-venv" >&2; exit 1; }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PIN"
fi

WORK=$(mktemp -d)
PID=
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
PORT=$(free_port)
MPORT=$(free_port)
BASE="http://127.0.0.1:$PORT"
echo "== demo clinic on $BASE, monitors on 127.0.0.1:$MPORT (data in $WORK)"
(cd "$WORK" && exec "$KETA_BIN" demo --bind "127.0.0.1:$PORT" --mllp-bind "127.0.0.1:$MPORT" --fresh >"$WORK/server.log" 2>&1) &
PID=$!
for _ in $(seq 1 600); do
  curl -fs "$BASE/healthz" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "error: keta demo exited" >&2; exit 1; }
  sleep 0.5
done
curl -fs "$BASE/healthz" >/dev/null || { tail -50 "$WORK/server.log" >&2; echo "error: keta demo did not come up" >&2; exit 1; }

KETA_BASE="$BASE" KETA_MLLP="127.0.0.1:$MPORT" KETA_BIN="$KETA_BIN" MLLP_SEND="$VENV/bin/mllp_send" \
  "$VENV/bin/python" e2e/monitors.py || { tail -30 "$WORK/server.log" >&2; exit 1; }

# No patient data in the logs: the messages' patient identifier and raw segments never appear
# (while the outcome lines do, so the log was written at all).
grep -q 'monitor message' "$WORK/server.log" || { echo "FAIL: no monitor outcome in the server log (is KETA_LOG filtering it?)" >&2; exit 1; }
for needle in 'SIM-1' 'MSH|' 'OBX|' 'PID|'; do
  if grep -qF "$needle" "$WORK/server.log"; then
    echo "FAIL: the server log contains '$needle' from a monitor message" >&2
    exit 1
  fi
done
echo "ok: the server log carries no patient identifier or raw message"
