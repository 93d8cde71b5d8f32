// Scenario 3: a patient completes a PHQ-9 on the tablet in kiosk mode with item 9
// positive; the clinician, watching the board in another browser, sees the safety
// alert appear without reloading.
import { test, expect, screenshot, unique } from '../helpers/fixtures';
import { registerPatient } from '../helpers/clinic';

test('a PHQ-9 in kiosk mode with item 9 positive raises an alert the clinician sees on the board', async ({ page, signIn, secondUser }) => {
  await signIn('prescriber');
  const patient = await registerPatient(page, 'Noor', `Kiosk${unique()}`);

  // The clinician watches the live board.
  const clinician = await secondUser('prescriber');
  await expect(clinician.locator('.live[data-live-state="open"]')).toBeAttached();
  await expect(clinician.getByText(patient.name)).toHaveCount(0);

  // Staff start the kiosk from the chart and hand the tablet over.
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

  // The clinician's board shows the alert, live.
  const alert = clinician.locator('.board-alerts .alert-line').filter({ hasText: patient.name });
  await expect(alert).toContainText('item 9', { timeout: 15_000 });
  await expect(alert).toContainText('urgent');
  await screenshot(clinician, 'scenario3-board-alert');

  // It is on the chart too, where it is acknowledged.
  await clinician.getByRole('link', { name: patient.name }).first().click();
  await expect(clinician.locator('.alert-banner')).toContainText('item 9');
});
