#!/usr/bin/env bash
# FHIR search throughput: `Observation?patient=X&_count=200` (one chart page) against a demo
# clinic with 200 patients x 200 vital-sign readings added, driven by wrk (Debian's `wrk`).
# Baselines in the same run: the same search with a date filter, and the JSON API's chart read
# of the same patients. Needs a release build (cargo build --release -p keta-cli) and sqlite3.
#
# Usage: bench/fhir-search.sh [SECONDS] [CONNECTIONS]     (defaults 20 s, 16 connections)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KETA_BIN="${KETA_BIN:-$ROOT/target/release/keta}"
SECS="${1:-20}"
CONNS="${2:-16}"
for need in wrk sqlite3 curl; do command -v "$need" >/dev/null || { echo "error: $need is missing: apt-get install -y wrk sqlite3 curl" >&2; exit 1; }; done
[ -x "$KETA_BIN" ] || { echo "error: $KETA_BIN is missing: cargo build --release -p keta-cli" >&2; exit 1; }

WORK=$(mktemp -d)
PID=
cleanup() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$((20000 + RANDOM % 20000))
BASE="http://127.0.0.1:$PORT"
(cd "$WORK" && exec "$KETA_BIN" demo --bind "127.0.0.1:$PORT" --fresh >"$WORK/server.log" 2>&1) &
PID=$!
for _ in $(seq 1 600); do curl -fs "$BASE/healthz" >/dev/null 2>&1 && break; sleep 0.5; done

# 200 patients with a session, 200 readings each, one a minute (the issue's data set).
DB="$WORK/keta-data/demo.db"
sqlite3 "$DB" "PRAGMA busy_timeout = 10000;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200),
pp AS (SELECT p.id AS pid, (SELECT MIN(s.id) FROM sessions s WHERE s.patient_id = p.id) AS sid FROM patients p ORDER BY p.id)
INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source)
SELECT sid, pid, 1767225600000 + i * 60000, 110 + i % 30, 70 + i % 15, 60 + i % 40, 95 + i % 5, 12 + i % 6, 'monitor'
FROM (SELECT * FROM pp WHERE sid IS NOT NULL LIMIT 200), n;" >/dev/null
IDS=$(sqlite3 "$DB" "SELECT patient_id FROM vitals GROUP BY patient_id HAVING COUNT(*) >= 200 ORDER BY patient_id LIMIT 200" | tr '\n' ' ')
NPAT=$(echo $IDS | wc -w)
echo "== $NPAT patients with >= 200 readings ($BASE)"

CODE=$("$KETA_BIN" totp KETADEMOPRESCRIBERAAAAAAAAAAAAAA)
COOKIE=$(curl -si -H 'content-type: application/json' \
  -d "{\"username\":\"dr.demo\",\"password\":\"ketamine demo clinic\",\"code\":\"$CODE\"}" \
  "$BASE/api/v1/auth/login" | grep -i '^set-cookie' | sed 's/.*\(__Host-keta=[0-9a-f]*\).*/\1/' | tr -d '\r')

cat >"$WORK/rotate.lua" <<LUA
local ids = {}
for id in string.gmatch("$IDS", "%d+") do ids[#ids + 1] = id end
local i = 0
request = function()
  i = i + 1
  local path = string.gsub(os.getenv("KETA_PATH"), "{id}", ids[(i % #ids) + 1])
  return wrk.format("GET", path, { ["cookie"] = "$COOKIE" })
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f req/s, p50 %.1f ms, p99 %.1f ms, errors %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA

run() {
  local label=$1 path=$2
  # Every response must be 200 before timing it.
  local first=${IDS%% *}
  local code; code=$(curl -s -o /dev/null -w '%{http_code}' -H "cookie: $COOKIE" "$BASE${path//\{id\}/$first}")
  [ "$code" = 200 ] || { echo "error: $label answered $code" >&2; exit 1; }
  printf '%-58s ' "$label"
  KETA_PATH="$path" wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$WORK/rotate.lua" "$BASE" | grep RESULT | sed 's/RESULT //'
}
run "FHIR Observation?patient=X&_count=200" "/fhir/R4/Observation?patient={id}&_count=200"
run "FHIR ... &date=ge2026-01-01T01:00:00Z (date filter)" "/fhir/R4/Observation?patient={id}&_count=200&date=ge2026-01-01T01:00:00Z"
run "JSON API chart /api/v1/patients/X/chart (baseline)" "/api/v1/patients/{id}/chart"
