// The controlled-substance books in the browser: a nurse, with a prescriber as witness
// signing on the same tablet, records a receipt, a witnessed waste and a count that does
// not match the book, then resolves the discrepancy from the reconciliation. Each entry
// needs the nurse's password re-entered; a wrong witness password records nothing; the
// dispensing log prints the entries, and downloads as a PDF with the same entries.
import { test, expect, screenshot, unique } from '../helpers/fixtures';
import { DEMO_PASSWORD } from '../helpers/auth';
import { expectAccessible } from '../helpers/a11y';
import { downloadPdf } from '../helpers/pdf';
import type { Page } from '@playwright/test';

async function witness(page: Page, username: string, password: string) {
  const box = page.getByRole('group', { name: /Witness|Second counter/ });
  await box.getByLabel('User name').fill(username);
  await box.getByLabel('Password').fill(password);
}

/** The UTC date `days` from the server's now, as the date filter takes it. */
function serverDate(nowSeconds: number, days: number): string {
  return new Date((nowSeconds + days * 86_400) * 1000).toISOString().slice(0, 10);
}

test('a nurse and a witness do a receipt, a waste, a count and a reconciliation', async ({ page, signIn, server }) => {
  await signIn('nurse');
  await page.goto('/today');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Ledger' }).click();
  await expect(page.getByRole('heading', { name: 'Controlled-substance ledger', level: 1 })).toBeVisible();

  // Entries need the password again within the last few minutes (the same re-authentication as
  // the session's "Dose given"); a sign-in a moment ago counts, so the notice shows only once
  // that has lapsed.
  const reauth = page.getByRole('link', { name: 'Re-enter password' });
  if (await reauth.count()) {
    await reauth.click();
    await page.getByLabel(/Password/).fill(DEMO_PASSWORD);
    await page.getByRole('button', { name: 'Confirm' }).click();
    await expect(page).toHaveURL(/\/ledger$/);
  }
  await expect(reauth).toHaveCount(0);

  // Receipt: checked against the invoice by a second person.
  const lotNumber = `PW${unique()}`.toUpperCase();
  await page.getByRole('link', { name: 'Receipt', exact: true }).click();
  await page.getByLabel('Supplier', { exact: true }).fill('Playwright Pharmaceutical Supply');
  await page.getByLabel("Supplier's DEA number").fill('PS1234563');
  await page.getByLabel("Supplier's address").fill('1 Test Way, Austin TX');
  await page.getByLabel('Substance').selectOption('ketamine');
  await page.getByLabel('Concentration (mg/mL)').fill('50');
  await page.getByLabel('Vial size (mL)').fill('10');
  await page.getByLabel('Containers received (vials or packages)').fill('5');
  await page.getByLabel('Expiry date').fill('2035-12-31');
  await page.getByLabel("Manufacturer's lot number").fill(lotNumber);
  await page.getByLabel('NDC').fill('0409-2051-05');
  // A wrong witness password records nothing and says so beside the field.
  await witness(page, 'dr.demo', 'not the password');
  await page.getByRole('button', { name: 'Record receipt' }).click();
  await expect(page.locator('#witness_password-error')).toContainText('do not match');
  await expect(page.getByLabel("Manufacturer's lot number")).toHaveValue(lotNumber);
  await expectAccessible(page, 'ledger receipt with errors');
  await witness(page, 'dr.demo', DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Record receipt' }).click();
  await expect(page).toHaveURL(/\/ledger\/lots\/\d+#entry-\d+$/);
  await expect(page.locator('#lot-on-hand')).toHaveText('50 mL (2500 mg)');
  const lotUrl = new URL(page.url());
  const lotId = lotUrl.pathname.split('/').pop()!;

  // Witnessed waste, from the lot's page.
  await page.getByRole('link', { name: 'Waste' }).click();
  await expect(page.getByLabel('Lot', { exact: true })).toHaveValue(lotId);
  await page.getByLabel('Amount wasted', { exact: true }).fill('1.5');
  await page.getByLabel('How it was made non-retrievable').fill('Drug-waste container');
  await page.getByLabel('Why', { exact: true }).fill('Vial damaged on opening');
  await witness(page, 'dr.demo', DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Record waste' }).click();
  await expect(page.locator('#lot-on-hand')).toHaveText('48.5 mL (2425 mg)');
  await expect(page.getByRole('row').filter({ hasText: 'Waste' })).toContainText('dr.demo');

  // A count that does not match the book needs a reason, and raises a discrepancy.
  await page.getByRole('link', { name: 'Count this lot' }).click();
  await page.getByLabel('Counted on the shelf').fill('48');
  await page.getByRole('button', { name: 'Record count' }).click();
  await expect(page.locator('#reason-error')).toContainText('differs from the ledger');
  await page.getByLabel('If the count differs from the book: why').fill('Half a millilitre short of the book');
  await page.getByRole('button', { name: 'Record count' }).click();
  await expect(page.getByRole('row').filter({ hasText: 'Count' })).toContainText('difference -0.5 mL');

  // The reconciliation shows it; an adjustment witnessed by the prescriber explains it.
  await page.goto('/ledger/reconciliation');
  const lot = page.locator(`#lot-${lotId}`);
  await expect(lot.getByText('Discrepancy', { exact: true })).toBeVisible();
  await lot.getByRole('link', { name: 'Explain with an adjustment' }).click();
  await page.getByRole('radio', { name: /Down/ }).check();
  await page.getByLabel('Amount', { exact: true }).fill('0.5');
  await page.getByLabel('Why the book is adjusted').fill('Overfill estimate on receipt was high; confirmed at count');
  await witness(page, 'dr.demo', DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Record adjustment' }).click();
  await expect(page.locator('#lot-on-hand')).toHaveText('48 mL (2400 mg)');
  await page.goto('/ledger/reconciliation');
  await expect(page.locator(`#lot-${lotId}`).getByText('Balanced', { exact: true })).toBeVisible();
  await expectAccessible(page, 'ledger reconciliation');
  await screenshot(page, 'ledger-reconciliation');

  // The dispensing log lists every entry with who recorded and who witnessed it.
  await page.goto('/ledger/print/dispensing-log?substance=ketamine');
  const log = page.getByRole('table', { name: /Dispensing log entries/ });
  for (const kind of ['Receipt', 'Waste', 'Count', 'Adjustment']) {
    await expect(log.getByRole('row').filter({ hasText: lotNumber }).filter({ hasText: kind }).first()).toBeVisible();
  }
  await page.emulateMedia({ media: 'print' });
  await expect(page.getByRole('navigation', { name: 'Main' })).toBeHidden();
  await screenshot(page, 'ledger-dispensing-log-print');
  await page.emulateMedia({ media: 'screen' });

  // The same log as a PDF, for the days around today (the demo's whole history is long):
  // every entry of the lot, who witnessed it, and who produced the document.
  const now = server.nowSeconds();
  await page.goto(`/ledger/print/dispensing-log?substance=ketamine&from=${serverDate(now, -1)}&to=${serverDate(now, 1)}`);
  const pdf = await downloadPdf(page, page.getByRole('link', { name: 'Download PDF' }));
  for (const want of ['Controlled-substance dispensing log', lotNumber, 'Receipt', 'Waste', 'Count', 'Adjustment', 'dr.demo', 'Produced by Demo Nurse (rn.demo)']) {
    expect(pdf, want).toContain(want);
  }
});

test('the front desk has no ledger, and an auditor reads it without recording', async ({ page, signIn, secondUser }) => {
  await signIn('front_desk');
  await page.goto('/today');
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Ledger' })).toHaveCount(0);
  const refused = await page.request.get('/ledger');
  expect(refused.status()).toBe(403);
  const pdf = await page.request.get('/ledger/print/dispensing-log/pdf');
  expect(pdf.status()).toBe(403);
  expect(pdf.headers()['content-type']).not.toBe('application/pdf');

  const auditor = await secondUser('auditor');
  await auditor.goto('/ledger');
  await expect(auditor.getByRole('heading', { name: 'Stock on hand' })).toBeVisible();
  await expect(auditor.getByRole('link', { name: 'Receipt', exact: true })).toHaveCount(0);
  expect((await auditor.request.get('/ledger/receipt')).status()).toBe(403);
});
