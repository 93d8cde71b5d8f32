// Bedside monitor readings on the session screen: a demo clinic with its MLLP listener on, a
// reading sent over MLLP appears in the session's monitor panel without a reload, marked as a
// monitor reading with its mean pressure, and the nurse strikes it as an artefact with a reason.
import { createServer, connect } from 'node:net';
import { test as base, expect } from '@playwright/test';
import { login } from '../helpers/auth';
import { KetaServer, ketaBinary } from '../helpers/server';

async function freePort(): Promise<number> {
  return new Promise((ok) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => ok(port));
    });
  });
}

function hl7Time(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}+0000`;
}

/** Sends one ORU^R01 from chair 3's monitor and resolves with the ACK's MSA-1. */
function send(port: number, control: string, at: Date): Promise<string> {
  const t = hl7Time(at);
  const msg = [
    `MSH|^~\\&|GW|FAC|KETA|CLINIC|${t}||ORU^R01^ORU_R01|${control}|P|2.6`,
    'PID|||SYNTH-E2E^^^SIM^MR',
    'PV1||O|INFUSION^^CHAIR-3',
    `OBR|1|||182777000^monitoring of patient^SNOMED-CT|||${t}`,
    'OBX|1|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC||203|266016^MDC_DIM_MMHG^MDC|||||R',
    'OBX|2|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC||61|266016^MDC_DIM_MMHG^MDC|||||R',
    'OBX|3|NM|150023^MDC_PRESS_BLD_NONINV_MEAN^MDC||107|266016^MDC_DIM_MMHG^MDC|||||R',
    'OBX|4|NM|147842^MDC_ECG_HEART_RATE^MDC||71|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R',
  ].join('\r') + '\r';
  return new Promise((ok, fail) => {
    const sock = connect(port, '127.0.0.1', () => sock.write(Buffer.concat([Buffer.from([0x0b]), Buffer.from(msg), Buffer.from([0x1c, 0x0d])])));
    let got = '';
    sock.on('data', (b) => {
      got += b.toString('latin1');
      if (got.endsWith('\x1c\r')) {
        sock.end();
        ok(got.split('\r').find((s) => s.includes('MSA|'))!.split('|')[1]);
      }
    });
    sock.on('error', fail);
  });
}

const test = base.extend<{ monitored: { server: KetaServer; mllp: number } }>({
  monitored: async ({}, use) => {
    const mllp = await freePort();
    const server = new KetaServer();
    await server.start(process.env.KETA_BIN ?? ketaBinary(), ['--mllp-bind', `127.0.0.1:${mllp}`]);
    await use({ server, mllp });
    await server.stop();
  },
  baseURL: async ({ monitored }, use) => use(monitored.server.url),
});

test('a monitor reading arrives live on the session screen and the nurse strikes it as an artefact', async ({ page, monitored }) => {
  const { server, mllp } = monitored;
  await login(page, server, 'nurse');
  // The demo board's session checked in to Chair 3 (the demo registers its monitor).
  const sites = await (await page.request.get(`${server.url}/api/v1/sites`)).json();
  const from = new Date(Date.now() - 14 * 3600e3).toISOString().replace(/\.\d+Z$/, 'Z');
  const to = new Date(Date.now() + 14 * 3600e3).toISOString().replace(/\.\d+Z$/, 'Z');
  let session: number | undefined;
  for (const site of sites) {
    const chairs: { id: number; name: string }[] = await (await page.request.get(`${server.url}/api/v1/sites/${site.id}/chairs`)).json();
    const chair3 = chairs.find((c) => c.name === 'Chair 3');
    if (!chair3) continue;
    const sessions: { id: number; chair_id: number; state: string }[] = await (
      await page.request.get(`${server.url}/api/v1/sites/${site.id}/sessions?from=${from}&to=${to}`)
    ).json();
    session = sessions.find((s) => s.chair_id === chair3.id && ['checked_in', 'pre_dose_checks', 'dosing', 'monitoring'].includes(s.state))?.id;
    break;
  }
  expect(session, 'the demo has a session checked in to Chair 3').toBeDefined();
  await page.goto(`${server.url}/sessions/${session}`);
  const panel = page.locator('#device-readings');
  await expect(panel.getByRole('heading', { name: 'Bedside monitor readings' })).toBeVisible();

  // Sent over MLLP while the page is open: it appears without a reload.
  expect(await send(mllp, `PW-${Date.now()}`, new Date(Date.now() + server.offsetSeconds * 1000))).toBe('AA');
  const row = panel.locator('tr', { hasText: '203/61' });
  await expect(row).toBeVisible({ timeout: 15_000 });
  await expect(row).toContainText('107');
  await expect(row).toContainText('monitor');

  // Struck with a reason (a reason is required).
  await row.getByRole('link', { name: /Strike as artefact/ }).click();
  await page.getByRole('button', { name: 'Strike as artefact' }).click();
  await expect(page.getByText('say why the reading is an artefact')).toBeVisible();
  await page.getByLabel(/Reason/).fill('Cuff slipped down the arm');
  await page.getByRole('button', { name: 'Strike as artefact' }).click();
  await expect(page).toHaveURL(new RegExp(`/sessions/${session}`));
  const struck = page.locator('#device-readings tr', { hasText: '203/61' });
  await expect(struck).toContainText('Struck by rn.demo', { timeout: 15_000 });
  await expect(struck).toContainText('Cuff slipped down the arm');
  // The main vitals table no longer shows it.
  await expect(page.locator('#vitals')).not.toContainText('203/61');
});
