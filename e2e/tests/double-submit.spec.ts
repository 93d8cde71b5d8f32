// A double-click records once: every form carries a one-time token, so the second
// submission of the same rendered form shows the first result instead of a second row.
import { test, expect, unique } from '../helpers/fixtures';
import { registerPatient } from '../helpers/clinic';

test('a double-clicked weight form records one weight', async ({ page, signIn }) => {
  await signIn('prescriber');
  const patient = await registerPatient(page, 'Dana', `Double${unique()}`);
  await page.goto(`/patients/${patient.id}`);
  const weights = page.locator('#weights');
  await weights.getByText('Add a weight').click();
  await weights.getByLabel('Weight (kg)').fill('81.5');
  await weights.getByLabel('Measured on').fill('2026-01-05');
  await weights.getByRole('button', { name: 'Add weight' }).dblclick();
  await expect(page).toHaveURL(new RegExp(`/patients/${patient.id}(#weights)?$`));
  await page.goto(`/patients/${patient.id}`);
  await expect(page.locator('#weights li').filter({ hasText: '81.5 kg' })).toHaveCount(1);

  // The same rendered form sent again (a retry after a timeout) records nothing more.
  const form = page.locator(`form[action="/patients/${patient.id}/weights"]`);
  const fields = {
    csrf_token: await form.locator('input[name="csrf_token"]').inputValue(),
    form_token: await form.locator('input[name="form_token"]').inputValue(),
    weight_kg: '90',
    measured_on: '2026-01-06',
    weight_type: 'actual',
  };
  const first = await page.request.post(`/patients/${patient.id}/weights`, { form: fields, maxRedirects: 0 });
  const retry = await page.request.post(`/patients/${patient.id}/weights`, { form: fields, maxRedirects: 0 });
  expect(first.status()).toBe(303);
  expect(retry.status()).toBe(303);
  expect(retry.headers()['idempotent-replayed']).toBe('true');
  await page.goto(`/patients/${patient.id}`);
  await expect(page.locator('#weights li').filter({ hasText: '90 kg' })).toHaveCount(1);
});
