// Private notes and @mentions, in headless Chromium, started by tests/it/browser.rs with:
//   APP_URL, ENT_ID
//   OWNER_EMAIL  the owner's login (password "correct horse battery"), on a desktop in English
//   AGENT_EMAIL, AGENT_PASSWORD  Ann Lee, an agent, on a phone in Chinese
//   OUT_DIR, CHROMIUM
// A visitor asks; the owner writes a private note mentioning Ann (picked from the @ list);
// the visitor never sees it; Ann, on her phone, is told, finds it under Mentions and reads it.
// The merchant's business hours are closed all week: the visitor sees "Offline" until an
// agent answers, then "Online" while the agent is answering.
import { launch, errorLog, signIn } from './harness.mjs';
import { mkdirSync } from 'node:fs';

const { APP_URL, ENT_ID, OWNER_EMAIL, AGENT_EMAIL, AGENT_PASSWORD, OUT_DIR, CHROMIUM } = process.env;
const T = 15_000;
mkdirSync(OUT_DIR, { recursive: true });

const { errors, watch } = errorLog();
let step = 'starting';
const shot = (page, name) => page.screenshot({ path: `${OUT_DIR}/${name}.png` });
const desktop = { viewport: { width: 1280, height: 800 }, locale: 'en-US' };
const phone = { viewport: { width: 390, height: 844 }, locale: 'zh-CN', isMobile: true, hasTouch: true };

const browser = await launch(CHROMIUM);
try {
  step = 'both agents are signed in; a visitor asks';
  const ownerCtx = await browser.newContext(desktop);
  const owner = await ownerCtx.newPage();
  watch(owner, 'owner');
  await signIn(owner, APP_URL, OWNER_EMAIL, 'correct horse battery');
  const annCtx = await browser.newContext(phone);
  const ann = await annCtx.newPage();
  watch(ann, 'ann phone');
  await signIn(ann, APP_URL, AGENT_EMAIL, AGENT_PASSWORD);
  await ann.goto(`${APP_URL}/app/m`);
  await ann.locator('.inbox-tab[data-view=mentions]').waitFor({ timeout: T });
  const visitorCtx = await browser.newContext(desktop);
  const visitor = await visitorCtx.newPage();
  watch(visitor, 'visitor');
  await visitor.goto(`${APP_URL}/chatIndex?ent_id=${ENT_ID}`);
  await visitor.locator('#availability:not(.is-online) .label', { hasText: 'Offline' }).waitFor({ timeout: T });
  await visitor.fill('#input', 'My order #1042 has not arrived.');
  await visitor.press('#input', 'Enter');
  await visitor.locator('.msg.mine:not(.is-pending)', { hasText: '#1042' }).waitFor({ timeout: T });

  step = 'the owner writes a private note and mentions Ann from the list';
  await owner.locator('.conversation').first().click();
  await owner.locator('.tmsg.theirs', { hasText: '#1042' }).waitFor({ timeout: T });
  await owner.click('#mode-note');
  await owner.locator('#thread-composer.is-note').waitFor({ timeout: T });
  await owner.type('#reply', 'Courier says delayed. @An');
  await owner.locator('#mention-list .mention-option', { hasText: 'Ann Lee' }).waitFor({ timeout: T });
  await shot(owner, 'note-mention-picker');
  await owner.press('#reply', 'Enter');
  const text = await owner.inputValue('#reply');
  if (!text.endsWith('@Ann Lee ')) throw new Error(`the pick did not complete the name: ${JSON.stringify(text)}`);
  await owner.type('#reply', 'can you call them?');
  await owner.press('#reply', 'Enter');
  const note = owner.locator('.tmsg.note-msg:not(.is-pending)', { hasText: 'can you call them' });
  await note.waitFor({ timeout: T });
  await note.locator('.note-label', { hasText: 'Private note' }).waitFor({ timeout: T });
  // The list previews what the visitor was told, not the team's note.
  const listed = await owner.locator('.conversation .conversation-preview, .conversation').first().textContent();
  if (listed.includes('Courier says')) throw new Error(`the list previews the private note: ${listed}`);
  await shot(owner, 'note-desktop');

  step = 'Ann is told on her phone and finds it under Mentions';
  await ann.locator('.toast', { hasText: '提到了您' }).waitFor({ timeout: T });
  await ann.locator('.inbox-tab[data-view=mentions]').tap();
  await ann.locator('#count-mentions', { hasText: '1' }).waitFor({ timeout: T });
  await ann.locator('.conversation').first().tap();
  await ann.locator('.tmsg.note-msg.mentions-me', { hasText: 'can you call them' }).waitFor({ timeout: T });
  await ann.locator('.note-label', { hasText: '内部备注' }).first().waitFor({ timeout: T });
  await shot(ann, 'zh-note-mentioned-phone');

  step = 'the visitor never sees the note, also after a reload';
  await owner.click('#mode-reply');
  await owner.fill('#reply', 'We are checking with the courier now.');
  await owner.press('#reply', 'Enter');
  await visitor.locator('.msg.theirs', { hasText: 'checking with the courier' }).waitFor({ timeout: T });
  // Out of hours, but an agent is answering: the visitor is not told the team is offline.
  await visitor.locator('#availability.is-online').waitFor({ timeout: T });
  await visitor.locator('#leave').waitFor({ state: 'hidden', timeout: T });
  await shot(visitor, 'visitor-answered-out-of-hours');
  await visitor.reload();
  await visitor.locator('#availability.is-online').waitFor({ timeout: T });
  await visitor.locator('.msg.theirs', { hasText: 'checking with the courier' }).waitFor({ timeout: T });
  if (await visitor.getByText('can you call them').count()) throw new Error('the visitor sees the private note');
  if (await visitor.getByText('Courier says delayed').count()) throw new Error('the visitor sees the private note');

  if (errors.length) throw new Error(`console errors:\n${errors.join('\n')}`);
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  console.error(`notes run failed at "${step}": ${e.message}`);
  if (errors.length) console.error(`console errors:\n${errors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
