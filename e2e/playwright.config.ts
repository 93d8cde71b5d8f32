// Keta's browser tests: Playwright drives Debian's Chromium (never a downloaded browser)
// against `keta demo` servers that the suite starts itself (see helpers/server.ts).
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results/output',
  // Two cores shared with builds: one worker, one server. Each spec file still gets a
  // fresh demo clinic of its own (see helpers/fixtures.ts).
  workers: 1,
  fullyParallel: false,
  timeout: 120_000,
  expect: { timeout: 10_000 },
  retries: 0,
  reporter: [['list'], ['./helpers/summary-reporter.ts']],
  globalSetup: './helpers/global-setup.ts',
  use: {
    viewport: { width: 1024, height: 768 },
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.KETA_CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});
