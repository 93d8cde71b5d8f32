// Signing in as a demo account: user name, the demo password, then the TOTP code the
// account's fixed demo key gives at the server's time (the server's clock may run ahead).
import { createHmac } from 'node:crypto';
import { expect, type Cookie, type Page } from '@playwright/test';
import type { KetaServer } from './server';

export type Role = 'administrator' | 'prescriber' | 'nurse' | 'front_desk' | 'auditor';

export const DEMO_PASSWORD = 'ketamine demo clinic';

const USERS: Record<Role, string> = {
  administrator: 'admin.demo',
  prescriber: 'dr.demo',
  nurse: 'rn.demo',
  front_desk: 'desk.demo',
  auditor: 'audit.demo',
};

/** The demo account's fixed TOTP key (see crates/cli/src/demo_accounts.rs). */
function totpKey(role: Role): string {
  return ('KETADEMO' + role.replace('_', '').toUpperCase()).padEnd(32, 'A');
}

function base32(s: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const c of s) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

export function totp(key: string, step: number): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = createHmac('sha1', base32(key)).update(msg).digest();
  const off = h[19] & 0x0f;
  const bin = ((h[off] & 0x7f) << 24) | (h[off + 1] << 16) | (h[off + 2] << 8) | h[off + 3];
  return String(bin % 1_000_000).padStart(6, '0');
}

// A code is accepted once per account (replay is refused), so successive sign-ins of
// the same account use successive time steps, waiting when they run out.
const lastStep = new Map<string, number>();

async function nextCode(server: KetaServer, role: Role): Promise<string> {
  const user = USERS[role];
  for (;;) {
    const now = Math.floor(server.nowSeconds() / 30);
    // Never the previous step: a code taken at the end of a step and checked a second later
    // would be two steps old, outside the server's window.
    const step = Math.max(now, (lastStep.get(user) ?? -Infinity) + 1);
    if (step <= now + 1) {
      lastStep.set(user, step);
      return totp(totpKey(role), step);
    }
    await new Promise((r) => setTimeout(r, 2_000));
  }
}

// Signed-in sessions are reused within a worker (each sign-in spends a TOTP time step,
// and a code is accepted only once), falling back to a full sign-in when the session
// has ended (idle limit, a moved clock, re-authentication rotating the cookie).
const sessions = new Map<string, Cookie[]>();

/** Signs `page` in as the demo account for `role`. */
export async function login(page: Page, server: KetaServer, role: Role): Promise<void> {
  const key = `${server.url}|${role}`;
  const saved = sessions.get(key);
  if (saved) {
    await page.context().clearCookies();
    await page.context().addCookies(saved);
    await page.goto('/today');
    if (new URL(page.url()).pathname === '/today') return;
  }
  await page.context().clearCookies();
  await page.goto('/login?next=/today');
  await page.getByLabel('User name').fill(USERS[role]);
  await page.getByLabel('Password').fill(DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.getByLabel(/6-digit code/).fill(await nextCode(server, role));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/today$/);
  sessions.set(key, await page.context().cookies());
}
