// Every main screen: renders for the right role, has no serious accessibility
// violation (axe-core), fits a 1024x768 tablet without horizontal scrolling, and is
// saved as a screenshot artifact (test-results/screens/). Patient-facing screens are
// also checked at phone width (390), as are the outcomes pages, and the board at desktop width (1440).
import { test, expect, screenshot } from '../helpers/fixtures';
import { expectAccessible, expectNoHorizontalScroll } from '../helpers/a11y';
import { assessEligibility, firstSessionUrl, planCourse, registerPatient } from '../helpers/clinic';
import { DEMO_PASSWORD } from '../helpers/auth';

async function check(page: import('@playwright/test').Page, name: string) {
  await expectNoHorizontalScroll(page, name);
  await expectAccessible(page, name);
  await screenshot(page, name);
}

test('every main screen is accessible, fits the tablet and is captured', async ({ page, signIn }) => {
  await signIn('prescriber');

  await page.goto('/today');
  await expect(page.getByRole('heading', { level: 1, name: /Today/ })).toBeVisible();
  await expect(page.locator('.chair').first()).toBeVisible();
  // Keyboard: the first Tab reaches the skip link, which moves focus to the content.
  await page.keyboard.press('Tab');
  await expect(page.getByRole('link', { name: 'Skip to main content' })).toBeFocused();
  await check(page, 'today-1024');

  await page.goto('/patients');
  await expect(page.getByRole('table', { name: /Patients/ })).toBeVisible();
  await check(page, 'patients-1024');

  // Search as you type (by name or MRN).
  const mrn = (await page.getByRole('table', { name: /Patients/ }).locator('td.mono').first().textContent())!.trim();
  await page.getByLabel('Search by name or MRN').fill(mrn);
  await expect(page.getByRole('table', { name: /Patients matching/ }).getByRole('row')).toHaveCount(2);
  await expect(page).toHaveURL(new RegExp(`q=${mrn}`));
  await page.getByLabel('Search by name or MRN').fill('zzzz-nobody');
  await expect(page.getByText(/No patient's name or MRN starts with/)).toBeVisible();
  await page.goto('/patients');

  // A demo patient with scores, for the chart.
  const firstPatient = page.getByRole('table', { name: /Patients/ }).getByRole('link').first();
  await firstPatient.click();
  await expect(page.getByRole('heading', { name: 'Score trajectories' })).toBeVisible();
  await expect(page.getByRole('img', { name: /trajectory/ }).first()).toBeVisible();
  await check(page, 'chart-1024');

  await page.goto('/patients/new');
  await check(page, 'new-patient-1024');

  const p = await registerPatient(page, 'Screen', 'Shot');
  await check(page, 'eligibility-1024');

  await assessEligibility(page, p, ['Psychosis (current or past)']);
  await page.goto(`/patients/${p.id}/plan`);
  await page.getByRole('radio', { name: /Esketamine nasal spray/ }).check();
  await expect(page.getByRole('heading', { name: 'Cautions: documented decisions' })).toBeVisible();
  await check(page, 'plan-1024');

  await planCourse(page, p, /Esketamine nasal spray/);
  const session = await firstSessionUrl(page, p);
  await page.goto(session);
  await page.getByRole('button', { name: 'Check in' }).click();
  await expect(page.locator('#session-state')).toHaveText('Checked in');
  await check(page, 'session-1024');

  await page.goto(`/patients/${p.id}/questionnaires/new?instrument=phq9`);
  await check(page, 'questionnaire-staff-1024');

  await page.goto('/outcomes');
  await expect(page.getByRole('heading', { level: 1, name: 'Clinic outcomes' })).toBeVisible();
  await check(page, 'outcomes-1024');

  // Durability curves for the demo clinic, by route and by protocol.
  await page.goto('/outcomes/durability');
  await expect(page.getByRole('heading', { level: 1, name: 'Durability after response' })).toBeVisible();
  await expect(page.locator('svg').first()).toBeVisible();
  await check(page, 'durability-1024');
  await page.goto('/outcomes/durability?by=protocol');
  await check(page, 'durability-protocol-1024');

  await page.goto('/checkins/schedules');
  await expect(page.getByRole('heading', { level: 1, name: 'Check-in schedules' })).toBeVisible();
  await check(page, 'checkin-schedules-1024');

  await page.goto('/outbox');
  await expect(page.getByRole('heading', { level: 1, name: /Reminder outbox/ })).toBeVisible();
  await check(page, 'outbox-1024');

  // An unknown page gets the HTML error page.
  const missing = await page.goto('/no-such-page');
  expect(missing!.status()).toBe(404);
  await expect(page.getByRole('heading', { name: 'Not found' })).toBeVisible();

  // Desktop width.
  await page.setViewportSize({ width: 1440, height: 900 });
  await page.goto('/today');
  await check(page, 'today-1440');
  await page.goto(session);
  await check(page, 'session-1440');
  await page.goto('/outcomes');
  await check(page, 'outcomes-1440');

  // Phone width: the patient-facing kiosk, and the session screen still usable.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`/kiosk/${p.id}/phq9`);
  await expect(page.getByRole('heading', { name: 'Hello Screen' })).toBeVisible();
  await check(page, 'kiosk-390');
  // The kiosk holds the session until staff re-enter their password.
  await page.goto(session);
  await page.getByLabel(/^Password for/).fill(DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Confirm' }).click();
  await expect(page).toHaveURL(new RegExp(`${session}$`));
  await check(page, 'session-390');
  // The clinic's outcomes and durability curves on a phone.
  await page.goto('/outcomes');
  await expect(page.getByRole('heading', { level: 1, name: 'Clinic outcomes' })).toBeVisible();
  await check(page, 'outcomes-390');
  await page.goto('/outcomes/durability');
  await check(page, 'durability-390');
  await page.goto('/checkins/schedules');
  await expect(page.getByRole('heading', { level: 1, name: 'Check-in schedules' })).toBeVisible();
  await check(page, 'checkin-schedules-390');
});
