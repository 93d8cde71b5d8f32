// An esketamine session from check-in to discharge, where discharge is judged from
// the record. Two hours after the dose the nurse tries to discharge with only the readings
// taken early on and no sedation or dissociation score: refused, each missing fact named with
// a link to where it is recorded. Once the record is complete (a fresh full set of vitals,
// MOAA/S 5, CADSS-6 at or below the demo clinic's cut-off), discharge goes through. Then the
// nurse writes the note; signing it on the session screen is refused while the REMS Patient Monitoring Form lacks
// answers the session cannot give; once they are saved the note is signed and the form is
// downloaded as a PDF holding the patient's name and the session date. The server's clock is
// moved forward (helpers/server.ts), so this spec gets a clinic of its own.
import { test, expect, screenshot, unique } from '../helpers/fixtures';
import { assessEligibility, ensureStock, firstSessionUrl, planCourse, registerPatient, signConsents } from '../helpers/clinic';
import { downloadPdf } from '../helpers/pdf';
import { DEMO_PASSWORD } from '../helpers/auth';
import type { Page } from '@playwright/test';

test.use({ freshClinic: true });

async function recordVitals(page: Page, v: { sys: string; dia: string; hr: string; spo2: string; rr: string }) {
  await page.getByLabel('Systolic').fill(v.sys);
  await page.getByLabel('Diastolic').fill(v.dia);
  await page.getByLabel(/^HR/).fill(v.hr);
  await page.getByLabel(/^SpO/).fill(v.spo2);
  await page.getByLabel(/^RR/).fill(v.rr);
  await page.getByRole('button', { name: 'Record vitals' }).click();
  await expect(page.getByRole('table', { name: /Vital signs/ }).getByRole('row').nth(1)).toContainText(`${v.sys}/${v.dia}`);
}

/** Signs the session note as its author on the session screen, re-entering the password when asked. */
async function signNote(page: Page, session: string) {
  await page.goto(session);
  const reauth = page.getByRole('link', { name: 'Re-enter your password to sign' });
  if (await reauth.count()) {
    await reauth.click();
    await page.getByLabel(/Password/).fill(DEMO_PASSWORD);
    await page.getByRole('button', { name: 'Confirm' }).click();
    await expect(page.getByRole('button', { name: 'Sign note' })).toBeVisible();
  }
  await page.getByRole('button', { name: 'Sign note' }).click();
}

test('esketamine: discharge is refused until the record shows the patient is ready; then the signed note and the REMS form as PDF', async ({ page, signIn, server }) => {
  await signIn('prescriber');
  const family = `Lund${unique()}`;
  const patient = await registerPatient(page, 'Esme', family);
  await assessEligibility(page, patient);
  await planCourse(page, patient, /^Esketamine nasal spray/);
  const session = await firstSessionUrl(page, patient);
  await signConsents(page, patient, 'intranasal_esketamine');
  await ensureStock(page, patient, 'esketamine');

  await page.context().clearCookies();
  await signIn('nurse');
  await page.goto(session);
  const state = page.locator('#session-state');
  await page.getByRole('button', { name: 'Check in' }).click();
  await expect(state).toHaveText('Checked in');
  await page.getByRole('button', { name: 'Start pre-dose checks' }).click();
  await recordVitals(page, { sys: '126', dia: '80', hr: '74', spo2: '98', rr: '14' });
  // The vitals form starts empty, the last reading beside each box.
  await expect(page.getByLabel('Systolic')).toHaveValue('');
  await expect(page.locator('#heart_rate_bpm-last')).toHaveText('HR 74, just now');
  for (const box of await page.locator('input[name="predose"]').all()) await box.check();
  await page.getByRole('button', { name: 'Start dose' }).click();
  await expect(state).toHaveText('Dosing');

  // Two devices, five minutes apart; then a BP re-check.
  server.advance(6);
  await page.reload();
  await page.getByRole('button', { name: 'End dose (start monitoring)' }).click();
  await expect(state).toHaveText('Monitoring');
  server.advance(4);
  await page.reload();
  await page.getByRole('link', { name: 'Re-enter password' }).click();
  await page.getByLabel(/Password/).fill(DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.getByLabel('Dose given (mg)').fill('56');
  await page.getByRole('button', { name: 'Record in the ledger' }).click();
  await expect(page.locator('#ledger .timeline')).toContainText('56 mg');
  server.advance(12);
  await signIn('nurse');
  await page.goto(session);
  await recordVitals(page, { sys: '148', dia: '92', hr: '82', spo2: '97', rr: '15' });

  // Two hours after the dose, with nothing recorded since: refused, fact by fact (the
  // sign-in timed out meanwhile, so the nurse signs in again).
  server.advance(100);
  await signIn('nurse');
  await page.goto(session);
  const blockers = page.locator('#discharge-blockers');
  await expect(blockers).toBeVisible();
  await expect(blockers.locator('[data-blocker="vitals_stale"]')).toContainText('min old');
  await expect(blockers.locator('[data-blocker="sedation_not_scored"]')).toBeVisible();
  await expect(blockers.locator('[data-blocker="dissociation_not_scored"]')).toBeVisible();
  await expect(blockers.locator('[data-blocker="sedation_not_scored"] a')).toHaveAttribute('href', '#moaas');
  for (const box of await page.locator('input[name="discharge"]').all()) await box.check();
  await page.getByRole('button', { name: 'Discharge' }).click();
  await expect(state).toHaveText('Monitoring');
  await expect(page.locator('.step-form .notice-error')).toContainText('Discharge refused');
  await expect(page.locator('.step-form .notice-error')).toContainText('sedation not scored');
  await screenshot(page, 'esketamine-discharge-refused');

  // The record completed: a fresh full set, MOAA/S 5, CADSS-6 all zero.
  await recordVitals(page, { sys: '132', dia: '84', hr: '72', spo2: '98', rr: '14' });
  await expect(page.locator('[data-blocker="vitals_stale"]')).toHaveCount(0);
  await page.getByRole('radio', { name: /Responds readily to name in normal tone/ }).check();
  await page.getByRole('button', { name: 'Record MOAA/S' }).click();
  await expect(page.locator('[data-blocker="sedation_not_scored"]')).toHaveCount(0);
  for (let i = 1; i <= 6; i++) {
    await page.getByRole('radiogroup', { name: new RegExp(`^Item ${i} `) }).getByRole('radio', { name: '0', exact: true }).check();
  }
  await page.getByRole('button', { name: 'Record CADSS-6' }).click();
  await expect(page.getByText('Discharge will be refused until')).toHaveCount(0);
  // Only what Keta cannot know is ticked: the clinician's assessment and the escort home.
  await expect(page.locator('input[name="discharge"]')).toHaveCount(2);
  for (const box of await page.locator('input[name="discharge"]').all()) await box.check();
  await page.getByRole('button', { name: 'Discharge' }).click();
  await expect(state).toHaveText('Discharged');
  await screenshot(page, 'esketamine-discharged');

  // The note; signing it is refused while the REMS form lacks what the session cannot know.
  const sessionId = session.split('/').pop()!;
  await page.locator('#note-text').fill('Esketamine 56 mg intranasal. Tolerated; BP settled by the end; discharged with escort.');
  await page.getByRole('button', { name: 'Save note' }).click();
  await expect(page.locator('#note-text')).toHaveValue(/discharged with escort/);
  await signNote(page, session);
  await expect(page.locator('#note').getByRole('alert')).toContainText('REMS Patient Monitoring Form');
  await expect(page.locator('#note')).not.toContainText('Signed:');

  // The REMS form: the record's facts filled in, the clinician's answers asked for.
  await page.goto(`${session}/rems`);
  await expect(page.getByRole('heading', { name: 'Still to answer before the note can be signed' })).toBeVisible();
  await page.getByLabel('No middle name').check();
  await page.getByLabel('Monitoring provider: first name').fill('Nora');
  await page.getByLabel('Monitoring provider: last name').fill('Demo');
  await page.getByLabel('Monitoring provider: phone').fill('512-555-0100');
  await page.getByLabel('Monitoring provider: e-mail').fill('nora.demo@example.org');
  await page.getByLabel('Setting address line 1').fill('1 Clinic Way');
  await page.getByLabel('City').fill('Austin');
  await page.getByLabel('State').fill('TX');
  await page.getByLabel('ZIP').fill('78701');
  await page.getByLabel(/ready to leave after/).fill('90');
  await page.getByLabel('Vital signs acceptable before administration').selectOption('yes');
  await page.getByLabel('Vital signs acceptable before the session ended').selectOption('yes');
  await page.getByLabel('Sedation', { exact: true }).selectOption('no');
  await page.getByLabel('Dissociation', { exact: true }).selectOption('no');
  await page.getByLabel('Respiratory depression', { exact: true }).selectOption('no');
  await page.getByRole('button', { name: 'Save answers' }).click();
  await expect(page).toHaveURL(new RegExp(`/sessions/${sessionId}/rems$`));
  await expect(page.getByRole('heading', { name: 'Still to answer before the note can be signed' })).toHaveCount(0);
  await expect(page.getByRole('heading', { name: 'Mark submitted to the REMS' })).toBeVisible();
  const fields = page.getByRole('table', { name: 'REMS form fields' });
  const sessionDate = (await fields.getByRole('row').filter({ hasText: 'Treatment date' }).getByRole('cell').textContent())!.trim();
  expect(sessionDate).toMatch(/^\d{4}-\d{2}-\d{2}$/);

  // Now the note signs, and is locked: no more "Save note".
  await signNote(page, session);
  await expect(page.locator('#note')).toContainText('Signed: Demo Nurse (Author)');
  await expect(page.getByRole('button', { name: 'Save note' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Sign note' })).toHaveCount(0);

  // The form as a PDF: the patient, the session's date, the answers, who produced it.
  await page.goto(`${session}/rems`);
  const form = await downloadPdf(page, page.getByRole('link', { name: 'Download PDF' }));
  for (const want of ['SPRAVATO® REMS Patient Monitoring Form', 'Esme', family, `Treatment date: ${sessionDate}`, 'Nora', 'nora.demo@example.org', 'Produced by Demo Nurse (rn.demo)']) {
    expect(form, want).toContain(want);
  }
  // The signed note as a PDF, from the session screen.
  await page.goto(session);
  const note = await downloadPdf(page, page.locator('#note').getByRole('link', { name: 'Download PDF' }));
  for (const want of ['Session note', `Esme ${family}`, patient.mrn, 'discharged with escort', 'Author']) {
    expect(note, want).toContain(want);
  }
});
