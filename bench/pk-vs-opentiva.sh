#!/usr/bin/env bash
# The pharmacokinetics benchmark: Keta against opentiva 1.1.2 (Python/Cython, the
# only installable package with ketamine models, pk-reference §3.2), same workloads, same run:
#
#   (a) Domino, 70 kg, 0.5 mg/kg over 40 min, a 1-minute grid to 24 h;
#   (b) the same for 10,000 virtual patients with between-subject variability.
#
# It reports the time ratios and the largest difference between the two Domino curves
# (targets: Keta at least 50x faster on both; curves within 0.5 %), and exits 1 if a
# target is missed.
#
# opentiva is installed into a virtual environment inside the build folder
# (target/pk-bench-venv) from its source distribution: its shipped pkpd.c does not
# compile against Python 3.11, so the C file is deleted and rebuilt from pkpd.pyx with
# Cython < 3.1 (pip install --no-build-isolation).
#
# Usage: bench/pk-vs-opentiva.sh            (about 10 minutes: opentiva takes ~50 ms a patient)
#        OPENTIVA_PATIENTS=500 bench/pk-vs-opentiva.sh   (time 500 opentiva patients and
#                                            extrapolate to 10,000 linearly; says so)
# Environment: PATIENTS (default 10000), OPENTIVA_PATIENTS (default PATIENTS),
#              OPENTIVA_RUNS (timed runs of workload (a) in opentiva, default 20),
#              CARGO_TARGET_DIR (default target).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
ROOT="$TARGET_DIR/pk-bench-venv"
PATIENTS=${PATIENTS:-10000}
OPENTIVA_PATIENTS=${OPENTIVA_PATIENTS:-$PATIENTS}
OPENTIVA_RUNS=${OPENTIVA_RUNS:-20}
mkdir -p "$ROOT"

# 1. opentiva 1.1.2 in a virtual environment (reused when already there).
if [ ! -x "$ROOT/venv/bin/python" ]; then
  python3 -m venv "$ROOT/venv"
fi
PY="$ROOT/venv/bin/python"
if ! "$PY" -c "import importlib.metadata as m, opentiva.pkpd; assert m.version('opentiva') == '1.1.2'" 2>/dev/null; then
  echo "installing opentiva 1.1.2 from its source distribution into $ROOT/venv ..." >&2
  "$PY" -m pip install --quiet "cython<3.1" numpy scipy wheel setuptools
  rm -rf "$ROOT/sdist" "$ROOT/src"
  mkdir -p "$ROOT/sdist" "$ROOT/src"
  "$PY" -m pip download --quiet --no-deps --no-binary :all: "opentiva==1.1.2" -d "$ROOT/sdist"
  tar xzf "$ROOT/sdist/opentiva-1.1.2.tar.gz" -C "$ROOT/src"
  rm -f "$ROOT/src/opentiva-1.1.2/opentiva/pkpd.c"
  "$PY" -m pip install --quiet --no-build-isolation "$ROOT/src/opentiva-1.1.2"
fi

# 2. Keta, optimised, on the same machine in the same run.
echo "building keta (release) ..." >&2
cargo build --release --quiet -p keta-cli
"$TARGET_DIR/release/keta" pk bench --json --patients "$PATIENTS" --curve-csv "$ROOT/keta-curve.csv" > "$ROOT/keta.json"

# 3. opentiva on the same workloads, then the report.
"$PY" - "$ROOT" "$PATIENTS" "$OPENTIVA_PATIENTS" "$OPENTIVA_RUNS" <<'PYTHON'
import csv, json, math, os, platform, statistics, subprocess, sys, time

import numpy as np
import opentiva
import opentiva.ketamine as ketamine
import opentiva.pump as pump

root, patients, ot_patients, ot_runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
keta = json.load(open(os.path.join(root, "keta.json")))
curve = list(csv.DictReader(open(os.path.join(root, "keta-curve.csv"))))
WEIGHT, MG, DUR_S, END_S = 70.0, 35.0, 40 * 60, 24 * 60 * 60


def domino(v1_factor=1.0, k10_factor=1.0):
    m = ketamine.Domino(sex=0, age=40, weight=WEIGHT, height=170)
    m.v1 *= v1_factor
    m.k10 *= k10_factor
    return m


def run_opentiva(model):
    """0.5 mg/kg over 40 min as a user infusion (mg per second); opentiva evaluates it on
    its 1-second grid to 24 h. Returns plasma in ng/mL at 0, 1, ..., 1439 min."""
    p = pump.Pump(model=model, drug_concentration=10, end_time=END_S)
    p.add_infusion(start=0, dose=MG / DUR_S, duration=DUR_S)
    c = p.run()  # columns: seconds, Cp (ug/mL), Ce (ug/mL); rows 0 .. END_S-1
    return c[::60, 1] * 1000.0


# (a) one patient.
times = []
for _ in range(max(ot_runs, 1)):
    t0 = time.perf_counter()
    ot_curve = run_opentiva(domino())
    times.append(time.perf_counter() - t0)
ot_a = statistics.median(times)

# The curves: opentiva's Domino against Keta's (STANPUMP's 3-digit k-values, data/pk/domino.toml)
# and against Keta's engine on opentiva's own 4-digit constants (pk-reference §3.2).
def compare(column):
    worst_rel, worst_abs, at = 0.0, 0.0, None
    peak = max(ot_curve)
    for row in curve:
        t = int(float(row["time_min"]))
        if t >= len(ot_curve):
            continue  # opentiva stops one second before 24 h
        k, o = float(row[column]), float(ot_curve[t])
        worst_abs = max(worst_abs, abs(k - o))
        if o > 1e-9 * peak:
            rel = abs(k - o) / o
            if rel > worst_rel:
                worst_rel, at = rel, t
    return worst_rel, worst_abs, at

rel_data, abs_data, at_data = compare("keta_domino_ng_ml")
rel_engine, abs_engine, at_engine = compare("keta_domino_opentiva_constants_ng_ml")

# (b) the population: the same assumed variability as `keta pk bench` (log-normal CV 30 %
# on V1 and k10; Domino publishes none). The draws differ (numpy vs Keta's ChaCha8), the
# work does not: one full 24-h simulation per patient, then percentiles per minute.
omega = math.sqrt(math.log(1 + 0.3 ** 2))
rng = np.random.default_rng(1)
eta = rng.normal(0.0, omega, size=(ot_patients, 2))
t0 = time.perf_counter()
plasma = np.empty((ot_patients, 1440))
for i in range(ot_patients):
    plasma[i] = run_opentiva(domino(math.exp(eta[i, 0]), math.exp(eta[i, 1])))
    if (i + 1) % 1000 == 0:
        print(f"  opentiva population: {i + 1}/{ot_patients} patients, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
p05, med, p95 = np.percentile(plasma, [5, 50, 95], axis=0)
ot_b_measured = time.perf_counter() - t0
ot_b = ot_b_measured * patients / ot_patients
extrapolated = ot_patients != patients

k_a, k_b = keta["a_single"]["median_s"], keta["b_population"]["median_s"]
ratio_a, ratio_b = ot_a / k_a, ot_b / k_b
ok = ratio_a >= 50 and ratio_b >= 50 and rel_data <= 0.005

def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, shell=True).stdout.strip()
    except Exception:
        return "?"

cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip() or platform.processor()
lines = [
    f"Machine: {cpu}, {os.cpu_count()} cores; {sh('rustc --version')}; Python {platform.python_version()}, numpy {np.__version__}, opentiva {opentiva.__version__ if hasattr(opentiva, '__version__') else '1.1.2'}.",
    f"Workloads: Domino, {WEIGHT:g} kg, 0.5 mg/kg over 40 min (35 mg), 1-minute grid to 24 h. Keta {keta['build']} build.",
    "",
    "| Workload | Keta | opentiva 1.1.2 | Keta faster by |",
    "|---|---|---|---|",
    f"| (a) one patient, {keta['a_single']['points']} points (median of {keta['a_single']['runs']} Keta runs, {len(times)} opentiva runs) | {k_a * 1e6:.1f} µs | {ot_a * 1e3:.1f} ms | **{ratio_a:,.0f}×** |",
    f"| (b) {patients:,} virtual patients, bands per minute (median of {keta['b_population']['runs']} Keta runs{'; opentiva: ' + format(ot_patients, ',') + ' patients timed, extrapolated linearly' if extrapolated else ''}) | {k_b:.3f} s | {ot_b:.1f} s | **{ratio_b:,.0f}×** |",
    "",
    "Largest difference between the Domino curves (plasma, 0 to 1439 min):",
    "",
    f"- Keta's Domino (STANPUMP's 3-digit k-values) vs opentiva's (4-digit): **{rel_data * 100:.4f} %** (at {at_data} min; {abs_data:.4f} ng/mL at most).",
    f"- Keta's engine on opentiva's own constants vs opentiva: {rel_engine * 100:.2e} % (at {at_engine} min; {abs_engine:.2e} ng/mL at most).",
    "",
    f"Population at 40 min (Keta / opentiva, different random draws of the same assumed variability): median {keta['b_population']['median_at_40_min_ng_ml']:.1f} / {med[40]:.1f}, "
    f"5th {keta['b_population']['p05_at_40_min_ng_ml']:.1f} / {p05[40]:.1f}, 95th {keta['b_population']['p95_at_40_min_ng_ml']:.1f} / {p95[40]:.1f} ng/mL.",
    "",
    f"Targets (at least 50× faster on both; curves within 0.5 %): {'met' if ok else 'NOT MET'}.",
]
report = "\n".join(lines) + "\n"
open(os.path.join(root, "report.md"), "w").write(report)
print(report)
sys.exit(0 if ok else 1)
PYTHON
