// The test fixtures: a demo clinic server per worker (a fresh one for specs that move
// the clock: `test.use({ freshClinic: true })`), its URL as baseURL, and helpers to
// sign in and to open a second, independent browser context.
import { test as base, expect, type Browser, type Page } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { login, type Role } from './auth';
import { KetaServer, ketaBinary } from './server';

type TestFixtures = {
  server: KetaServer;
  /** Signs the test's page in. */
  signIn: (role: Role, page?: Page) => Promise<void>;
  /** A new page in its own browser context (its own cookies), signed in as `role`. */
  secondUser: (role: Role) => Promise<Page>;
};
type WorkerFixtures = { clinic: KetaServer; freshClinic: boolean };

export const test = base.extend<TestFixtures, WorkerFixtures>({
  freshClinic: [false, { scope: 'worker', option: true }],
  clinic: [
    async ({ freshClinic }, use) => {
      void freshClinic;
      const s = new KetaServer();
      await s.start(process.env.KETA_BIN ?? ketaBinary());
      await use(s);
      await s.stop();
    },
    { scope: 'worker', timeout: 180_000 },
  ],
  server: async ({ clinic }, use, testInfo) => {
    await use(clinic);
    if (testInfo.status !== testInfo.expectedStatus) {
      await testInfo.attach('keta-demo-output', { body: clinic.output, contentType: 'text/plain' });
    }
  },
  baseURL: async ({ clinic }, use) => use(clinic.url),
  signIn: async ({ page, clinic }, use) => {
    await use((role, p) => login(p ?? page, clinic, role));
  },
  secondUser: async ({ browser, clinic }, use) => {
    const contexts: Awaited<ReturnType<Browser['newContext']>>[] = [];
    await use(async (role) => {
      const ctx = await browser.newContext({ baseURL: clinic.url, viewport: { width: 1024, height: 768 } });
      contexts.push(ctx);
      const p = await ctx.newPage();
      await login(p, clinic, role);
      return p;
    });
    for (const c of contexts) await c.close();
  },
});

export { expect };

const SHOTS = join(__dirname, '..', 'test-results', 'screens');

/** Saves a screenshot of the whole page as a test artifact (test-results/screens/). */
export async function screenshot(page: Page, name: string) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

let counter = 0;
/** A unique suffix for test data (MRNs, names). */
export function unique(): string {
  counter += 1;
  return `${Date.now().toString(36).slice(-5)}${counter}`.toUpperCase();
}
