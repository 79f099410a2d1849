// Signing in with an OpenID Connect provider in headless Chromium, started by
// tests/it/browser.rs with:
//   APP_URL          the kefu server under test
//   OUT_DIR          where screenshots go
//   CHROMIUM         the browser binary
//   PLATFORM_TOKEN   a platform admin's console session
//   IDP_ISSUER       the OpenID Connect provider (tests/oidc/server.mjs)
//   CLIENT_ID, CLIENT_SECRET  kefu's client there
//   OWNER_EMAIL      a merchant owner who confirmed their address
//   OTHER_EMAIL      another owner (password PASSWORD) who links a provider account
//   PASSWORD
// The admin adds the provider in the console; the owner signs in with it from the login
// page; the other owner links a provider account from their profile. Exits non-zero on the
// first failed step or any console error.
import { launch, errorLog, signIn } from './harness.mjs';
import { mkdirSync } from 'node:fs';

const { APP_URL, OUT_DIR, CHROMIUM, PLATFORM_TOKEN, IDP_ISSUER, CLIENT_ID, CLIENT_SECRET, OWNER_EMAIL, OTHER_EMAIL, PASSWORD } = process.env;
const T = 15_000;
mkdirSync(OUT_DIR, { recursive: true });
// The provider's own development pages load things from the internet (unreachable here):
// only kefu's responses count, and failed loads are caught as responses, not console lines.
const { errors, watch } = errorLog({ quiet: (text) => /Failed to load resource/.test(text) });
const ours = (r) => !r.url().startsWith(APP_URL);
let step = 'starting';
const shot = (page, name) => page.screenshot({ path: `${OUT_DIR}/${name}.png`, fullPage: true });
const { hostname } = new URL(APP_URL);

const browser = await launch(CHROMIUM);
try {
  step = 'the admin adds the provider in the console';
  const adminCtx = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: 'en-US' });
  await adminCtx.addCookies([{ name: 'kefu_platform', value: PLATFORM_TOKEN, domain: hostname, path: '/' }]);
  const console_ = await adminCtx.newPage();
  watch(console_, 'console', ours);
  await console_.goto(`${APP_URL}/platform/settings`);
  await console_.click('#provider-add');
  await console_.selectOption('#provider-form select[name=kind]', 'oidc');
  await console_.fill('#provider-form input[name=name]', 'Corp SSO');
  await console_.fill('#provider-form input[name=slug]', 'corp');
  const callback = await console_.textContent('#provider-callback');
  if (callback !== `${APP_URL}/auth/oauth/corp/callback`) throw new Error(`the callback shown is ${callback}`);
  await console_.fill('#provider-form input[name=issuer]', IDP_ISSUER);
  await console_.fill('#provider-form input[name=client_id]', CLIENT_ID);
  await console_.fill('#provider-form input[name=client_secret]', CLIENT_SECRET);
  await shot(console_, 'oauth-console-add');
  await console_.click('#provider-form button[value=save]');
  await console_.locator('#providers-table tbody tr').first().waitFor({ timeout: T });
  await shot(console_, 'oauth-console-providers');

  step = 'the owner signs in with the provider from the login page';
  const ownerCtx = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US' });
  const owner = await ownerCtx.newPage();
  watch(owner, 'owner', ours);
  await owner.goto(`${APP_URL}/login`);
  await shot(owner, 'oauth-login');
  await owner.getByRole('link', { name: 'Continue with Corp SSO' }).click();
  await owner.locator('input[name=login]').waitFor({ timeout: T });
  await owner.fill('input[name=login]', OWNER_EMAIL);
  await owner.fill('input[name=password]', 'whatever the provider asks');
  await owner.click('button[type=submit]');
  await owner.waitForURL(`${APP_URL}/app`, { timeout: T });
  await owner.locator('#inbox').waitFor({ timeout: T });

  step = 'the owner sees the linked account in their profile';
  await owner.click('#profile-open');
  await owner.locator('#idp-list li').first().waitFor({ timeout: T });
  const linked = await owner.textContent('#idp-list');
  if (!linked.includes('Corp SSO') || !linked.includes('Linked')) throw new Error(`the profile shows ${linked}`);
  await shot(owner, 'oauth-profile-linked');

  step = 'another owner links a provider account from their profile';
  const otherCtx = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US' });
  const other = await otherCtx.newPage();
  watch(other, 'other', ours);
  await signIn(other, APP_URL, OTHER_EMAIL, PASSWORD);
  await other.click('#profile-open');
  const link = other.getByRole('button', { name: 'Link Corp SSO' });
  await link.waitFor({ timeout: T });
  await link.click();
  await other.locator('input[name=login]').waitFor({ timeout: T });
  await other.fill('input[name=login]', 'someone-else@corp.test');
  await other.fill('input[name=password]', 'x');
  await other.click('button[type=submit]');
  await other.waitForURL(`${APP_URL}/app`, { timeout: T });
  await other.click('#profile-open');
  await other.getByRole('button', { name: 'Unlink Corp SSO' }).waitFor({ timeout: T });
  const text = await other.textContent('#idp-list');
  if (!text.includes('someone-else@corp.test')) throw new Error(`the profile shows ${text}`);

  if (errors.length) throw new Error(`page errors:\n${errors.join('\n')}`);
  console.log('oauth: ok');
} catch (err) {
  console.error(`oauth: failed at "${step}": ${err.stack || err}`);
  if (errors.length) console.error(errors.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
