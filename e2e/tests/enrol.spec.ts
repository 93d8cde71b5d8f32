// Scenario 2: a prescriber enrols a new patient: intake (a rejected form keeps the
// input and says what to fix next to each field), antidepressant history and the
// Maudsley score as you type, medications whose classes raise a hard stop that blocks one
// route (in the page and on the server) and a caution on another, and an esketamine course
// that appears on the schedule.
import { test, expect, screenshot, unique } from '../helpers/fixtures';
import { planCourse, type NewPatient } from '../helpers/clinic';

test('a prescriber enrols a new patient and plans esketamine; a hard stop blocks IV', async ({ page, signIn }) => {
  await signIn('prescriber');
  const family = `Enrol${unique()}`;
  const mrn = `E2E-${unique()}`;

  // Intake, first with mistakes.
  await page.goto('/patients/new');
  await page.getByLabel('MRN').fill('not valid!');
  await page.getByLabel('Given name').fill('Marta');
  await page.getByLabel('Family name').fill(family);
  await page.getByLabel('Date of birth').fill('2099-01-01');
  await page.getByLabel('Sex').selectOption('female');
  await page.getByLabel(/^Diagnoses/).fill('depression');
  await page.getByRole('button', { name: 'Register patient' }).click();
  await expect(page.locator('#mrn-error')).toContainText('use 1-32 letters');
  await expect(page.locator('#date_of_birth-error')).toContainText('cannot be in the future');
  await expect(page.locator('#diagnoses-error')).toContainText('ICD-10');
  await expect(page.getByLabel('MRN')).toHaveAttribute('aria-invalid', 'true');
  await expect(page.getByLabel('Given name')).toHaveValue('Marta');
  await expect(page.getByLabel('Family name')).toHaveValue(family);
  await page.getByLabel('MRN').fill(mrn);
  await page.getByLabel('Date of birth').fill('1979-05-14');
  await page.getByLabel(/^Diagnoses/).fill('F33.2');
  await page.getByLabel(/^Weight \(kg\)/).fill('64');
  await page.getByRole('button', { name: 'Register patient' }).click();
  await expect(page).toHaveURL(/\/patients\/\d+\/eligibility$/);
  const patient: NewPatient = { id: page.url().match(/\/patients\/(\d+)\//)![1], name: `Marta ${family}`, mrn };

  // Two adequate failed trials in this episode: treatment-resistant.
  for (const t of [
    { drug: 'Sertraline', dose: '150', weeks: '8', outcome: 'no_response' },
    { drug: 'Venlafaxine', dose: '225', weeks: '10', outcome: 'partial_response' },
  ]) {
    await page.getByLabel('Drug').fill(t.drug);
    await page.getByLabel(/^Daily dose/).fill(t.dose);
    await page.getByLabel('Weeks').fill(t.weeks);
    await page.getByLabel('Outcome').selectOption(t.outcome);
    await page.getByLabel('Adequate dose and duration').check();
    await page.getByRole('button', { name: 'Add trial' }).click();
    await expect(page.getByRole('table', { name: 'Antidepressant trials' })).toContainText(t.drug);
  }
  await expect(page.getByText('Treatment-resistant.')).toBeVisible();

  // Theophylline is a hard stop for racemic ketamine, not for esketamine; taking a
  // psychostimulant is a caution for esketamine. Both are read from the medication list
  // (there is no tick for them), with the class each drug belongs to.
  for (const drug of ['Theophylline', 'Methylphenidate']) {
    await page.getByLabel('Medication', { exact: true }).fill(drug);
    await page.getByRole('button', { name: 'Add medication' }).click();
    await expect(page.getByRole('table', { name: 'Current medications' })).toContainText(drug);
  }
  await expect(page.getByRole('table', { name: 'Current medications' }).getByRole('row').filter({ hasText: 'Methylphenidate' })).toContainText('Psychostimulant');
  await expect(page.getByRole('row').filter({ hasText: 'Taking theophylline or aminophylline' }).getByRole('checkbox')).toHaveCount(0);

  // The Maudsley score is computed as the fields are filled in.
  const msm = page.locator('#msm-result');
  await page.getByLabel('Current episode (months)').fill('18');
  await page.getByLabel('Severity at baseline').selectOption('severe_without_psychosis');
  await expect(page.getByLabel('Failed antidepressant treatments')).toHaveValue('2');
  await expect(msm).toContainText('7');
  await expect(msm).toContainText('Moderate');
  await page.getByLabel('Augmentation used').check();
  await expect(msm.locator('.big')).toHaveText('8');

  await page.getByRole('button', { name: 'Save assessment for all routes' }).click();
  const results = page.locator('#results');
  await expect(results.getByRole('listitem').filter({ hasText: 'IV ketamine' })).toContainText('Blocked');
  await expect(results.getByRole('listitem').filter({ hasText: 'Esketamine nasal spray' })).toContainText('Caution');
  await screenshot(page, 'scenario2-eligibility');

  // Planning: the blocked route cannot be chosen, and the server refuses it too.
  await page.goto(`/patients/${patient.id}/plan`);
  const iv = page.getByRole('radio', { name: /^IV ketamine/ });
  await expect(iv).toBeDisabled();
  await expect(page.locator('#route-iv_racemic-why')).toContainText('Hard stop: Taking theophylline or aminophylline');
  const csrf = await page.locator('input[name="csrf_token"]').first().inputValue();
  const forced = await page.request.post(`/patients/${patient.id}/plan`, {
    form: { csrf_token: csrf, route: 'iv_racemic', phase: 'induction', start_date: '2099-01-01', time: '09:00', consent_date: '2020-01-01' },
  });
  expect(forced.status()).toBe(422);
  expect(await forced.text()).toContain('blocked for this patient by a hard stop');

  // A plan without the checks, consent and decision is refused, field by field.
  await page.getByRole('radio', { name: /^Esketamine nasal spray/ }).check();
  await expect(page.getByRole('heading', { name: 'Cautions: documented decisions' })).toBeVisible();
  await page.getByRole('button', { name: 'Plan the course' }).click();
  await expect(page.locator('#check-error')).toContainText('confirm every pre-treatment check');
  await expect(page.locator('#consent_date-error')).toBeVisible();
  await expect(page.locator('#caution-psychostimulants-reason-error')).toContainText('document the benefit');
  await expect(page.getByRole('radio', { name: /^Esketamine nasal spray/ })).toBeChecked();

  await planCourse(page, patient, /^Esketamine nasal spray/, { time: '23:30' });
  await expect(page.getByText('Esketamine nasal spray · induction').first()).toBeVisible();
  await expect(page.getByText('0 of 8 sessions done')).toBeVisible();

  // The first planned session is on today's schedule.
  await page.goto('/today');
  const row = page.getByRole('table', { name: 'Sessions scheduled today' }).getByRole('row').filter({ hasText: patient.name });
  await expect(row).toContainText('Esketamine nasal spray');
  await expect(row).toContainText('23:30');
  await screenshot(page, 'scenario2-schedule');
});
