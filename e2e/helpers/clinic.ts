// Steps through the clinic's screens that several scenarios share.
import { expect, type Page } from '@playwright/test';
import { unique } from './fixtures';
import { DEMO_PASSWORD } from './auth';

export interface NewPatient {
  id: string;
  name: string;
  mrn: string;
}

/** Registers a patient through the New patient form; ends on the eligibility page. */
export async function registerPatient(page: Page, given = 'Avery', family = `Test${unique()}`): Promise<NewPatient> {
  const mrn = `E2E-${unique()}`;
  await page.goto('/patients/new');
  await page.getByLabel('MRN').fill(mrn);
  await page.getByLabel('Given name').fill(given);
  await page.getByLabel('Family name').fill(family);
  await page.getByLabel('Date of birth').fill('1984-03-09');
  await page.getByLabel('Sex').selectOption('female');
  await page.getByLabel('Treated for').selectOption('depression');
  await page.getByLabel(/^Diagnoses/).fill('F33.2');
  await page.getByLabel(/^Weight \(kg\)/).fill('72');
  await page.getByRole('button', { name: 'Register patient' }).click();
  await expect(page).toHaveURL(/\/patients\/\d+\/eligibility$/);
  const id = page.url().match(/\/patients\/(\d+)\//)![1];
  return { id, name: `${given} ${family}`, mrn };
}

/** Saves a contraindication assessment for every route with the given items ticked. */
export async function assessEligibility(page: Page, patient: NewPatient, present: string[] = []) {
  await page.goto(`/patients/${patient.id}/eligibility`);
  for (const label of present) {
    await page.getByRole('row').filter({ hasText: label }).getByRole('checkbox').check();
  }
  await page.getByRole('button', { name: 'Save assessment for all routes' }).click();
  await expect(page).toHaveURL(/\/eligibility#results$/);
}

/** Plans a course from today on the given route (label as shown) and returns to the chart. */
export async function planCourse(page: Page, patient: NewPatient, routeLabel: RegExp, opts: { time?: string; chair?: string; decisions?: string } = {}) {
  await page.goto(`/patients/${patient.id}/plan`);
  await page.getByRole('radio', { name: routeLabel }).check();
  // Choosing a route re-renders the form with that route's checks (htmx).
  await expect(page.getByRole('heading', { name: 'Pre-treatment checks and consent' })).toBeVisible();
  if (opts.time) await page.getByLabel(/^Time/).fill(opts.time);
  if (opts.chair) await page.getByLabel(/^Chair/).selectOption({ label: opts.chair });
  for (const box of await page.locator('input[name="check"]').all()) await box.check();
  // The clinic's today (the form's default first-session date) is the consent date.
  const today = await page.getByLabel('First session').inputValue();
  await page.getByLabel('Consent form signed on').fill(today);
  // Each caution: the benefit expected, the risk and why treatment goes ahead (kept as a record).
  for (const area of await page.locator('textarea[name^="caution."]').all()) {
    await area.fill(opts.decisions ?? 'Benefit outweighs risk after discussion; BP to be checked each visit. Decided by the prescriber.');
  }
  await page.getByRole('button', { name: 'Plan the course' }).click();
  await expect(page).toHaveURL(new RegExp(`/patients/${patient.id}#sessions-title$`));
}

/** The first planned session of the patient's newest course, from the chart. */
export async function firstSessionUrl(page: Page, patient: NewPatient): Promise<string> {
  await page.goto(`/patients/${patient.id}`);
  const links = page.getByRole('table', { name: 'Sessions' }).getByRole('link');
  // Sessions are listed newest first; the first planned one is the last row.
  const href = await links.last().getAttribute('href');
  return href!;
}

/** The signed-in page's CSRF token (from the `<body>`'s hx-headers). */
export async function csrfToken(page: Page): Promise<string> {
  await page.goto('/today');
  const h = await page.locator('body').getAttribute('hx-headers');
  return JSON.parse(h!)['X-CSRF-Token'];
}

/**
 * Makes sure the patient's site has stock for the route: if the demo clinic holds none,
 * the signed-in user receives a lot through the ledger API, re-entering their password
 * and with the nurse as the checking witness (as the ledger requires).
 */
export async function ensureStock(page: Page, patient: NewPatient, substance: 'ketamine' | 'esketamine') {
  const p = await (await page.request.get(`/api/v1/patients/${patient.id}`)).json();
  const lots = await (await page.request.get(`/api/v1/ledger/lots?site_id=${p.site_id}`)).json();
  if (lots.some((l: { product: { substance: string } }) => l.product.substance === substance)) return;
  let r = await page.request.post('/api/v1/auth/reauth', { data: { password: DEMO_PASSWORD }, headers: { 'X-CSRF-Token': await csrfToken(page) } });
  expect(r.status(), await r.text()).toBe(200);
  const presentation =
    substance === 'ketamine'
      ? { form: 'vial', concentration_mg_per_ml: 50, ml_per_vial: 10 }
      : { form: 'nasal_spray_device', mg_per_device: 28, devices_per_package: 2 };
  r = await page.request.post('/api/v1/ledger/receipts', {
    headers: { 'X-CSRF-Token': await csrfToken(page) },
    data: {
      entry: {
        site_id: p.site_id,
        supplier_name: 'E2E Pharmaceutical Supply',
        supplier_address: '1 Test Way, Austin TX',
        supplier_dea_number: 'PS1234563',
        substance,
        presentation,
        containers: 10,
        lot_number: `E2E${Date.now().toString(36).toUpperCase()}`,
        ndc: substance === 'ketamine' ? '0409-2051-05' : '50458-028-02',
        expires_on: '2035-12-31',
      },
      witness_username: 'rn.demo',
      witness_password: DEMO_PASSWORD,
    },
  });
  expect(r.status(), await r.text()).toBe(201);
}

/**
 * The patient signs the consent forms a route needs on the tablet (typed name and a drawn
 * signature) and the signed-in clinician countersigns each: the treatment consent for the
 * route and, for esketamine, the REMS enrolment. Without them the dose is refused.
 */
export async function signConsents(page: Page, patient: NewPatient, route: 'iv_racemic' | 'intranasal_esketamine') {
  const forms = route === 'intranasal_esketamine' ? [`treatment_${route}`, 'rems_enrolment'] : [`treatment_${route}`];
  for (const form of forms) {
    await page.goto(`/patients/${patient.id}/consents?form=${form}`);
    if (form === 'rems_enrolment') {
      await page.getByLabel(/^REMS patient id/).fill(`E2E${unique()}`);
      const today = await page.getByLabel('Enrolment date').getAttribute('max');
      await page.getByLabel('Enrolment date').fill(today!);
    }
    await page.getByLabel('Patient: type your full name').fill(patient.name);
    const pad = await page.locator('canvas.signature-pad').boundingBox();
    await page.mouse.move(pad!.x + 20, pad!.y + 60);
    await page.mouse.down();
    await page.mouse.move(pad!.x + 120, pad!.y + 30, { steps: 5 });
    await page.mouse.move(pad!.x + 220, pad!.y + 90, { steps: 5 });
    await page.mouse.up();
    await page.getByRole('button', { name: /^Sign (Consent to treatment|SPRAVATO REMS)/ }).click();
    await expect(page).toHaveURL(new RegExp(`/patients/${patient.id}/consents#on-file$`));
    await page.getByRole('button', { name: /^Countersign as / }).first().click();
    await expect(page.locator('#on-file')).toContainText('countersigned by');
  }
}
