// Accessibility check with axe-core (vendored: vendor/axe-core-<version>.min.js). The
// script is evaluated through the DevTools protocol, so the page's strict CSP stays on.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, type Page } from '@playwright/test';

const AXE = readFileSync(join(__dirname, '..', 'vendor', 'axe-core-4.14.1.min.js'), 'utf8');

interface Violation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[]; failureSummary?: string }[];
}

/** Fails on any serious or critical axe violation (WCAG 2.x A and AA rules). */
export async function expectAccessible(page: Page, name: string) {
  await page.evaluate(AXE);
  const violations: Violation[] = await page.evaluate(async () => {
    // @ts-expect-error axe is injected above
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return r.violations.map((v: Violation) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })) }));
  });
  const serious = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const report = serious.map((v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.slice(0, 5).map((n) => n.target.join(' ')).join('\n  ')}`).join('\n');
  expect(serious, `${name}: serious accessibility violations\n${report}`).toEqual([]);
}

/** The page fits the window: no horizontal scrolling. */
export async function expectNoHorizontalScroll(page: Page, name: string) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  expect(scroll, `${name} scrolls horizontally at ${width}px`).toBeLessThanOrEqual(width);
}
