// An urgent alert nobody acknowledged within the clinic's time is escalated. The
// demo clinic holds one (yesterday's PHQ-9 item 9); the administrator sets the time, the
// prescriber on duty and the alarm sound, runs the sweep the server runs every minute, and a
// nurse's live board marks the alert at its top without reloading.
import { test, expect, screenshot } from '../helpers/fixtures';
import { csrfToken } from '../helpers/clinic';
import { expectAccessible } from '../helpers/a11y';

test.use({ freshClinic: true });

test('an urgent alert nobody acknowledged is escalated and heads the live board', async ({ page, signIn, secondUser, baseURL }) => {
  const board = await secondUser('nurse');
  await expect(board.locator('.live[data-live-state="open"]')).toBeAttached();
  await expect(board.getByText('not set by the clinic').first()).toBeVisible();
  await expect(board.locator('.board-escalated')).toHaveCount(0);

  await signIn('administrator');
  const headers = { 'x-csrf-token': await csrfToken(page), origin: baseURL! };
  let r = await page.request.get('/api/v1/settings/alert-escalation');
  expect(await r.json()).toEqual({ escalate_after_minutes: null });
  r = await page.request.put('/api/v1/settings/alert-escalation', { headers, data: { escalate_after_minutes: 15 } });
  expect(r.status()).toBe(200);
  // The demo's own sites, where dr.demo works (another spec on this server may have added one).
  const sites: { id: number; code: string }[] = await (await page.request.get('/api/v1/sites')).json();
  for (const s of sites.filter((s) => ['AUS', 'DEN'].includes(s.code))) {
    r = await page.request.put(`/api/v1/sites/${s.id}/on-duty`, {
      headers,
      data: { prescriber: 'dr.demo', contact_email: 'dr.demo@clinic.example', alert_sound: true },
    });
    expect(r.status()).toBe(200);
  }

  r = await page.request.post('/api/v1/alert-escalations/sweep', { headers });
  expect(r.status()).toBe(200);
  // (The server's own minute-by-minute sweep may have got there first: either way it is sent.)
  const swept = await r.json();
  expect(swept.sent).toBe(swept.escalated);

  // The nurse's board marks it at the top, without a reload, and offers the alarm sound.
  const banner = board.locator('.board-escalated');
  await expect(banner.first()).toBeVisible({ timeout: 10_000 });
  await expect(banner.first()).toContainText('escalated');
  await expect(banner.first()).toContainText('after 15 min unacknowledged to dr.demo');
  const allow = board.getByRole('button', { name: 'Allow the alarm sound on this screen' }).first();
  await expect(allow).toBeVisible();
  await allow.click();
  await expect(allow).toBeHidden();
  await expectAccessible(board, 'board with an escalated alert');
  await screenshot(board, 'issue18-board-escalated');

  // Once per alert: a second sweep escalates nothing more.
  r = await page.request.post('/api/v1/alert-escalations/sweep', { headers });
  expect((await r.json()).escalated).toBe(0);
});
