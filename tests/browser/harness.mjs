// What every browser script shares: launching the headless Chromium the test names, and
// collecting page errors (console errors, uncaught exceptions, HTTP errors) so a run fails
// on any of them.
import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';

export function launch(executablePath) {
  return chromium.launch({
    executablePath: executablePath || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// `watch(page, who, expected)` records `page`'s errors in `errors`; `expected(response)`
// says which HTTP errors a step provokes on purpose, `quiet(text)` which console errors
// they cause.
export function errorLog({ quiet = () => false } = {}) {
  const errors = [];
  function watch(page, who, expected = () => false) {
    page.on('console', (m) => { if (m.type() === 'error' && !quiet(m.text())) errors.push(`${who}: ${m.text()}`); });
    page.on('pageerror', (e) => errors.push(`${who}: ${e}`));
    page.on('response', (r) => { if (r.status() >= 400 && !expected(r)) errors.push(`${who}: ${r.status()} ${r.url()}`); });
  }
  return { errors, watch };
}

// RFC 6238 with the defaults authenticator apps use: SHA-1, 6 digits, 30 s.
export function totp(base32) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of base32.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(code).padStart(6, '0');
}

// Signs `page` in at `appUrl` with the password form and waits for the workspace.
export async function signIn(page, appUrl, email, password, timeout = 15_000) {
  await page.goto(`${appUrl}/login`);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.click('button[type=submit]');
  await page.waitForURL('**/app', { timeout });
}
