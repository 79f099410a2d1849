// The billing page in headless Chromium, started by tests/it/browser.rs with:
//   APP_URL      the kefu server under test (configured with the local Stripe stand-in)
//   OUT_DIR      where screenshots go
//   CHROMIUM     the browser binary
//   OWNER_TOKEN  a merchant owner's session token
//   ENT_ID       that merchant, whose trial allows one conversation a month, already used
// A visitor who cannot start a conversation leaves a message instead; the owner sees why,
// looks at the trial, chooses Pro, pays on the stand-in's Checkout page, comes
// back to an active subscription with its invoice, opens the customer portal, and cancels
// from it; then the page on a phone. Exits non-zero on the first failed step or any
// console error.
import { launch, errorLog } from './harness.mjs';
import { mkdirSync } from 'node:fs';

const { APP_URL, OUT_DIR, CHROMIUM, OWNER_TOKEN, ENT_ID } = process.env;
const T = 20_000;
mkdirSync(OUT_DIR, { recursive: true });

const { errors, watch } = errorLog();
let step = 'starting';
const shot = (page, name) => page.screenshot({ path: `${OUT_DIR}/${name}.png`, fullPage: true });

const browser = await launch(CHROMIUM);
try {
  step = 'the trial\'s conversations are used up: a new visitor leaves a message instead';
  const visitorCtx = await browser.newContext({ viewport: { width: 390, height: 760 }, locale: 'en-US', isMobile: true, hasTouch: true });
  const visitor = await visitorCtx.newPage();
  watch(visitor, 'chat');
  await visitor.goto(`${APP_URL}/chatIndex?ent_id=${ENT_ID}`);
  await visitor.fill('#input', 'Do you ship to Canada?');
  await visitor.press('#input', 'Enter');
  await visitor.locator('#leave:not([hidden])').waitFor({ timeout: T });
  if ((await visitor.inputValue('#leave [name=body]')) !== 'Do you ship to Canada?') throw new Error('the message did not move into the form');
  await visitor.locator('.msg.notice', { hasText: 'cannot start a new chat' }).waitFor({ timeout: T });
  await shot(visitor, 'chat-conversation-limit');
  await visitorCtx.close();

  step = 'the owner sees why, and opens billing from the sidebar';
  const ctx = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: 'en-US' });
  const { hostname } = new URL(APP_URL);
  await ctx.addCookies([{ name: 'kefu_session', value: OWNER_TOKEN, domain: hostname, path: '/' }]);
  const page = await ctx.newPage();
  watch(page, 'billing');
  await page.goto(`${APP_URL}/app`);
  await page.locator('.billing-banner', { hasText: 'conversations are used up' }).waitFor({ timeout: T });
  await page.click('a[href="/app/billing"]');
  await page.waitForURL('**/app/billing', { timeout: T });
  await page.locator('.billing-plan .badge', { hasText: 'Trial' }).waitFor({ timeout: T });
  await page.locator('.billing-plan', { hasText: 'Trial ends on' }).waitFor({ timeout: T });
  await shot(page, 'billing-trial');

  step = 'choosing Pro goes to Checkout; paying comes back active';
  await page.click('button[data-plan="pro"]');
  await page.locator('#pay').waitFor({ timeout: T });
  await page.click('#pay');
  await page.waitForURL('**/app/billing?checkout=success', { timeout: T });
  await page.locator('.notice-line.tone-ok').waitFor({ timeout: T });
  await page.locator('.billing-plan h2', { hasText: 'Pro' }).waitFor({ timeout: T });
  await page.locator('.billing-plan .badge', { hasText: 'Active' }).waitFor({ timeout: T });
  await page.locator('.plan-card.is-current', { hasText: 'Pro' }).waitFor({ timeout: T });
  await page.locator('table.data-table td', { hasText: '$49.00' }).waitFor({ timeout: T });
  await page.locator('.billing-plan', { hasText: 'Renews on' }).waitFor({ timeout: T });
  await shot(page, 'billing-active');

  step = 'the customer portal, then cancelling from it';
  await page.click('button[data-portal=""]');
  await page.locator('#return').waitFor({ timeout: T });
  await page.click('#return');
  await page.waitForURL('**/app/billing', { timeout: T });
  await page.click('button[data-portal="cancel"]');
  await page.locator('#confirm-cancel').waitFor({ timeout: T });
  await page.click('#confirm-cancel');
  await page.waitForURL('**/app/billing', { timeout: T });
  await page.locator('.billing-plan', { hasText: 'Ends on' }).waitFor({ timeout: T });
  if (await page.locator('button[data-portal="cancel"]').count()) throw new Error('a cancelled subscription still offers to cancel');

  step = 'the page on a phone';
  const phoneCtx = await browser.newContext({ viewport: { width: 390, height: 800 }, locale: 'zh-CN', isMobile: true, hasTouch: true });
  await phoneCtx.addCookies(await ctx.cookies());
  const phone = await phoneCtx.newPage();
  watch(phone, 'billing phone');
  await phone.goto(`${APP_URL}/app/billing?lang=zh-CN`);
  await phone.locator('.plan-card').first().waitFor({ timeout: T });
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  if (overflow > 1) throw new Error(`the phone layout is ${overflow}px too wide`);
  await shot(phone, 'billing-phone-zh');

  if (errors.length) throw new Error(`console errors:\n${errors.join('\n')}`);
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  console.error(`billing browser run failed at "${step}": ${e.message}`);
  if (errors.length) console.error(`console errors:\n${errors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
