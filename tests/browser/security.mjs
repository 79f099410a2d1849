// Security journeys in headless Chromium, started by tests/it/browser.rs in two phases:
//   PHASE=signup   a newcomer signs up where the platform sends email (zh-CN, on a phone):
//                  the page says to check the inbox, whatever the address.
//   PHASE=rest     with CONFIRM_URL (the emailed link): the newcomer's link shows what it
//                  creates and its button creates it; a disabled agent (AGENT_EMAIL,
//                  AGENT_PASSWORD) is told why signing in is refused; the owner (OWNER_EMAIL)
//                  signs in on a laptop and a phone, sees both in "Where you're signed in",
//                  signs the phone out from the laptop — the phone's workspace goes to the
//                  sign-in page — and looks at single sign-on's rules in Settings; the owner
//                  of a Starter merchant (STARTER_EMAIL) sees what the plan leaves out.
// Always: APP_URL, OUT_DIR, CHROMIUM, PASSWORD (the owners'), and for `signup` NEW_EMAIL.
// Exits non-zero on the first failed step or any console error.
import { launch, errorLog, signIn } from './harness.mjs';
import { mkdirSync } from 'node:fs';

const env = process.env;
const { APP_URL, OUT_DIR, CHROMIUM, PASSWORD } = env;
const T = 15_000;
mkdirSync(OUT_DIR, { recursive: true });
const shot = (page, name) => page.screenshot({ path: `${OUT_DIR}/${name}.png`, fullPage: true });
// Refusals that are part of the story: a disabled agent's sign-in, a signed-out device.
const { errors, watch } = errorLog({ quiet: (text) => /status of (401|403)/.test(text) });
const expected = (r) => [401, 403].includes(r.status());
const phone = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true };
let step = 'starting';

const browser = await launch(CHROMIUM);
try {
  if (env.PHASE === 'signup') {
    step = 'a newcomer signs up on a phone, in Chinese';
    const ctx = await browser.newContext({ ...phone, locale: 'zh-CN' });
    const page = await ctx.newPage();
    watch(page, 'signup');
    await page.goto(`${APP_URL}/signup`);
    await page.fill('#company', '青柠灯具');
    await page.fill('#email', env.NEW_EMAIL);
    await page.fill('#password', PASSWORD);
    await page.click('button[type=submit]');
    await page.locator('#signup-title', { hasText: '请查收邮件' }).waitFor({ timeout: T });
    if (!(await page.textContent('main')).includes(env.NEW_EMAIL)) throw new Error('the address is not shown');
    await shot(page, 'signup-check-email-zh-phone');
  } else {
    step = 'the emailed link shows what it creates; its button creates it';
    const newcomer = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
    const page = await newcomer.newPage();
    watch(page, 'confirm');
    await page.goto(env.CONFIRM_URL);
    await page.locator('#signup-title', { hasText: 'Create your workspace' }).waitFor({ timeout: T });
    if (!(await page.textContent('main')).includes('青柠灯具')) throw new Error('the workspace name is not shown');
    await shot(page, 'signup-confirm');
    await page.click('button[type=submit]');
    await page.waitForURL('**/app', { timeout: T });
    await page.locator('#inbox').waitFor({ timeout: T });

    step = 'a disabled agent is told why signing in is refused (zh-CN)';
    const agentCtx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'zh-CN' });
    const agent = await agentCtx.newPage();
    watch(agent, 'disabled agent', expected);
    await agent.goto(`${APP_URL}/login`);
    await agent.fill('#email', env.AGENT_EMAIL);
    await agent.fill('#password', env.AGENT_PASSWORD);
    await agent.click('button[type=submit]');
    await agent.locator('.alert-error', { hasText: '访问权限已被管理员关闭' }).waitFor({ timeout: T });
    await shot(agent, 'login-account-disabled-zh');

    step = 'the owner signs in on a laptop and on a phone';
    const laptopCtx = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: 'en-US' });
    const laptop = await laptopCtx.newPage();
    watch(laptop, 'laptop');
    await signIn(laptop, APP_URL, env.OWNER_EMAIL, PASSWORD);
    const phoneCtx = await browser.newContext({ ...phone, locale: 'zh-CN', userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1' });
    const mobile = await phoneCtx.newPage();
    watch(mobile, 'phone', expected);
    await signIn(mobile, APP_URL, env.OWNER_EMAIL, PASSWORD);
    await mobile.goto(`${APP_URL}/app/m`);
    await mobile.waitForLoadState('networkidle');

    step = 'the phone lists where the owner is signed in (zh-CN)';
    await mobile.click('#profile-open');
    await mobile.locator('#session-list li').nth(1).waitFor({ timeout: T });
    await mobile.locator('#session-list .badge', { hasText: '本设备' }).waitFor({ timeout: T });
    await shot(mobile, 'profile-sessions-zh-phone');
    await mobile.click('#profile-cancel');

    step = 'the laptop signs the phone out; the phone is sent to sign in';
    await laptop.click('#profile-open');
    const phoneRow = laptop.locator('#session-list li', { hasText: 'iPhone' });
    await phoneRow.waitFor({ timeout: T });
    await shot(laptop, 'profile-sessions-en');
    await phoneRow.locator('button').click();
    await laptop.locator('#session-list li', { hasText: 'iPhone' }).waitFor({ state: 'detached', timeout: T });
    await mobile.waitForURL('**/login**', { timeout: T });
    await shot(mobile, 'signed-out-phone-zh');
    await laptop.click('#profile-cancel');

    step = 'single sign-on in Settings: its rules, the owner-only switch';
    await laptop.goto(`${APP_URL}/app/settings`);
    await laptop.click('#tab-integrations');
    const box = laptop.locator('#sso-form [name=sso_satisfies_2fa]');
    await box.waitFor({ timeout: T });
    if (await box.isDisabled()) throw new Error('the owner cannot change sso_satisfies_2fa');
    await shot(laptop, 'settings-sso-owner');

    step = 'a Starter merchant sees what the plan leaves out (zh-CN)';
    const starterCtx = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: 'zh-CN' });
    const starter = await starterCtx.newPage();
    watch(starter, 'starter');
    await signIn(starter, APP_URL, env.STARTER_EMAIL, PASSWORD);
    await starter.goto(`${APP_URL}/app/settings`);
    await starter.click('#tab-integrations');
    await starter.locator('.plan-note').nth(2).waitFor({ timeout: T });
    const notes = await starter.locator('.plan-note').allTextContents();
    if (notes.some((n) => /[A-Za-z]{4,}/.test(n.replace(/Starter|Webhook/g, '')))) throw new Error(`English in the Chinese plan notes: ${notes}`);
    await shot(starter, 'settings-plan-notes-zh');
  }
  if (errors.length) throw new Error(`console errors:\n${errors.join('\n')}`);
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  console.error(`security e2e failed at "${step}": ${e.message}`);
  if (errors.length) console.error(`console errors:\n${errors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
