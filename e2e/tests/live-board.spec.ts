// Scenario 4: the live board in a second browser context updates when vitals are
// entered in the first, without reloading.
import { test, expect, screenshot, unique } from '../helpers/fixtures';
import { assessEligibility, firstSessionUrl, planCourse, registerPatient } from '../helpers/clinic';

test('the live board updates in a second browser when vitals are entered in the first', async ({ page, signIn, secondUser }) => {
  await signIn('prescriber');
  const patient = await registerPatient(page, 'Lena', `Live${unique()}`);
  await assessEligibility(page, patient);
  await planCourse(page, patient, /^Esketamine nasal spray/);
  const session = await firstSessionUrl(page, patient);
  await page.goto(session);
  await page.getByRole('button', { name: 'Check in' }).click();
  await expect(page.locator('#session-state')).toHaveText('Checked in');

  // A nurse at the front watches the board in another browser.
  const board = await secondUser('nurse');
  await expect(board.locator('.live[data-live-state="open"]')).toBeAttached();
  const card = board.locator('.chair').filter({ hasText: patient.name });
  await expect(card).toContainText('Checked in');
  await board.evaluate(() => ((window as unknown as { keptState: boolean }).keptState = true));

  // Vitals entered in the first browser appear on the board.
  await page.getByLabel('Systolic').fill('131');
  await page.getByLabel('Diastolic').fill('85');
  await page.getByLabel(/^HR/).fill('77');
  await page.getByRole('button', { name: 'Record vitals' }).click();
  await expect(card).toContainText('BP 131/85', { timeout: 10_000 });
  await expect(card).toContainText('HR 77');

  // So does the next step of the session.
  await page.getByRole('button', { name: 'Start pre-dose checks' }).click();
  await expect(card).toContainText('Pre-dose checks', { timeout: 10_000 });

  // The board page was never reloaded.
  expect(await board.evaluate(() => (window as unknown as { keptState?: boolean }).keptState)).toBe(true);
  await screenshot(board, 'scenario4-board-updated');
});
