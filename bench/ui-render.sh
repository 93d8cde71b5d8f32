#!/usr/bin/env bash
# Server render times of the main pages on the demo clinic, against a budget (default 50 ms,
# KETA_RENDER_BUDGET_MS to change): each page is requested five times and the median of the
# server's own Server-Timing figure must be under the budget. Uses a release build.
# Needs what the browser tests need: Debian's chromium and Node 20 (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p keta-cli --bin keta
if [ ! -d e2e/node_modules/@playwright/test ]; then
  (cd e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
fi
cd e2e
KETA_BIN="$PWD/../target/release/keta" PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npx playwright test -c playwright.bench.config.ts
