// A patient completes a check-in from their phone (a phone-sized window, no
// sign-in) with PHQ-9 item 9 positive. The answer is kept when they save and come back, the
// page opens with the site's crisis instructions and crisis line, the clinician's live board
// shows the urgent alert without reloading, and the used link is refused with a helpful
// message.
import { test, expect, screenshot, unique } from '../helpers/fixtures';
import { registerPatient } from '../helpers/clinic';
import { expectAccessible, expectNoHorizontalScroll } from '../helpers/a11y';

test('a phone check-in with item 9 positive shows crisis instructions and alerts the board', async ({ page, signIn, secondUser, browser, baseURL }) => {
  await signIn('prescriber');
  const patient = await registerPatient(page, 'Robin', `Phone${unique()}`);

  // The clinician watches the live board.
  const clinician = await secondUser('prescriber');
  await expect(clinician.locator('.live[data-live-state="open"]')).toBeAttached();

  // The prescriber sends a PHQ-9 check-in; the link is shown once.
  await page.goto(`/patients/${patient.id}`);
  const csrf = JSON.parse((await page.locator('body').getAttribute('hx-headers')) ?? '{}')['X-CSRF-Token'];
  const issued = await page.request.post(`/api/v1/patients/${patient.id}/checkin-links`, {
    headers: { 'x-csrf-token': csrf, origin: baseURL! },
    data: { form: 'phq9' },
  });
  expect(issued.status()).toBe(201);
  const link: string = (await issued.json()).url;
  // Nothing identifying in the URL: its path is the token alone (a check on the id's digits
  // could match the port or the random token by chance).
  expect(new URL(link).pathname).toMatch(/^\/c\/[A-Za-z0-9_-]{43}$/);
  expect(link).not.toContain(patient.mrn);
  expect(link).not.toContain(patient.name.split(' ')[1]);

  // The patient's phone: its own browser, no cookies, a phone-sized window.
  const ctx = await browser.newContext({ baseURL, viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const phone = await ctx.newPage();
  await phone.goto(link);
  await expect(phone.getByRole('heading', { name: 'PHQ-9' })).toBeVisible();
  await expect(phone.getByRole('navigation')).toHaveCount(0);
  await expectNoHorizontalScroll(phone, 'phone check-in');
  await expectAccessible(phone, 'phone check-in');
  // A question title that wraps to two lines stays inside its card instead of
  // straddling the card's top border.
  const titles = await phone.locator('fieldset.p-q').evaluateAll((sets) => sets.map((f) => {
    const legend = f.querySelector('legend')!;
    const box = f.getBoundingClientRect();
    const l = legend.getBoundingClientRect();
    const lineHeight = parseFloat(getComputedStyle(legend).lineHeight);
    return { text: legend.textContent, inside: l.top >= box.top + parseFloat(getComputedStyle(f).borderTopWidth), lines: Math.round(l.height / lineHeight) };
  }));
  expect(titles.some((t) => t.lines >= 2), 'a two-line question title at 390 px').toBe(true);
  expect(titles.filter((t) => !t.inside).map((t) => t.text)).toEqual([]);

  // A few answers, then "finish later": they are kept for the same link.
  await phone.getByRole('group', { name: /^1\. / }).getByText('Several days', { exact: true }).click();
  await phone.getByRole('group', { name: /^2\. / }).getByText('More than half the days', { exact: true }).click();
  await phone.getByRole('button', { name: 'Save and finish later' }).click();
  await expect(phone.getByRole('status')).toContainText('Your answers are saved');
  await phone.goto(link);
  await expect(phone.getByRole('group', { name: /^2\. / }).getByRole('radio', { name: 'More than half the days' })).toBeChecked();

  // The rest, with item 9 positive.
  const rest = ['Several days', 'Nearly every day', 'Not at all', 'Several days', 'Several days', 'Not at all', 'Several days'];
  for (const [i, a] of rest.entries()) {
    await phone.getByRole('group', { name: new RegExp(`^${i + 3}\\. `) }).getByText(a, { exact: true }).click();
  }
  await phone.getByRole('button', { name: 'Send my answers' }).click();

  // The crisis instructions come first, with the site's crisis line.
  const crisis = phone.getByRole('alert').filter({ hasText: 'Please read this first' });
  await expect(crisis).toBeVisible();
  await expect(crisis).toContainText('Crisis line:');
  await expect(crisis).toContainText('988');
  await expect(phone.getByRole('heading', { name: /Thank you, Robin/ })).toBeVisible();
  // The patient's own view: the score in plain words.
  await expect(phone.getByRole('heading', { name: 'Your scores over time' })).toBeVisible();
  await expectNoHorizontalScroll(phone, 'phone check-in done');
  await expectAccessible(phone, 'phone check-in done');
  await screenshot(phone, 'issue6-phone-crisis-390');

  // The clinician's board shows the urgent alert, live.
  const alert = clinician.locator('.board-alerts .alert-line').filter({ hasText: patient.name });
  await expect(alert).toContainText('item 9', { timeout: 15_000 });
  await expect(alert).toContainText('urgent');
  await screenshot(clinician, 'issue6-board-alert');

  // The link works once: opening it again says so, and what to do.
  const again = await phone.goto(link);
  expect(again?.status()).toBe(410);
  await expect(phone.getByRole('heading', { name: 'This check-in is already done' })).toBeVisible();
  await expect(phone.getByText('each link works once')).toBeVisible();

  // A mistyped link is refused helpfully too.
  const bad = await phone.goto(link.slice(0, -1) + (link.endsWith('A') ? 'B' : 'A'));
  expect(bad?.status()).toBe(404);
  await expect(phone.getByRole('heading', { name: 'We could not find this check-in' })).toBeVisible();
  await ctx.close();
});

test('the patient help page answers common questions on a phone', async ({ browser, baseURL }) => {
  const ctx = await browser.newContext({ baseURL, viewport: { width: 390, height: 844 } });
  const p = await ctx.newPage();
  await p.goto('/help');
  await expect(p.getByRole('heading', { level: 1 })).toContainText('Questions about ketamine treatment');
  await expect(p.getByRole('heading', { level: 2 }).first()).toBeVisible();
  // The crisis answer points to the line on the clinic's check-in pages (this page has none).
  await expect(p.getByRole('heading', { level: 2, name: 'What should I do in a crisis?' })).toBeVisible();
  await expect(p.locator('#crisis')).toContainText('crisis line given on every check-in page');
  await expectNoHorizontalScroll(p, 'help');
  await expectAccessible(p, 'help');
  await ctx.close();
});
