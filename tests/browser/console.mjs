// The platform console in headless Chromium, started by tests/it/browser.rs with:
//   APP_URL         the kefu server under test
//   OUT_DIR         where screenshots go
//   CHROMIUM        the browser binary
//   ADMIN_EMAIL     a platform admin without a second factor yet…
//   ADMIN_PASSWORD  …and their password
//   OWNER_TOKEN     a merchant owner's session token (their workspace receives the announcement)
//   MERCHANT_ID     that merchant's id
// The admin enrols TOTP (the code is computed here from the key the page shows), looks at
// every page, publishes an announcement that appears live in the owner's open workspace,
// saves the system settings, suspends and resumes the merchant, and opens a support
// session. Exits non-zero on the first failed step or any console error.
import { launch, errorLog, totp } from './harness.mjs';
import { mkdirSync } from 'node:fs';

const { APP_URL, OUT_DIR, CHROMIUM, ADMIN_EMAIL, ADMIN_PASSWORD, OWNER_TOKEN, MERCHANT_ID } = process.env;
const T = 15_000;
mkdirSync(OUT_DIR, { recursive: true });

// `expected`: responses that are part of the story (the paused page of a suspended merchant).
const { errors, watch } = errorLog({ quiet: (text) => /status of 403/.test(text) });
let step = 'starting';
const shot = (page, name) => page.screenshot({ path: `${OUT_DIR}/${name}.png`, fullPage: true });

const browser = await launch(CHROMIUM);
try {
  step = 'the owner has the workspace open';
  const ownerCtx = await browser.newContext({ viewport: { width: 1366, height: 860 }, locale: 'en-US' });
  const { hostname } = new URL(APP_URL);
  await ownerCtx.addCookies([{ name: 'kefu_session', value: OWNER_TOKEN, domain: hostname, path: '/' }]);
  const owner = await ownerCtx.newPage();
  watch(owner, 'workspace', (r) => r.status() === 403 && new URL(r.url()).pathname === '/app');
  await owner.goto(`${APP_URL}/app`);
  await owner.locator('#inbox').waitFor({ timeout: T });

  step = 'the admin signs in and enrols a second factor';
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: 'en-US' });
  const page = await ctx.newPage();
  watch(page, 'console');
  await page.goto(`${APP_URL}/platform`);
  await page.waitForURL('**/platform/login?next=%2Fplatform', { timeout: T });
  await page.fill('#email', ADMIN_EMAIL);
  await page.fill('#password', ADMIN_PASSWORD);
  await page.click('button[type=submit]');
  await page.locator('.qr svg').waitFor({ timeout: T });
  await shot(page, 'console-enrol');
  const secret = await page.inputValue('#totp-secret');
  await page.fill('#code', totp(secret));
  await page.click('button[type=submit]');
  await page.locator('#recovery-codes li').nth(9).waitFor({ timeout: T });
  await shot(page, 'console-recovery-codes');
  await page.click('a.btn-primary');
  await page.waitForURL('**/platform', { timeout: T });

  step = 'dashboard';
  await page.locator('.kpis .kpi').first().waitFor({ timeout: T });
  await shot(page, 'console-dashboard');

  step = 'merchants list and filters';
  await page.click('.side-nav a[href="/platform/merchants"]');
  await page.locator('#merchants-table tbody tr').first().waitFor({ timeout: T });
  await shot(page, 'console-merchants');
  await page.fill('input[name=q]', 'Lumen');
  await page.click('.filters button[type=submit]');
  await page.locator('#merchants-table tbody tr', { hasText: 'Lumen' }).waitFor({ timeout: T });
  if (await page.locator('#merchants-table tbody tr').count() !== 1) throw new Error('the search should leave one merchant');

  step = 'a merchant: plan, trial, suspend, resume';
  await page.click('#merchants-table tbody tr a');
  await page.waitForURL(`**/platform/merchants/${MERCHANT_ID}`, { timeout: T });
  await page.fill('[data-form=trial] input[name=days]', '7');
  await page.click('[data-form=trial] button');
  // The page reloads after the change; the new entry in its history proves it did.
  await page.locator('.timeline code', { hasText: 'merchant.trial' }).waitFor({ timeout: T });
  await shot(page, 'console-merchant');
  page.once('dialog', (d) => d.accept());
  await page.click('[data-action=suspend]');
  await page.locator('#merchant-status.badge-suspended').waitFor({ timeout: T });
  // The owner's open workspace learns at once (and reloads into the paused page).
  await owner.locator('text=Service paused').waitFor({ timeout: T });
  await page.click('[data-action=resume]');
  await page.locator('#merchant-status.badge-active').waitFor({ timeout: T });
  await page.click('[data-open=delete-dialog]');
  await page.locator('#delete-dialog[open]').waitFor({ timeout: T });
  await shot(page, 'console-delete-dialog');
  await page.keyboard.press('Escape');

  step = 'an announcement reaches the open workspace';
  await owner.goto(`${APP_URL}/app`);
  await owner.locator('#inbox').waitFor({ timeout: T });
  await owner.waitForTimeout(300); // the socket connects
  await page.click('.side-nav a[href="/platform/announcements"]');
  await page.fill('#announcement-form [name=title]', 'Scheduled maintenance');
  await page.fill('#announcement-form [name=body]', 'Sunday 02:00–02:30 UTC: chats reconnect by themselves.');
  await page.click('#announcement-form button[value="1"]');
  await page.locator('.announcement-item', { hasText: 'Scheduled maintenance' }).waitFor({ timeout: T });
  await shot(page, 'console-announcements');
  await owner.locator('.announcement', { hasText: 'Scheduled maintenance' }).waitFor({ timeout: T });
  await shot(owner, 'workspace-announcement-live');
  // The dismissal is stored before the reload asks for the page again.
  await Promise.all([
    owner.waitForResponse((r) => r.url().includes('/dismiss') && r.request().method() === 'POST', { timeout: T }),
    owner.click('.announcement .announcement-dismiss'),
  ]);
  await owner.reload();
  await owner.locator('#inbox').waitFor({ timeout: T });
  if (await owner.locator('.announcement', { hasText: 'Scheduled maintenance' }).count()) throw new Error('a dismissed announcement came back');

  step = 'system settings';
  await page.click('.side-nav a[href="/platform/settings"]');
  await page.fill('[name=site_title]', 'Lumen Cloud Support');
  await page.fill('[name="smtp.host"]', 'smtp.example.com');
  await page.fill('[name="smtp.from"]', 'support@example.com');
  await page.click('#system-form button[type=submit]');
  await page.locator('.toast').waitFor({ timeout: T });
  await shot(page, 'console-settings');

  step = 'audit log';
  await page.click('.side-nav a[href="/platform/audit"]');
  await page.locator('#audit-table tbody tr', { hasText: 'merchant.suspend' }).waitFor({ timeout: T });
  await shot(page, 'console-audit');

  step = 'a support session opens the owner\'s workspace with a banner';
  await page.goto(`${APP_URL}/platform/merchants/${MERCHANT_ID}`);
  await page.click('[data-action=impersonate]');
  await page.waitForURL('**/app', { timeout: T });
  await page.locator('.support-banner').waitFor({ timeout: T });
  await shot(page, 'console-support-session');
  await page.click('.support-banner button[type=submit]');
  await page.waitForURL('**/platform', { timeout: T });

  step = 'the console on a phone';
  const phoneCtx = await browser.newContext({ viewport: { width: 390, height: 800 }, locale: 'zh-CN', isMobile: true, hasTouch: true });
  await phoneCtx.addCookies(await ctx.cookies());
  const phone = await phoneCtx.newPage();
  watch(phone, 'console phone');
  await phone.goto(`${APP_URL}/platform/merchants`);
  await phone.locator('#merchants-table').waitFor({ timeout: T });
  await shot(phone, 'console-phone-merchants');

  if (errors.length) throw new Error(`console errors:\n${errors.join('\n')}`);
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  console.error(`console e2e failed at "${step}": ${e.message}`);
  if (errors.length) console.error(`console errors:\n${errors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
