// Verified widget identity in headless Chromium, started by tests/it/browser.rs with:
//   APP_URL       the kefu server under test
//   ACCOUNT_URL   a merchant's "my account" page on another origin that embeds the widget and
//                 identifies its logged-in user with the hash its server computed
//   OWNER_EMAIL   the merchant owner's login (password "correct horse battery")
//   OUT_DIR, CHROMIUM
// The user chats on one device, then sees the conversation on another; logging out of the
// shop leaves an anonymous chat with nothing of theirs; the agent sees the verified badge.
// Then the owner turns on two-step verification, signs in again with a recovery code, and
// changes their password (staying signed in).
import { launch, errorLog, totp, signIn } from './harness.mjs';
import { mkdirSync } from 'node:fs';

const { APP_URL, ACCOUNT_URL, OWNER_EMAIL, OUT_DIR, CHROMIUM } = process.env;
const T = 15_000;
mkdirSync(OUT_DIR, { recursive: true });

const { errors, watch } = errorLog();
let step = 'starting';
const shot = (page, name) => page.screenshot({ path: `${OUT_DIR}/${name}.png` });

const browser = await launch(CHROMIUM);
async function device(name, viewport) {
  const ctx = await browser.newContext({ viewport, locale: 'en-US' });
  const page = await ctx.newPage();
  watch(page, name);
  await page.goto(ACCOUNT_URL);
  const button = page.locator('[data-kefu-widget] button');
  await button.waitFor({ timeout: T });
  await button.click();
  const chat = page.frameLocator('[data-kefu-widget] iframe');
  await chat.locator('#input').waitFor({ timeout: T });
  return { page, chat };
}
try {
  step = 'the logged-in user chats on the laptop';
  const laptop = await device('laptop', { width: 1280, height: 800 });
  await laptop.chat.locator('#input').fill('Where is my order #1042?');
  await laptop.chat.locator('#input').press('Enter');
  await laptop.chat.locator('.msg.mine:not(.is-pending)').waitFor({ timeout: T });

  step = 'the same user on a phone sees the conversation';
  const phone = await device('phone', { width: 390, height: 844 });
  await phone.chat.locator('.msg.mine .bubble', { hasText: 'order #1042' }).waitFor({ timeout: T });
  await shot(phone.page, 'identity-phone-history');

  step = 'after logging out of the shop the chat is anonymous and empty';
  // The chat covers a phone's screen: close it, log out, open it again.
  await phone.chat.locator('#close').click();
  await phone.page.click('#logout');
  // The chat reloads as a new visitor: give it the time to, then nothing of the user's shows.
  await phone.page.waitForTimeout(1500);
  await phone.page.locator('[data-kefu-widget] button').click();
  await phone.chat.locator('#input').waitFor({ timeout: T });
  if (await phone.chat.locator('.msg.mine').count()) throw new Error('the logged-out phone still shows the user\'s messages');

  step = 'the agent sees the visitor as verified';
  const agentCtx = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: 'en-US' });
  const agent = await agentCtx.newPage();
  watch(agent, 'workspace');
  await signIn(agent, APP_URL, OWNER_EMAIL, 'correct horse battery');
  await agent.locator('.conversation').first().waitFor({ timeout: T });
  await agent.locator('.conversation').first().click();
  await agent.locator('#vp-verified').waitFor({ timeout: T });
  const userId = (await agent.textContent('#vp-user-id')).trim();
  if (userId !== 'shopper-42') throw new Error(`the panel names user ${JSON.stringify(userId)}`);
  await shot(agent, 'identity-workspace-verified');

  step = 'closing the conversation asks the visitor for a rating, which the agent sees';
  agent.once('dialog', (d) => d.accept());
  await agent.click('#close-conversation');
  const card = laptop.chat.locator('.rating-card');
  await card.waitFor({ timeout: T });
  await card.locator('.rating-star').nth(3).click();
  await card.locator('.rating-comment').fill('Quick and kind');
  await shot(laptop.page, 'chat-rating');
  await card.locator('.rating-send').click();
  await laptop.chat.locator('.rating-card', { hasText: 'Thank you' }).waitFor({ timeout: T });
  await agent.locator('#thread-rating:not([hidden])', { hasText: '★★★★☆' }).waitFor({ timeout: T });

  step = 'the identity settings';
  await agent.goto(`${APP_URL}/app/settings`);
  await agent.click('#tab-integrations');
  await agent.click('#identity-show');
  await agent.locator('#identity-secret-box:not([hidden])').waitFor({ timeout: T });
  const secret = await agent.inputValue('#identity-secret-value');
  if (!secret.startsWith('idsec_')) throw new Error(`the secret shown is ${JSON.stringify(secret)}`);
  await agent.check('#identity-form [name=identity_required]');
  await agent.click('#identity-form button[type=submit]');
  await agent.locator('.toast', { hasText: 'Saved' }).waitFor({ timeout: T });
  await agent.locator('#identity-form').scrollIntoViewIfNeeded();
  await shot(agent, 'settings-identity');

  step = 'the owner turns on two-step verification';
  await agent.click('#profile-open');
  await agent.click('#tfa-start');
  await agent.locator('#tfa-qr').waitFor({ timeout: T });
  const tfaSecret = (await agent.textContent('#tfa-secret')).trim();
  await agent.fill('#tfa-code', totp(tfaSecret));
  await agent.click('#tfa-confirm');
  await agent.locator('#tfa-codes:not([hidden]) li').first().waitFor({ timeout: T });
  const recovery = (await agent.locator('#tfa-code-list li').first().textContent()).trim();
  await shot(agent, 'profile-two-step-on');
  await agent.click('#profile-cancel');

  step = 'signing in again asks for the second step';
  await agent.click('.app-sidebar form[action="/logout"] button');
  await agent.goto(`${APP_URL}/login`);
  await agent.fill('#email', OWNER_EMAIL);
  await agent.fill('#password', 'correct horse battery');
  await agent.click('button[type=submit]');
  await agent.waitForURL('**/login/2fa', { timeout: T });
  await shot(agent, 'login-two-step');
  await agent.fill('#code', recovery);
  await agent.click('button[type=submit]');
  await agent.waitForURL('**/app', { timeout: T });

  step = 'the owner changes their password and stays signed in';
  await agent.click('#profile-open');
  await agent.click('#pw-start');
  await agent.fill('#pw-current', 'correct horse battery');
  await agent.fill('#pw-new', 'a much better passphrase');
  await agent.click('#pw-save');
  await agent.locator('.toast', { hasText: 'Password changed' }).waitFor({ timeout: T });
  await agent.click('#profile-cancel');
  await agent.reload();
  await agent.locator('#profile-open').waitFor({ timeout: T });
  if (!agent.url().endsWith('/app')) throw new Error(`after the change the workspace went to ${agent.url()}`);

  if (errors.length) throw new Error(`console errors:\n${errors.join('\n')}`);
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  console.error(`identity run failed at "${step}": ${e.message}`);
  if (errors.length) console.error(`console errors:\n${errors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
