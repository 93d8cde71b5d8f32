// Benchmarks driven through the browser harness (run by bench/ui-render.sh, never by the
// test suite: timings belong in benchmarks, not in tests that CI runs on a busy machine).
import { defineConfig } from '@playwright/test';
import base from './playwright.config';

export default defineConfig({
  ...base,
  testDir: './bench',
  outputDir: './test-results/bench',
});
