// Scenario 1: a nurse runs a full IV ketamine session on the tablet: check-in, pre-dose
// vitals, dose start, vitals every few minutes including one that raises an alert,
// acknowledging it (recorded with who and when), CADSS, and discharge refused before
// the minimum monitoring time and until the record shows sedation and dissociation
// resolved, then accepted. The server's clock is moved
// forward (helpers/server.ts), so this spec gets a clinic of its own.
import { test, expect, screenshot, unique } from '../helpers/fixtures';
import { assessEligibility, ensureStock, firstSessionUrl, planCourse, registerPatient, signConsents } from '../helpers/clinic';
import { DEMO_PASSWORD } from '../helpers/auth';
import type { Page } from '@playwright/test';

test.use({ freshClinic: true });

// After an action the screen returns to the section acted on (#vitals,
// #observations, ...) with the patient's name still in view, and that section is not hidden
// under the sticky head or the open alerts.
async function expectPatientInView(page: Page) {
  await expect(page.locator('.session-head h1')).toBeInViewport();
  const landing = await page.evaluate(() => {
    const id = window.location.hash.slice(1);
    const target = id ? document.getElementById(id) : null;
    if (!target) return null;
    const head = document.querySelector('.session-head')!.getBoundingClientRect();
    const alerts = document.querySelector('.alerts-open');
    const covered = Math.max(head.bottom, alerts && alerts !== target ? alerts.getBoundingClientRect().bottom : 0);
    return { id, top: target.getBoundingClientRect().top, covered };
  });
  if (landing) expect(landing.top, `#${landing.id} lands below the sticky head`).toBeGreaterThanOrEqual(landing.covered - 1);
}

async function recordVitals(page: Page, v: { sys: string; dia: string; hr: string; spo2: string; rr: string }) {
  await page.getByLabel('Systolic').fill(v.sys);
  await page.getByLabel('Diastolic').fill(v.dia);
  await page.getByLabel(/^HR/).fill(v.hr);
  await page.getByLabel(/^SpO/).fill(v.spo2);
  await page.getByLabel(/^RR/).fill(v.rr);
  await page.getByRole('button', { name: 'Record vitals' }).click();
  await expect(page.getByRole('table', { name: /Vital signs/ }).getByRole('row').nth(1)).toContainText(`${v.sys}/${v.dia}`);
  await expectPatientInView(page);
}

test('a nurse runs a full IV ketamine session', async ({ page, signIn, server }) => {
  // The prescriber registers, assesses and plans an IV course starting today.
  await signIn('prescriber');
  const patient = await registerPatient(page, 'Iris', `Vance${unique()}`);
  await assessEligibility(page, patient);
  await planCourse(page, patient, /^IV ketamine/);
  const session = await firstSessionUrl(page, patient);
  await signConsents(page, patient, 'iv_racemic');
  await ensureStock(page, patient, 'ketamine');

  // The nurse takes the tablet.
  await page.context().clearCookies();
  await signIn('nurse');
  await page.goto(session);
  const state = page.locator('#session-state');
  await expect(state).toHaveText('Scheduled');
  await expect(page.getByText('Session 1 of 6')).toBeVisible();

  await page.getByRole('button', { name: 'Check in' }).click();
  await expect(state).toHaveText('Checked in');
  await page.getByRole('button', { name: 'Start pre-dose checks' }).click();
  await expect(state).toHaveText('Pre-dose checks');

  // The dose cannot start before the pre-dose checks are confirmed and BP is recorded.
  await page.getByRole('button', { name: 'Start dose' }).click();
  await expect(state).toHaveText('Pre-dose checks');
  await expect(page.locator('.field-error').filter({ hasText: 'confirm every pre-dose check first' })).toBeVisible();
  await expect(page.locator('.field-error').filter({ hasText: 'record the pre-dose blood pressure' })).toBeVisible();

  await recordVitals(page, { sys: '128', dia: '82', hr: '72', spo2: '98', rr: '14' });
  await expect(page.locator('.alert-banner')).toHaveCount(0);
  // The form comes back empty (a stale value is never re-recorded by a tap), with the last
  // reading and its age beside the boxes.
  await expect(page.getByLabel('Systolic')).toHaveValue('');
  await expect(page.locator('#systolic_mmhg-last')).toHaveText('BP 128/82, just now');
  for (const box of await page.locator('input[name="predose"]').all()) await box.check();
  await page.getByRole('button', { name: 'Start dose' }).click();
  await expect(state).toHaveText('Dosing');
  await expect(page.locator('.clock')).toHaveText(/^0:0\d:\d\d$/);
  await expect(page.getByText('Minimum monitoring 2 h 00 min')).toBeVisible();

  // Vitals every few minutes (the clock moves five minutes at a time).
  server.advance(5);
  await page.reload();
  await recordVitals(page, { sys: '136', dia: '86', hr: '80', spo2: '97', rr: '15' });
  await expect(page.locator('.alert-banner')).toHaveCount(0);

  server.advance(5);
  await page.reload();
  await recordVitals(page, { sys: '186', dia: '114', hr: '96', spo2: '97', rr: '16' });
  // The alert cannot be missed: a banner at the top, announced, and in the page title.
  const banners = page.locator('.alert-banner[role="alert"]');
  await expect(banners.first()).toBeVisible();
  await expect(banners.filter({ hasText: 'severe range' })).toHaveCount(1);
  await expect(page).toHaveTitle(/alert/);
  await screenshot(page, 'scenario1-session-alert');

  // The nurse acknowledges each alert with what was done; who and when are recorded.
  while ((await banners.count()) > 0) {
    const b = banners.first();
    await b.getByLabel(/What was done/).fill('Rechecked BP, patient calm and asymptomatic; prescriber informed');
    await b.getByRole('button', { name: 'Acknowledge' }).click();
  }
  await page.getByText(/acknowledged alert/).click();
  await expect(page.locator('.acked')).toContainText('acknowledged by');
  await expect(page.locator('.acked')).toContainText('rn.demo');

  // Dissociation (CADSS-6) and sedation (MOAA/S).
  for (const [i, v] of ['2', '1', '1', '0', '1', '0'].entries()) {
    await page.getByRole('radiogroup', { name: new RegExp(`^Item ${i + 1} `) }).getByRole('radio', { name: v, exact: true }).check();
  }
  await page.getByRole('button', { name: 'Record CADSS-6' }).click();
  await expect(page.locator('#observations .timeline')).toContainText('CADSS-6 total 5');
  await expect(page).toHaveURL(/#observations$/);
  await expectPatientInView(page);
  await page.getByRole('radio', { name: /Lethargic response to name in normal tone/ }).check();
  await page.getByRole('button', { name: 'Record MOAA/S' }).click();
  await expect(page.locator('#observations .timeline')).toContainText('MOAA/S 4');

  // Forty minutes in the infusion ends. (Idle sign-in sessions end after 15 minutes,
  // so every jump of the clock beyond that means signing in again.)
  server.advance(30);
  await signIn('nurse');
  await page.goto(session);
  await page.getByRole('button', { name: 'End dose (start monitoring)' }).click();
  await expect(state).toHaveText('Monitoring');

  // The dose goes into the controlled-substance ledger, which needs the password entered
  // within the last few minutes (the sign-in above is six minutes old by now).
  server.advance(6);
  await page.reload();
  await page.getByRole('link', { name: 'Re-enter password' }).click();
  await page.getByLabel(/Password/).fill(DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Confirm' }).click();
  await expect(page).toHaveURL(new RegExp(`${session}#ledger$`));
  await page.getByLabel('Dose given (mg)').fill('36');
  await page.getByRole('button', { name: 'Record in the ledger' }).click();
  await expect(page.locator('#ledger .timeline')).toContainText('36 mg (0.72 mL) given, recorded by rn.demo');

  // Discharge is refused before the minimum monitoring time.
  await expect(page.getByText('Discharge will be refused until')).toBeVisible();
  for (const box of await page.locator('input[name="discharge"]').all()) await box.check();
  await page.getByRole('button', { name: 'Discharge' }).click();
  await expect(page.locator('.step-form .notice-error')).toContainText('Discharge refused');
  await expect(page.locator('.step-form .notice-error')).toContainText('the minimum for IV ketamine is 120 min');
  await expect(state).toHaveText('Monitoring');

  // Two hours after the dose started the patient may leave (the session timed out
  // meanwhile, so the nurse signs in again).
  server.advance(79);
  await signIn('nurse');
  await page.goto(session);
  await recordVitals(page, { sys: '124', dia: '80', hr: '70', spo2: '98', rr: '14' });
  // Discharge is judged from the record: sedation and dissociation must be scored as resolved
  // after the dose (the MOAA/S 4 and CADSS-6 of 5 above are not).
  await expect(page.locator('[data-blocker="sedation_not_resolved"]')).toContainText('latest MOAA/S is 4');
  await expect(page.locator('[data-blocker="dissociation_not_resolved"]')).toBeVisible();
  await page.getByRole('radio', { name: /Responds readily to name in normal tone/ }).check();
  await page.getByRole('button', { name: 'Record MOAA/S' }).click();
  for (let i = 1; i <= 6; i++) {
    await page.getByRole('radiogroup', { name: new RegExp(`^Item ${i} `) }).getByRole('radio', { name: '0', exact: true }).check();
  }
  await page.getByRole('button', { name: 'Record CADSS-6' }).click();
  await expect(page.getByText('Discharge will be refused until')).toHaveCount(0);
  for (const box of await page.locator('input[name="discharge"]').all()) await box.check();
  await page.getByRole('button', { name: 'Discharge' }).click();
  await expect(state).toHaveText('Discharged');
  await expect(page.getByRole('textbox', { name: 'Session note' })).toHaveValue(/Discharge checks confirmed/);
  await expect(page.getByRole('textbox', { name: 'Session note' })).toHaveValue(/Pre-dose checks confirmed/);
  await screenshot(page, 'scenario1-session-discharged');
});
