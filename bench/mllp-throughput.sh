#!/usr/bin/env bash
# Bedside-monitor throughput (docs/benchmarks.md): a fresh demo clinic (SQLite, release build)
# with the MLLP listener on, then `keta monitor-sim` with 50 chairs:
#   1. the clinic's load: one reading per chair every 5 s (10 messages/s) for READINGS readings,
#      reporting the ACK latency (each ACK is sent after the commit);
#   2. the ceiling: the same 50 connections sending as fast as ACKs come back (interval 0).
# The ratio of (2) to the required 10 messages/s is the headroom. Every message is an ORU^R01
# with six OBX; the 50 chairs are mostly not registered or empty in the demo, so the run mixes
# recorded readings (chairs with a checked-in session) and review-list entries, both one
# transaction with the raw message kept.
set -euo pipefail
cd "$(dirname "$0")/.."
READINGS="${READINGS:-12}"
# KETA_BIN: an already-built release binary (skips the build).
if [ -n "${KETA_BIN:-}" ]; then
  KETA="$KETA_BIN"
else
  cargo build --release --locked -p keta-cli >/dev/null
  KETA="$PWD/target/release/keta"
fi
WORK=$(mktemp -d)
PID=
cleanup() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi; rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
PORT=$(port); MPORT=$(port)
(cd "$WORK" && exec "$KETA" demo --bind "127.0.0.1:$PORT" --mllp-bind "127.0.0.1:$MPORT" --fresh >"$WORK/server.log" 2>&1) &
PID=$!
for _ in $(seq 1 600); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.5; done
echo "== the clinic's load: 50 chairs, one reading every 5 s each, $READINGS readings per chair"
"$KETA" monitor-sim --to "127.0.0.1:$MPORT" --chairs 50 --interval-ms 5000 --readings "$READINGS" | tee "$WORK/load.json"
echo "== the ceiling: 50 chairs sending as fast as ACKs return, 200 readings per chair"
"$KETA" monitor-sim --to "127.0.0.1:$MPORT" --chairs 50 --interval-ms 0 --readings 200 | tee "$WORK/ceiling.json"
python3 - "$WORK/ceiling.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
print(f"headroom: {c['messages_per_s']:.0f} messages/s against the 10 messages/s 50 chairs need = {c['messages_per_s'] / 10:.0f}x")
PY
