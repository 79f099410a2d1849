// The pre-chat form in headless Chromium, started by tests/it/browser.rs with:
//   APP_URL, ENT_ID, OWNER_EMAIL (password "correct horse battery"), OWNER_TOKEN, OUT_DIR,
//   CHROMIUM
// The owner builds the form in Settings; a visitor (in Chinese, on a phone) must fill it in
// before writing, sees what is wrong under each field, then chats; the agent sees the
// answers in the visitor panel. Then the merchant's system posts a rich card through the
// REST API, and both sides see it.
import { launch, errorLog, signIn } from './harness.mjs';
import { mkdirSync } from 'node:fs';

const { APP_URL, ENT_ID, OWNER_EMAIL, OWNER_TOKEN, OUT_DIR, CHROMIUM } = process.env;
const T = 15_000;
mkdirSync(OUT_DIR, { recursive: true });

// The empty submit is refused on purpose (422).
const { errors, watch } = errorLog({ quiet: (text) => text.includes('422') });
let step = 'starting';
const shot = (page, name) => page.screenshot({ path: `${OUT_DIR}/${name}.png` });
const browser = await launch(CHROMIUM);
try {
  step = 'the owner builds the form';
  const agentCtx = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: 'en-US' });
  const agent = await agentCtx.newPage();
  watch(agent, 'workspace');
  await signIn(agent, APP_URL, OWNER_EMAIL, 'correct horse battery');
  await agent.goto(`${APP_URL}/app/settings`);
  await agent.click('#tab-chat');
  await agent.check('#chat-form [name=prechat_enabled]');
  const addField = async (kind, en, zh, required, key, options) => {
    await agent.click('#prechat-add');
    const row = agent.locator('.prechat-field').last();
    await row.locator('[data-role=kind]').selectOption(kind);
    if (key) await row.locator('[data-role=key]').fill(key);
    await row.locator('[data-role=en]').fill(en);
    await row.locator('[data-role=zh]').fill(zh);
    if (required) await row.locator('[data-role=required]').check();
    if (options) await row.locator('[data-role=options]').fill(options);
  };
  await addField('name', 'Your name', '您的姓名', true);
  await addField('email', 'Email', '邮箱', true);
  await addField('select', 'Topic', '咨询类型', true, 'topic', 'Pre-sales | 售前\nAfter-sales | 售后');
  await agent.locator('.prechat-field').last().scrollIntoViewIfNeeded();
  await shot(agent, 'settings-prechat');
  await agent.click('#chat-form button[type=submit]');
  await agent.locator('.toast', { hasText: 'Saved' }).waitFor({ timeout: T });
  await agent.reload();
  await agent.click('#tab-chat');
  if ((await agent.locator('.prechat-field').count()) !== 3) throw new Error('the form did not keep its three fields');

  step = 'a visitor must fill it in first';
  const phoneCtx = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'zh-CN' });
  const phone = await phoneCtx.newPage();
  watch(phone, 'chat', (r) => r.status() === 422 && r.url().endsWith('/api/v1/visitor/prechat'));
  await phone.goto(`${APP_URL}/chatIndex?ent_id=${ENT_ID}&lang=zh-CN`);
  const form = phone.locator('form.prechat');
  await form.waitFor({ timeout: T });
  await form.locator('label', { hasText: '您的姓名' }).waitFor({ timeout: T });
  if (!(await phone.locator('#input').isDisabled())) throw new Error('the composer is usable before the form');
  await form.locator('button[type=submit]').click();
  await form.locator('.field-error:not([hidden])').first().waitFor({ timeout: T });
  if ((await form.locator('[aria-invalid=true]').count()) !== 3) throw new Error('each missing answer is marked');
  await shot(phone, 'chat-prechat-errors');
  await form.locator('input[type=text]').first().fill('陈爱丽');
  await form.locator('input[type=email]').fill('alice@example.com');
  await form.locator('select').selectOption('After-sales');
  await form.locator('button[type=submit]').click();
  await form.waitFor({ state: 'detached', timeout: T });
  await phone.locator('#input').fill('你好，我的订单还没到');
  await phone.locator('#input').press('Enter');
  await phone.locator('.msg.mine:not(.is-pending)').waitFor({ timeout: T });
  await shot(phone, 'chat-after-prechat');

  step = 'the agent sees the answers';
  await agent.goto(`${APP_URL}/app`);
  await agent.locator('.conversation', { hasText: '陈爱丽' }).click();
  await agent.locator('#vp-prechat dd', { hasText: 'After-sales' }).waitFor({ timeout: T });
  await agent.locator('#vp-prechat dd', { hasText: 'alice@example.com' }).waitFor({ timeout: T });
  await shot(agent, 'workspace-prechat-answers');

  step = "the merchant's system posts a rich card";
  const call = async (method, path, body) => {
    const res = await fetch(`${APP_URL}${path}`, {
      method,
      headers: { authorization: `Bearer ${OWNER_TOKEN}`, 'content-type': 'application/json' },
      body: body && JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const { conversations } = await call('GET', '/api/v1/conversations?view=all');
  await call('POST', `/api/v1/conversations/${conversations[0].id}/messages`, {
    sender: 'bot',
    kind: 'card',
    card: {
      title: '订单 #1042 已发货',
      text: '预计周四送达，感谢您的耐心。',
      fields: [{ label: '快递', value: '顺丰速运' }, { label: '运单号', value: 'SF1234567890' }],
      buttons: [{ label: '查看物流', url: 'https://shop.example/track/SF1234567890' }],
    },
  });
  await phone.locator('.card-msg .card-button', { hasText: '查看物流' }).waitFor({ timeout: T });
  await shot(phone, 'chat-card');
  await agent.locator('.card-msg .card-title', { hasText: '订单 #1042 已发货' }).waitFor({ timeout: T });
  await shot(agent, 'workspace-card');

  step = "GOFLY's visitor_name from the link fills the name in";
  const linkedCtx = await browser.newContext({ viewport: { width: 390, height: 844 }, locale: 'en-US' });
  const linked = await linkedCtx.newPage();
  watch(linked, 'linked chat');
  await linked.goto(`${APP_URL}/chatIndex?ent_id=${ENT_ID}&visitor_name=${encodeURIComponent('Ann Lee')}`);
  const linkedForm = linked.locator('form.prechat');
  await linkedForm.waitFor({ timeout: T });
  const prefilled = await linkedForm.locator('input[type=text]').first().inputValue();
  if (prefilled !== 'Ann Lee') throw new Error(`the name field holds ${JSON.stringify(prefilled)}`);
  await linkedCtx.close();

  step = 'the API reference reads as a page';
  await agent.goto(`${APP_URL}/api/docs`);
  await agent.locator('.api-op', { hasText: '/api/v1/conversations/{id}/messages' }).first().waitFor({ timeout: T });
  if ((await agent.locator('.api-op').count()) < 17) throw new Error('the reference misses operations');
  await shot(agent, 'api-reference');

  if (errors.length) throw new Error(`console errors:\n${errors.join('\n')}`);
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  console.error(`prechat run failed at "${step}": ${e.message}`);
  if (errors.length) console.error(`console errors:\n${errors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
