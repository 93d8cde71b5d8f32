// Scenario 3: a patient completes a PHQ-9 on the tablet in kiosk mode with item 9
// positive; the clinician, watching the board in another browser, sees the safety
// alert appear without reloading. The tablet cannot be turned back into the nurse's
// chart without the staff member's password.
import { test, expect, screenshot, unique } from '../helpers/fixtures';
import { registerPatient } from '../helpers/clinic';
import { DEMO_PASSWORD } from '../helpers/auth';

test('a PHQ-9 in kiosk mode with item 9 positive raises an alert the clinician sees on the board', async ({ page, signIn, secondUser }) => {
  await signIn('prescriber');
  const patient = await registerPatient(page, 'Noor', `Kiosk${unique()}`);

  // The clinician watches the live board.
  const clinician = await secondUser('prescriber');
  await expect(clinician.locator('.live[data-live-state="open"]')).toBeAttached();
  await expect(clinician.getByText(patient.name)).toHaveCount(0);

  // A nurse starts the kiosk from the chart and hands the tablet over (the kiosk and its
  // unlock belong to the nurse's own sign-in session, not the prescriber's on the board).
  await signIn('nurse');
  await page.goto(`/patients/${patient.id}`);
  await page.getByLabel('Hand the tablet to the patient').selectOption('phq9');
  await page.getByRole('button', { name: 'Start kiosk' }).click();
  await page.setViewportSize({ width: 390, height: 844 });
  await expect(page.getByRole('heading', { name: 'Hello Noor' })).toBeVisible();
  await expect(page.getByRole('navigation')).toHaveCount(0);

  const answers = ['Several days', 'More than half the days', 'Several days', 'Nearly every day', 'Not at all', 'Several days', 'Several days', 'Not at all', 'More than half the days'];
  // First a missed question: the form says which, and keeps the other answers.
  for (const [i, a] of answers.entries()) {
    if (i === 2) continue;
    await page.getByRole('group', { name: new RegExp(`^${i + 1}\\. `) }).getByText(a, { exact: true }).click();
  }
  await page.getByRole('button', { name: 'Finish' }).click();
  await expect(page.getByText('Please answer the questions marked below.')).toBeVisible();
  await expect(page.locator('#q3-error')).toBeVisible();
  await expect(page.getByRole('group', { name: /^9\. / }).getByRole('radio', { name: 'More than half the days' })).toBeChecked();
  await page.getByRole('group', { name: /^3\. / }).getByText(answers[2], { exact: true }).click();
  await page.getByRole('button', { name: 'Finish' }).click();

  // The patient is thanked and shown the crisis line; no score is shown.
  await expect(page.getByRole('heading', { name: /Thank you, Noor/ })).toBeVisible();
  await expect(page.getByText('A member of our team will talk with you')).toBeVisible();
  await expect(page.locator('.crisis-line')).not.toBeEmpty();
  await screenshot(page, 'scenario3-kiosk-done-390');

  // Nothing on the kiosk leads into staff pages: its only link is the staff unlock.
  const hrefs = await page.locator('main a').evaluateAll((as) => as.map((a) => a.getAttribute('href') ?? ''));
  expect(hrefs.length).toBeGreaterThan(0);
  for (const h of hrefs) expect(h).toMatch(/^\/reauth\?/);
  // The escape attempt: typing the chart's address lands on the staff password, not the chart.
  await page.goto(`/patients/${patient.id}`);
  await expect(page.getByRole('heading', { name: 'Staff: unlock the tablet' })).toBeVisible();
  await expect(page.getByText(patient.name)).toHaveCount(0);
  const api = await page.request.get(`/api/v1/patients/${patient.id}/chart`);
  expect(api.status()).toBe(403);
  await page.getByLabel(/^Password for/).fill('not the password');
  await page.getByRole('button', { name: 'Confirm' }).click();
  await expect(page.getByText('That password is not right.')).toBeVisible();
  // The staff member's own password hands the tablet back, straight to the chart.
  await page.getByLabel(/^Password for/).fill(DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Confirm' }).click();
  await expect(page).toHaveURL(new RegExp(`/patients/${patient.id}$`));
  await expect(page.getByRole('navigation').first()).toBeVisible();

  // The clinician's board shows the alert, live.
  const alert = clinician.locator('.board-alerts .alert-line').filter({ hasText: patient.name });
  await expect(alert).toContainText('item 9', { timeout: 15_000 });
  await expect(alert).toContainText('urgent');
  await screenshot(clinician, 'scenario3-board-alert');

  // It is on the chart too, where it is acknowledged.
  await clinician.getByRole('link', { name: patient.name }).first().click();
  await expect(clinician.locator('.alert-banner')).toContainText('item 9');
});
