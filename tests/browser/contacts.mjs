// Contacts, in headless Chromium, started by tests/it/browser.rs with:
//   APP_URL      the kefu server under test
//   ENT_ID       the merchant
//   OWNER_EMAIL  the owner's login (password "correct horse battery"), OWNER_TOKEN its API token
//   OUT_DIR, CHROMIUM
// Two visitors chat (one on a phone, one on a desktop: the same person). The owner, on a
// desktop in English, finds them in Contacts, filters, tags both at once, exports, opens
// one, reads a past conversation's transcript, writes a note, corrects the name and merges
// the other record into it. Then the owner does the same reading on a phone in Chinese.
// No console errors; no English left in the Chinese pages' own words.
import { launch, errorLog, signIn } from './harness.mjs';
import { mkdirSync } from 'node:fs';

const { APP_URL, ENT_ID, OWNER_EMAIL, OWNER_TOKEN, OUT_DIR, CHROMIUM } = process.env;
const T = 15_000;
mkdirSync(OUT_DIR, { recursive: true });

const { errors, watch } = errorLog();
let step = 'starting';
const shot = (page, name) => page.screenshot({ path: `${OUT_DIR}/${name}.png`, fullPage: true });
const desktop = { viewport: { width: 1280, height: 800 }, locale: 'en-US' };
const phone = { viewport: { width: 390, height: 844 }, locale: 'zh-CN', isMobile: true, hasTouch: true };
const api = async (method, path, body) => {
  const res = await fetch(`${APP_URL}${path}`, {
    method,
    headers: { authorization: `Bearer ${OWNER_TOKEN}`, 'content-type': 'application/json' },
    body: body && JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
};

async function chat(browser, options, text) {
  const ctx = await browser.newContext(options);
  const page = await ctx.newPage();
  watch(page, `visitor ${text}`);
  await page.goto(`${APP_URL}/chatIndex?ent_id=${ENT_ID}`);
  await page.locator('#input').waitFor({ timeout: T });
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
  await page.locator('.msg.mine:not(.is-pending) .bubble', { hasText: text }).waitFor({ timeout: T });
  return { ctx, page };
}

const browser = await launch(CHROMIUM);
try {
  step = 'two visitors chat (the same person on two devices)';
  await chat(browser, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }, 'Is the walnut lamp in stock?');
  await chat(browser, desktop, 'Checking my order from the office');
  const { visitors } = await api('GET', '/api/v1/visitors?sort=newest');
  if (visitors.length !== 2) throw new Error(`expected 2 visitors, got ${visitors.length}`);
  const [officeId, phoneId] = [visitors[0].id, visitors[1].id];
  await api('PATCH', `/api/v1/visitors/${phoneId}`, { name: 'Mei on her phone', email: 'mei@example.com' });
  await api('PATCH', `/api/v1/visitors/${officeId}`, { name: 'Mei at work' });

  step = 'the owner opens Contacts from the sidebar';
  const ownerCtx = await browser.newContext(desktop);
  const owner = await ownerCtx.newPage();
  watch(owner, 'owner desktop');
  await signIn(owner, APP_URL, OWNER_EMAIL, 'correct horse battery');
  await owner.click('.side-nav a[href="/app/contacts"]');
  await owner.waitForURL('**/app/contacts');
  const rows = owner.locator('#contacts-rows tr');
  await rows.nth(1).waitFor({ timeout: T });
  await owner.locator('#contacts-rows tr', { hasText: 'mei@example.com' }).waitFor({ timeout: T });
  await shot(owner, 'contacts-list-desktop');

  step = 'a filter narrows the list, and is kept in the address';
  await owner.check('#contacts-filters [name=has_email]');
  await owner.waitForFunction(() => document.querySelectorAll('#contacts-rows tr').length === 1, null, { timeout: T });
  if (!owner.url().includes('has_email=true')) throw new Error(`the filter is not in the address: ${owner.url()}`);
  await owner.click('#contacts-filters button[type=reset]');
  await owner.waitForFunction(() => document.querySelectorAll('#contacts-rows tr').length === 2, null, { timeout: T });

  step = 'both are tagged at once';
  await owner.check('#select-all');
  await owner.locator('#bulk-bar').waitFor({ state: 'visible', timeout: T });
  await owner.locator('#bulk-count', { hasText: '2 selected' }).waitFor({ timeout: T });
  await owner.fill('#bulk-tag', 'Wholesale');
  await owner.click('[data-bulk=tag]');
  await owner.locator('.toast', { hasText: 'Tag added to 2 contacts' }).waitFor({ timeout: T });
  await owner.waitForFunction(() => document.querySelectorAll('#contacts-rows .tag').length === 2, null, { timeout: T });
  await owner.selectOption('#contacts-filters [name=tag]', 'Wholesale');
  await owner.waitForFunction(() => document.querySelectorAll('#contacts-rows tr').length === 2, null, { timeout: T });
  const href = await owner.getAttribute('#contacts-export', 'href');
  if (!href.includes('tag=Wholesale')) throw new Error(`the export ignores the filter: ${href}`);
  const csv = await owner.request.get(`${APP_URL}${href}`);
  if (csv.status() !== 200 || !(await csv.text()).includes('Mei at work')) throw new Error('the export does not hold the contacts');
  await shot(owner, 'contacts-tagged-desktop');

  step = 'a contact in full: transcript, note, name, merge';
  await owner.locator('#contacts-rows a', { hasText: 'Mei on her phone' }).click();
  await owner.waitForURL(`**/app/contacts/${phoneId}`);
  await owner.locator('#contact-name', { hasText: 'Mei on her phone' }).waitFor({ timeout: T });
  await owner.locator('#contact-facts dt', { hasText: 'First seen' }).waitFor({ timeout: T });
  const conv = owner.locator('.contact-conv').first();
  await conv.locator('button', { hasText: 'Show transcript' }).click();
  await conv.locator('.transcript .bubble', { hasText: 'walnut lamp' }).waitFor({ timeout: T });
  await owner.fill('#contact-note-form textarea', 'Buys for a café chain; send the trade price list.');
  await owner.click('#contact-note-form button[type=submit]');
  await owner.locator('#contact-notes .note-body', { hasText: 'trade price list' }).waitFor({ timeout: T });
  await owner.fill('#contact-form [name=real_name]', 'Mei Lin');
  await owner.click('#contact-form button[type=submit]');
  await owner.locator('#contact-name', { hasText: 'Mei Lin' }).waitFor({ timeout: T });
  owner.once('dialog', (d) => d.accept());
  await owner.fill('#contact-merge-form [name=from]', officeId);
  await owner.click('#contact-merge-form button[type=submit]');
  await owner.locator('.toast', { hasText: 'Conversations moved here: 1' }).waitFor({ timeout: T });
  await owner.waitForFunction(() => document.querySelectorAll('#contact-convs .contact-conv').length === 2, null, { timeout: T });
  await shot(owner, 'contact-detail-desktop');
  const open = await owner.locator('.contact-conv a', { hasText: 'Open in workspace' }).first().getAttribute('href');
  if (!/^\/app#c=\d+$/.test(open)) throw new Error(`the workspace link is ${open}`);

  step = 'the Conversations page: filters, a saved view, a row opens the chat';
  await owner.click('.side-nav a[href="/app/conversations"]');
  await owner.waitForURL('**/app/conversations');
  await owner.locator('#conv-rows tr').nth(1).waitFor({ timeout: T });
  await owner.check('#conv-filters [name=unanswered]');
  await owner.selectOption('#conv-filters [name=status]', 'any');
  await owner.waitForFunction(() => document.querySelectorAll('#conv-rows tr').length === 2 && location.search.includes('unanswered=true'), null, { timeout: T });
  owner.once('dialog', (d) => d.accept('Unanswered, any status'));
  await owner.click('#save-view');
  await owner.locator('.view-chip[aria-pressed=true]', { hasText: 'Unanswered, any status' }).waitFor({ timeout: T });
  await owner.goto(`${APP_URL}/app/conversations`);
  await owner.locator('.view-chip', { hasText: 'Unanswered, any status' }).click();
  await owner.waitForFunction(() => location.search.includes('unanswered=true') && document.querySelectorAll('#conv-rows tr').length === 2, null, { timeout: T });
  await owner.locator('#conv-rows tr .badge-left').first().waitFor({ timeout: T });
  await shot(owner, 'conversations-desktop');
  await owner.locator('#conv-rows tr').first().click();
  await owner.waitForURL(/\/app#c=\d+$/);
  await owner.locator('.tmsg.theirs', { hasText: 'Checking my order' }).or(owner.locator('.tmsg.theirs', { hasText: 'walnut lamp' })).first().waitFor({ timeout: T });

  step = 'the owner on a phone, in Chinese';
  const phoneCtx = await browser.newContext(phone);
  const mobile = await phoneCtx.newPage();
  watch(mobile, 'owner phone');
  await signIn(mobile, APP_URL, OWNER_EMAIL, 'correct horse battery');
  await mobile.goto(`${APP_URL}/app/contacts`);
  await mobile.locator('h1', { hasText: '联系人' }).waitFor({ timeout: T });
  const card = mobile.locator('#contacts-rows tr', { hasText: 'Mei Lin' });
  await card.waitFor({ timeout: T });
  const box = await card.boundingBox();
  if (box.width > 390) throw new Error(`a contact card is ${box.width} px wide on a 390 px phone`);
  await shot(mobile, 'zh-contacts-list-phone');
  await card.locator('a').tap();
  await mobile.locator('#contact-convs .contact-conv').nth(1).waitFor({ timeout: T });
  await mobile.locator('h2', { hasText: '备注' }).waitFor({ timeout: T });
  await shot(mobile, 'zh-contact-detail-phone');
  const own = await mobile.locator('#contact h2, #contact button, #contact dt, .contact-conv-head .badge, #contact label').allTextContents();
  for (const text of own) {
    if (/[A-Za-z]{3,}/.test(text.replace(/CSV|ID|IP/g, ''))) throw new Error(`English in the Chinese contact page: ${JSON.stringify(text)}`);
  }
  const scroll = await mobile.evaluate(() => document.documentElement.scrollWidth);
  if (scroll > 392) throw new Error(`the phone page scrolls sideways (${scroll} px)`);
  await mobile.goto(`${APP_URL}/app/conversations`);
  await mobile.locator('h1', { hasText: '会话' }).waitFor({ timeout: T });
  await mobile.locator('#conv-rows tr .badge-left', { hasText: '离线留言' }).first().waitFor({ timeout: T });
  await mobile.locator('.view-chip', { hasText: '全部进行中' }).waitFor({ timeout: T });
  await shot(mobile, 'zh-conversations-phone');
  const convScroll = await mobile.evaluate(() => document.documentElement.scrollWidth);
  if (convScroll > 392) throw new Error(`the conversations page scrolls sideways (${convScroll} px)`);

  if (errors.length) throw new Error(`console errors:\n${errors.join('\n')}`);
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  console.error(`contacts run failed at "${step}": ${e.message}`);
  if (errors.length) console.error(`console errors:\n${errors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
