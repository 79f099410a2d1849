// A working day in Chinese on phones, in headless Chromium, started by tests/it/browser.rs with:
//   APP_URL      the kefu server under test
//   ENT_ID       a merchant nobody of which is online yet
//   OWNER_EMAIL  the owner's login (password "correct horse battery")
//   OUT_DIR, CHROMIUM
// A visitor finds nobody online and leaves a message (a lead); the owner, on a phone, finds
// it marked in the inbox, opens the visitor panel, answers, and later finds the chat again
// by searching two Chinese characters of it. Everything in Chinese, no console errors.
import { launch, errorLog, signIn } from './harness.mjs';
import { mkdirSync } from 'node:fs';

const { APP_URL, ENT_ID, OWNER_EMAIL, OUT_DIR, CHROMIUM } = process.env;
const T = 15_000;
mkdirSync(OUT_DIR, { recursive: true });

const { errors, watch } = errorLog();
let step = 'starting';
const shot = (page, name) => page.screenshot({ path: `${OUT_DIR}/${name}.png` });
const phone = { viewport: { width: 390, height: 844 }, locale: 'zh-CN', isMobile: true, hasTouch: true };

const browser = await launch(CHROMIUM);
try {
  step = 'nobody is online: the visitor leaves a message';
  const visitorCtx = await browser.newContext(phone);
  const visitor = await visitorCtx.newPage();
  watch(visitor, 'visitor');
  await visitor.goto(`${APP_URL}/chatIndex?ent_id=${ENT_ID}`);
  await visitor.locator('#availability .label', { hasText: '离线' }).waitFor({ timeout: T });
  await visitor.fill('#input', '你好，有人在吗？');
  await visitor.press('#input', 'Enter');
  await visitor.locator('#leave').waitFor({ timeout: T });
  await visitor.fill('#leave [name=name]', '张伟');
  await visitor.fill('#leave [name=contact]', 'zhang.wei@example.com');
  await visitor.fill('#leave [name=body]', '我想要白色的台灯，请尽快联系我。');
  await visitor.click('#leave button[type=submit]');
  await visitor.locator('.msg.mine .bubble', { hasText: '白色的台灯' }).waitFor({ timeout: T });
  await visitor.locator('.day-sep', { hasText: '今天' }).first().waitFor({ timeout: T });
  await shot(visitor, 'zh-chat-left-message');

  step = 'the owner on a phone finds the lead, marked, named as the visitor signed';
  const ownerCtx = await browser.newContext(phone);
  const owner = await ownerCtx.newPage();
  watch(owner, 'owner phone');
  await signIn(owner, APP_URL, OWNER_EMAIL, 'correct horse battery');
  await owner.goto(`${APP_URL}/app/m`);
  const lead = owner.locator('.conversation', { hasText: '张伟' });
  await lead.locator('.left-offline', { hasText: '离线留言' }).waitFor({ timeout: T });
  await shot(owner, 'zh-workspace-phone-lead');
  await lead.tap();
  await owner.locator('.tmsg.theirs', { hasText: '白色的台灯' }).waitFor({ timeout: T });
  const head = await owner.locator('.thread-head').boundingBox();
  if (head.height > 56) throw new Error(`the thread header is ${head.height} px high`);

  step = 'the visitor panel shows the contact the visitor left';
  await owner.locator('#panel-toggle').tap();
  await owner.locator('#vp-contact', { hasText: 'zhang.wei@example.com' }).waitFor({ timeout: T });
  await shot(owner, 'zh-workspace-phone-visitor');
  await owner.locator('#panel-close').tap();

  step = 'the owner answers; the visitor reads it';
  await owner.fill('#reply', '白色有货，今天就能发出。');
  await owner.locator('#thread-composer button[type=submit]').tap();
  await owner.locator('.tmsg.mine:not(.is-pending)', { hasText: '今天就能发出' }).waitFor({ timeout: T });
  await visitor.locator('.msg.theirs .bubble', { hasText: '今天就能发出' }).waitFor({ timeout: T });
  await shot(owner, 'zh-workspace-phone-answered');

  step = 'searching two characters finds the chat again, highlighted';
  await owner.locator('#thread-back').tap();
  await owner.fill('#inbox-search', '台灯');
  const hit = owner.locator('#search-results .search-hit', { hasText: '张伟' }).first();
  await hit.locator('mark', { hasText: '台灯' }).waitFor({ timeout: T });
  await owner.locator('#search-results h4', { hasText: '会话记录' }).waitFor({ timeout: T });
  await shot(owner, 'zh-workspace-phone-search');
  await hit.tap();
  await owner.locator('.tmsg.is-found', { hasText: '台灯' }).waitFor({ timeout: T });

  // No English in what the Chinese UI showed.
  for (const text of await owner.locator('.left-offline, .day-sep, .conversation-time, #search-results h4').allTextContents()) {
    if (/[A-Za-z]{3,}/.test(text)) throw new Error(`English in the Chinese workspace: ${JSON.stringify(text)}`);
  }
  if (errors.length) throw new Error(`console errors:\n${errors.join('\n')}`);
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  console.error(`workday_zh run failed at "${step}": ${e.message}`);
  if (errors.length) console.error(`console errors:\n${errors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
