// Running the clinic from the browser. The administrator creates a site with chairs
// and a staff account, changes a clinic-wide setting (a refused value says what to fix), and
// the prescriber changes a site's PK threshold; each screen shows who changed it, passes axe
// with no serious violation and fits the window at 390, 1024 and 1440 px.
import { test, expect, screenshot, unique } from '../helpers/fixtures';
import { expectAccessible, expectNoHorizontalScroll } from '../helpers/a11y';

test.use({ freshClinic: true });

const WIDTHS = [390, 1024, 1440];

async function checkAllWidths(page: import('@playwright/test').Page, name: string) {
  for (const width of WIDTHS) {
    await page.setViewportSize({ width, height: 900 });
    await expectNoHorizontalScroll(page, `${name}-${width}`);
    await expectAccessible(page, `${name}-${width}`);
    await screenshot(page, `${name}-${width}`);
  }
  await page.setViewportSize({ width: 1024, height: 768 });
}

test('an administrator sets up a site, a staff account and a clinic setting without the API', async ({ page, signIn }) => {
  await signIn('administrator');
  await page.goto('/today');
  await page.getByRole('link', { name: 'Administration' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Administration' })).toBeVisible();
  await checkAllWidths(page, 'admin-index');

  // A site: a wrong time zone is refused beside its field, what was typed is kept.
  const code = `N-${unique()}`.slice(0, 16);
  await page.getByRole('link', { name: 'Sites and chairs' }).click();
  await page.getByLabel('Code').fill(code);
  await page.getByLabel('Name', { exact: true }).fill('North clinic');
  await page.getByLabel(/^Time zone/).fill('Chicago');
  await page.getByLabel(/^Crisis line/).fill('988');
  await page.getByLabel(/^Chairs/).fill('Chair A\nChair B');
  await page.getByRole('button', { name: 'Create site' }).click();
  await expect(page.getByText('use an IANA time zone')).toBeVisible();
  await expect(page.getByLabel('Name', { exact: true })).toHaveValue('North clinic');
  await checkAllWidths(page, 'admin-sites-refused');
  await page.getByLabel(/^Time zone/).fill('America/Chicago');
  await page.getByRole('button', { name: 'Create site' }).click();
  await expect(page.getByRole('heading', { level: 1, name: new RegExp(`Site ${code}`) })).toBeVisible();
  await expect(page.getByText('by admin.demo').first()).toBeVisible();
  await page.getByLabel('Address', { exact: true }).fill('12 Elm Street\nAustin TX 78701');
  await page.getByRole('button', { name: 'Save the site' }).click();
  await expect(page.getByText('Saved.')).toBeVisible();
  await expect(page.getByLabel('Address', { exact: true })).toHaveValue('12 Elm Street\nAustin TX 78701');
  await page.getByLabel('New chair').fill('Chair C');
  await page.getByRole('button', { name: 'Add the chair' }).click();
  await expect(page.getByRole('listitem').filter({ hasText: 'Chair C' })).toBeVisible();
  await checkAllWidths(page, 'admin-site');

  // A staff account at the new site; its authenticator key is shown once.
  const username = `rn.${unique().toLowerCase()}`;
  await page.goto('/admin/staff');
  await page.getByLabel(/^User name/).fill(username);
  await page.getByLabel(/^Name/).fill('Robin North');
  await page.getByLabel('Role').selectOption('nurse');
  await page.getByLabel(/^First password/).fill('a long enough passphrase 9');
  await page.getByRole('checkbox', { name: new RegExp(code) }).check();
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByText(`Account ${username} created.`)).toBeVisible();
  await expect(page.locator('#new-totp')).toHaveText(/^[A-Z2-7]{16,}$/);
  await checkAllWidths(page, 'admin-staff');
  await page.getByRole('link', { name: username }).click();
  await expect(page.getByText('Never')).toBeVisible();
  await expect(page.getByRole('link', { name: 're-enter your password' })).toHaveCount(0); // just signed in
  await checkAllWidths(page, 'admin-user');

  // A clinic-wide setting: out of range is refused naming the field, then saved and attributed.
  await page.goto('/admin/settings');
  await page.getByLabel(/^Alcohol-free hours/).fill('500');
  await page.getByLabel(/^Sedative-free hours/).fill('12');
  await page.getByRole('button', { name: 'Save the pre-dose hours' }).click();
  await expect(page.getByText('must be 1 to 168 hours')).toBeVisible();
  await page.getByLabel(/^Alcohol-free hours/).fill('24');
  await page.getByRole('button', { name: 'Save the pre-dose hours' }).click();
  await expect(page.getByText('Saved.')).toBeVisible();
  await expect(page.getByLabel(/^Alcohol-free hours/)).toHaveValue('24');
  await checkAllWidths(page, 'admin-settings');
});

test('the prescriber changes a site rule; a nurse reads the rules but cannot change them', async ({ page, signIn, secondUser }) => {
  await signIn('prescriber');
  await page.goto('/admin/settings');
  const threshold = page.getByLabel(/^Threshold \(ng\/mL\)/).first();
  await threshold.fill('-3');
  await page.getByRole('button', { name: 'Save the PK threshold' }).first().click();
  await expect(page.getByText('between 0 and 10,000')).toBeVisible();
  await page.getByLabel(/^Threshold \(ng\/mL\)/).first().fill('1.5');
  await page.getByRole('button', { name: 'Save the PK threshold' }).first().click();
  await expect(page.getByText('Saved.')).toBeVisible();
  await expect(page.getByText('by dr.demo').first()).toBeVisible();
  await checkAllWidths(page, 'admin-settings-prescriber');

  const nurse = await secondUser('nurse');
  await nurse.goto('/admin/settings');
  await expect(nurse.getByText('A prescriber (the medical director) changes these.')).toBeVisible();
  await expect(nurse.getByRole('button', { name: 'Save the PK threshold' })).toHaveCount(0);
  const r = await nurse.goto('/admin/staff');
  expect(r!.status()).toBe(403);
});
