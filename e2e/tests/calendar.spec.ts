// Running the clinic from the calendar: the front desk books a whole induction course into
// free chairs, moves one session, marks today's arrival (which puts the patient on the
// board), sets who is on duty, and, days later, records a no-show with its reason. The
// prescriber's course order page and the calendar pass axe with no serious violation and fit
// the window at 390, 1024 and 1440 px.
import { test, expect, screenshot, unique } from '../helpers/fixtures';
import { expectAccessible, expectNoHorizontalScroll } from '../helpers/a11y';
import { assessEligibility, csrfToken, registerPatient } from '../helpers/clinic';

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

test('the front desk books a course, moves a session, marks an arrival and records a no-show', async ({ page, signIn, secondUser, server }) => {
  // The prescriber registers a patient and opens an IV induction course on its protocol,
  // not yet booked, then records the order for it.
  await signIn('prescriber');
  const p = await registerPatient(page, 'Cal', `Endar${unique()}`);
  await assessEligibility(page, p);
  const token = await csrfToken(page);
  await page.goto('/calendar');
  const today = await page.locator('#cal-from').inputValue();
  const created = await page.request.post(`/api/v1/patients/${p.id}/courses`, {
    headers: { 'X-CSRF-Token': token },
    data: { route: 'iv_racemic', phase: 'induction', planned_sessions: 6, start_date: today, protocol: 'iv-racemic-0.5' },
  });
  expect(created.status(), await created.text()).toBe(201);
  const course = (await created.json()).id as number;

  await page.goto(`/courses/${course}/order`);
  await expect(page.getByRole('heading', { level: 1, name: /Prescriber's order/ })).toBeVisible();
  await page.getByLabel('Protocol').selectOption('iv-racemic-0.5');
  await page.getByLabel('Dose', { exact: true }).fill('0.5');
  await page.getByLabel('Unit', { exact: true }).selectOption('mg_per_kg');
  await page.getByLabel(/^Infusion time/).fill('40');
  await page.getByLabel(/^Bag final volume/).fill('100');
  await page.getByRole('button', { name: 'Record the order' }).click();
  await expect(page.getByRole('heading', { name: 'In force' })).toBeVisible();
  // 72 kg at 0.5 mg/kg.
  await expect(page.getByText('36 mg', { exact: true })).toBeVisible();
  await checkAllWidths(page, 'course-order');

  // The front desk books every session of the course at 22:00 from today.
  const desk = await secondUser('front_desk');
  await desk.goto('/calendar');
  await expect(desk.getByRole('heading', { level: 1, name: /Chair calendar/ })).toBeVisible();
  const booking = desk.getByRole('form', { name: `Book the course of ${p.name}` });
  await booking.getByLabel('First session').fill(today);
  await booking.getByLabel('Time').fill('22:00');
  await booking.getByRole('button', { name: 'Book every session' }).click();
  await expect(desk.getByRole('alert')).toHaveCount(0);
  const mine = desk.locator('.cal-session').filter({ hasText: p.name });
  await expect(mine.first()).toBeVisible();
  await checkAllWidths(desk, 'calendar-week');

  // Every session of the course is booked: six across this week and the next ones.
  let booked = await mine.count();
  for (let week = 1; week < 4 && booked < 6; week++) {
    await desk.getByRole('link', { name: 'Next week' }).click();
    booked += await desk.locator('.cal-session').filter({ hasText: p.name }).count();
  }
  expect(booked).toBe(6);

  // Move the course's second session to 20:00 the same day.
  await desk.goto('/calendar');
  const later = desk.locator('.cal-session').filter({ hasText: p.name }).filter({ hasText: '#2' });
  await later.locator('summary', { hasText: 'Move' }).click();
  await later.getByLabel('Time').fill('20:00');
  await later.getByLabel('Reason (optional)').fill('Patient asked for an earlier slot');
  await later.getByRole('button', { name: 'Move', exact: true }).click();
  const moved = desk.locator('.cal-session').filter({ hasText: p.name }).filter({ hasText: '#2' });
  await expect(moved).toContainText('20:00');
  await expect(moved).toContainText('Moved from');

  // Today's session: the front desk marks the arrival; the patient is on the board.
  const first = desk.locator('.cal-session').filter({ hasText: p.name }).filter({ hasText: '#1' });
  await first.getByRole('button', { name: /^Arrived/ }).click();
  await expect(desk.locator('.cal-session').filter({ hasText: p.name }).filter({ hasText: '#1' })).toContainText('Arrived');
  await desk.goto('/today');
  await expect(desk.locator('.chair').filter({ hasText: p.name })).toBeVisible();

  // The rota: the front desk puts the demo nurse on duty today; it shows in the day view.
  await desk.goto(`/calendar?from=${today}&view=day`);
  const duty = desk.locator('tr.duty-row');
  await duty.locator('summary', { hasText: 'Set who is on duty' }).first().click();
  const nurse = duty.getByRole('checkbox', { name: /\(nurse\)$/ }).first();
  const nurseName = ((await nurse.locator('..').textContent()) ?? '').trim();
  await nurse.check();
  await duty.getByRole('button', { name: /^Save the rota/ }).first().click();
  await expect(desk.locator('tr.duty-row')).toContainText(nurseName);
  await checkAllWidths(desk, 'calendar-day');

  // A week later the sessions of the first days are past: one is recorded as a no-show.
  server.advance(7 * 24 * 60);
  await signIn('front_desk', desk); // a week on, the sign-in has lapsed
  await desk.goto(`/calendar?from=${today}&view=week`);
  const due = desk.locator('.cal-session').filter({ hasText: p.name }).filter({ has: desk.locator('summary', { hasText: 'No-show' }) }).last();
  await due.locator('summary', { hasText: 'No-show' }).click();
  const noShow = due.locator('form[action$="/no-show"]');
  await noShow.getByLabel('Why the patient did not come').fill('Did not attend; phoned, no answer');
  // This protocol gives a missed session later and moves the rest: without a make-up date the
  // no-show is refused, naming the rule; with one it is recorded and the session made up.
  await noShow.getByRole('button', { name: 'Record the no-show' }).click();
  await expect(desk.getByRole('alert')).toContainText('give a make-up date');
  const makeUp = new Date(Date.parse(`${today}T12:00:00Z`) + 9 * 86_400_000).toISOString().slice(0, 10);
  const again = desk.locator('.cal-session').filter({ hasText: p.name }).filter({ has: desk.locator('summary', { hasText: 'No-show' }) }).last();
  await again.locator('summary', { hasText: 'No-show' }).click();
  const retry = again.locator('form[action$="/no-show"]');
  await retry.getByLabel('Why the patient did not come').fill('Did not attend; phoned, no answer');
  await retry.getByLabel(/^Make-up date/).fill(makeUp);
  await retry.getByRole('button', { name: 'Record the no-show' }).click();
  await expect(desk.getByRole('alert')).toHaveCount(0);
  await desk.goto(`/calendar?from=${makeUp}&view=day`);
  await expect(desk.locator('.cal-session').filter({ hasText: p.name })).toHaveCount(1);
});
