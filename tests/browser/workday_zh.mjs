// A working day in Chinese on phones, in headless Chromium, started by tests/it/browser.rs with:
//   APP_URL      the kefu server under test
//   ENT_ID       a merchant nobody of which is online yet
//   OWNER_EMAIL  the owner's login (password "correct horse battery"), OWNER_TOKEN its API token
//   COLLEAGUE    the display name of a colleague (signed out) to transfer to
//   OUT_DIR, CHROMIUM
// A visitor finds nobody online and leaves a message (a lead); the owner, on a phone, finds
// it marked in the inbox, opens the visitor panel, answers, and later finds the chat again
// by searching two Chinese characters of it. On the phone the owner also tags the visitor and
// writes a note in the panel, answers with a quick reply, sends a photo, marks the chat
// pending and transfers it. Everything in Chinese, no console errors.
import { launch, errorLog, signIn } from './harness.mjs';
import { mkdirSync } from 'node:fs';

const { APP_URL, ENT_ID, OWNER_EMAIL, OWNER_TOKEN, COLLEAGUE, OUT_DIR, CHROMIUM } = process.env;
// A 2×2 PNG, the photo the owner sends from the phone.
const PHOTO = { name: '台灯.png', mimeType: 'image/png', buffer: Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==', 'base64') };
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

  step = 'on the phone: a tag and a note in the panel';
  await owner.locator('#panel-toggle').tap();
  await owner.fill('#vp-tag', '大客户');
  await owner.locator('#vp-tag-form button[type=submit]').tap();
  await owner.locator('#vp-tags .tag', { hasText: '大客户' }).waitFor({ timeout: T });
  await owner.fill('#vp-note', '要白色，周五前送到。');
  await owner.locator('#vp-note-form button[type=submit]').tap();
  await owner.locator('#vp-notes li', { hasText: '周五前送到' }).waitFor({ timeout: T });
  await owner.locator('#panel-close').tap();

  step = 'on the phone: a quick reply picked by typing /';
  const quick = await fetch(`${APP_URL}/api/v1/quick_replies`, {
    method: 'POST', headers: { authorization: `Bearer ${OWNER_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ title: '发货时间', body: '下单后 24 小时内发货，2–3 天送达。' }),
  });
  if (quick.status !== 201) throw new Error(`quick reply: ${quick.status}`);
  await owner.locator('#reply').pressSequentially('/发货');
  await owner.locator('#quick-panel .quick-item', { hasText: '发货时间' }).waitFor({ timeout: T });
  await shot(owner, 'zh-workspace-phone-quick');
  await owner.press('#reply', 'Enter');
  await owner.press('#reply', 'Enter');
  await visitor.locator('.msg.theirs .bubble', { hasText: '24 小时内发货' }).waitFor({ timeout: T });

  step = 'on the phone: a photo';
  await owner.locator('#agent-file').setInputFiles(PHOTO);
  await owner.locator('.tmsg.mine:not(.is-pending) img').first().waitFor({ timeout: T });
  await visitor.locator('.msg.theirs img').first().waitFor({ timeout: T });

  step = 'on the phone: pending, then transferred to a colleague';
  await owner.locator('#status-menu summary').tap();
  await owner.locator('#status-menu [data-status=pending]').tap();
  await owner.locator('#thread-state', { hasText: '待回复' }).waitFor({ timeout: T });
  await owner.locator('#transfer-menu summary').tap();
  await owner.locator('#transfer-list .menu-item', { hasText: COLLEAGUE }).tap();
  await owner.locator('.toast', { hasText: `已转接给 ${COLLEAGUE}` }).waitFor({ timeout: T });
  await visitor.locator('.msg.notice', { hasText: COLLEAGUE }).waitFor({ timeout: T });
  await shot(owner, 'zh-workspace-phone-transferred');

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
