#!/usr/bin/env bash
# Every check Keta has: formatting (cargo fmt --check), clippy with warnings as errors, the Rust workspace (unit, conformance and API suites; the
# PostgreSQL stories run when KETA_TEST_POSTGRES_URL is set, and with haproxy installed the cluster test,
# crates/cli/tests/cluster.rs, runs three `keta serve` instances behind it), the API contract (docs/openapi.json validated, then
# schemathesis against a demo clinic; needs python3-venv), the FHIR R4 output validated against the official
# R4 JSON schema and @medplum/core (e2e/fhir-validate.mjs), then the browser suite in
# e2e/ (Playwright driving Debian's Chromium against `keta demo` servers it starts).
# The browser suite needs `chromium` and `faketime` (apt) and Node 20; .ci/run installs them.
set -euo pipefail
cd "$(dirname "$0")"

cargo fmt --all -- --check || { echo "error: unformatted code: run cargo fmt --all" >&2; exit 1; }
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# Same targets and features as `cargo test --workspace`, so no dependency is compiled twice.
cargo build --locked --workspace --all-targets

echo "== API contract (e2e/contract.sh): OpenAPI validation, schemathesis against the demo clinic"
KETA_BIN="$PWD/target/debug/keta" e2e/contract.sh

echo "== FHIR R4 output (e2e/fhir-validate.mjs): every resource of the demo clinic against the R4 JSON schema and @medplum/core"
if [ ! -d e2e/node_modules/@medplum/core ] || [ ! -d e2e/node_modules/@playwright/test ]; then
  (cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
KETA_BIN="$PWD/target/debug/keta" node e2e/fhir-validate.mjs
echo "== bedside monitors (e2e/monitors.sh): HL7 v2 over MLLP from the PyPI hl7 package's mllp_send into keta demo"
KETA_BIN="$PWD/target/debug/keta" e2e/monitors.sh

echo "== browser tests (e2e/)"
for need in /usr/bin/chromium; do
  [ -x "$need" ] || { echo "error: $need is missing: apt-get install -y chromium faketime" >&2; exit 1; }
done
if [ ! -d e2e/node_modules/@playwright/test ]; then
  (cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
cd e2e
KETA_BIN="$PWD/../target/debug/keta" PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npx playwright test
