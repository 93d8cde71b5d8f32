// The render-budget benchmark (not part of the test suite: run `bench/ui-render.sh`).
// Every main page renders on the server in well under 50 ms at demo scale. The server
// reports its own time in the Server-Timing header; the median of five requests counts.
import { test, expect } from '../helpers/fixtures';

const BUDGET_MS = Number(process.env.KETA_RENDER_BUDGET_MS ?? 50);

test('main pages render within the budget', async ({ page, signIn }) => {
  await signIn('prescriber');
  const rows = page.getByRole('table', { name: 'Sessions scheduled today' }).first().getByRole('link', { name: /^Open/ });
  const session = await rows.first().getAttribute('href');
  await page.goto('/patients');
  const chart = await page.getByRole('table', { name: /Patients/ }).getByRole('link').first().getAttribute('href');
  const pages = ['/today', '/patients', '/patients?q=a', chart!, `${chart}/eligibility`, `${chart}/plan?route=intranasal_esketamine`, session!, `${chart}/questionnaires/new?instrument=phq9`, '/outcomes', '/outcomes/durability', '/patients/new'];
  const report: string[] = [];
  for (const path of pages) {
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await page.request.get(path);
      expect(r.status(), path).toBe(200);
      const m = (r.headers()['server-timing'] ?? '').match(/dur=([\d.]+)/);
      expect(m, `${path} has a Server-Timing header`).not.toBeNull();
      times.push(Number(m![1]));
    }
    times.sort((a, b) => a - b);
    report.push(`${path}: median ${times[2]} ms (max ${times[4]} ms)`);
    expect(times[2], `${path} took ${times.join(', ')} ms`).toBeLessThan(BUDGET_MS);
  }
  console.log(report.join('\n'));
});
