// End-to-end run in headless Chromium, started by tests/it/browser.rs with:
//   APP_URL   the kefu server under test
//   HOST_URL  a merchant's site on another origin; /shop/<ent_id> embeds the GOFLY snippet
//   OUT_DIR   where screenshots go
//   CHROMIUM  the browser binary
//   PHOTO     a PNG the visitor sends
// Exits non-zero with the reason on the first failed step, or if any page logged an error.
import { launch, errorLog, signIn } from './harness.mjs';
import { mkdirSync } from 'node:fs';

const { APP_URL, HOST_URL, OUT_DIR, CHROMIUM, PHOTO } = process.env;
const T = 15_000;
mkdirSync(OUT_DIR, { recursive: true });

const { errors, watch } = errorLog();
let step = 'starting';
const shot = (page, name) => page.screenshot({ path: `${OUT_DIR}/${name}.png` });

const browser = await launch(CHROMIUM);
try {
  // The merchant signs up and lands in the workspace.
  step = 'agent signs up';
  const agentCtx = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: 'en-US' });
  const agent = await agentCtx.newPage();
  watch(agent, 'workspace');
  await agent.goto(`${APP_URL}/signup`);
  await agent.fill('#company', 'Lumen Store');
  const email = `owner${Date.now()}@example.com`;
  await agent.fill('#email', email);
  await agent.fill('#password', 'correct horse battery');
  await agent.click('button[type=submit]');
  await agent.waitForURL('**/app', { timeout: T });
  const entId = (await agent.textContent('.app-topbar code')).trim();

  step = 'the owner adds a quick reply and a colleague';
  const api = (method, url, body) => agent.evaluate(async ([method, url, body]) => {
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const res = await fetch(url, { method, headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  }, [method, url, body]);
  let res = await api('POST', '/api/v1/quick_replies', { group: 'Shipping', title: 'Shipping times', body: 'Orders ship within 24 hours; delivery takes 2–3 days.' });
  if (res.status !== 201) throw new Error(`quick reply: ${JSON.stringify(res)}`);
  const colleagueEmail = `lin${Date.now()}@example.com`;
  res = await api('POST', '/api/v1/agents', { email: colleagueEmail, display_name: 'Lin', role: 'agent' });
  if (res.status !== 201) throw new Error(`new agent: ${JSON.stringify(res)}`);
  const colleaguePassword = res.body.password;

  // A shopper on the merchant's own site (another origin) opens the GOFLY widget.
  step = 'widget loads on the host page';
  const shopCtx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
  const shop = await shopCtx.newPage();
  watch(shop, 'host page');
  await shop.goto(`${HOST_URL}/shop/${entId}`);
  const button = shop.locator('[data-kefu-widget] button');
  await button.waitFor({ timeout: T });
  const buttonText = await button.textContent();
  if (!buttonText.includes('Talk to Lumen')) throw new Error(`button text is ${JSON.stringify(buttonText)}`);
  if ((await shop.locator('[data-kefu-widget] iframe').count()) !== 0) throw new Error('the chat loaded before it was opened');

  step = 'visitor opens the chat and sends a message';
  await button.click();
  const chat = shop.frameLocator('[data-kefu-widget] iframe');
  await chat.locator('#availability.is-online').waitFor({ timeout: T });
  await chat.locator('#input').fill('Hi! Does the desk lamp come in white?');
  await chat.locator('#input').press('Enter');
  await chat.locator('.msg.mine:not(.is-pending)').waitFor({ timeout: T });

  step = 'the workspace announces the new visitor';
  await agent.locator('.toast', { hasText: 'New visitor' }).waitFor({ timeout: T });

  step = 'the inbox lists, counts and searches conversations';
  await agent.locator('.inbox-tab[data-view=mine] .count', { hasText: '1' }).waitFor({ timeout: T });
  await agent.selectOption('#inbox-filter', 'closed');
  if ((await agent.locator('.conversation').count()) !== 0) throw new Error('an open conversation is listed as resolved');
  await agent.selectOption('#inbox-filter', 'open');
  await agent.click('.inbox-tab[data-view=mine]');
  await agent.fill('#inbox-search', 'no such visitor');
  await agent.locator('#list-empty', { hasText: 'No conversation matches' }).waitFor({ timeout: T });
  if ((await agent.locator('.conversation').count()) !== 0) throw new Error('the search did not filter');
  await agent.fill('#inbox-search', 'desk lamp');
  await agent.locator('.conversation').first().waitFor({ timeout: T });
  await agent.fill('#inbox-search', '');

  step = 'agent sees the conversation and replies';
  await agent.locator('.conversation').first().waitFor({ timeout: T });
  await agent.locator('.conversation').first().click();
  await agent.locator('.tmsg.theirs', { hasText: 'desk lamp' }).waitFor({ timeout: T });
  // The widget reported the page the shopper is on.
  await agent.locator('#thread-page', { hasText: 'Lumen Store — Desk lamps' }).waitFor({ timeout: T });
  // The visitor panel: the product from GOFLY_EXTRA, the device, the page trail.
  await agent.locator('#vp-product', { hasText: 'Lumen desk lamp' }).waitFor({ timeout: T });
  // The shop page passed a hostile product link: nothing on the page links or loads it.
  const scripted = await agent.locator('a[href^="javascript:" i], img[src^="data:" i], img[src^="javascript:" i]').count();
  if (scripted) throw new Error(`${scripted} javascript:/data: links or images in the workspace`);
  await agent.locator('#vp-device', { hasText: 'Chrome' }).waitFor({ timeout: T });
  await agent.locator('#vp-pages li', { hasText: 'Desk lamps' }).first().waitFor({ timeout: T });
  await agent.fill('#reply', 'Yes — white ships tomorrow. 明天发货！');
  await agent.press('#reply', 'Enter');
  await agent.locator('.tmsg.mine:not(.is-pending)').waitFor({ timeout: T });

  step = 'visitor sees the reply, and that the agent read their message';
  await chat.locator('.msg.theirs .bubble', { hasText: 'white ships tomorrow' }).waitFor({ timeout: T });
  await chat.locator('.msg.mine .meta', { hasText: 'Read' }).waitFor({ timeout: T });

  step = 'the agent answers with a quick reply picked by typing /';
  await agent.locator('#reply').pressSequentially('/ship');
  await agent.locator('#quick-panel .quick-item', { hasText: 'Shipping times' }).waitFor({ timeout: T });
  await shot(agent, 'workspace-quick-replies');
  await agent.press('#reply', 'Enter'); // picks the highlighted reply
  const picked = await agent.inputValue('#reply');
  if (!picked.startsWith('Orders ship within 24 hours')) throw new Error(`the quick reply was not inserted: ${JSON.stringify(picked)}`);
  await agent.press('#reply', 'Enter'); // sends it
  await chat.locator('.msg.theirs .bubble', { hasText: 'Orders ship within 24 hours' }).waitFor({ timeout: T });

  step = 'the agent sees the visitor typing';
  await chat.locator('#input').pressSequentially('One more question');
  await agent.locator('#thread-typing', { hasText: 'is typing' }).waitFor({ timeout: T });
  await chat.locator('#input').fill('');

  step = 'the agent names the visitor, tags them and writes a note';
  await agent.click('#vp-edit');
  await agent.fill('#vp-form [name=name]', 'Alice');
  await agent.fill('#vp-form [name=email]', 'alice@example.com');
  await agent.click('#vp-form button[type=submit]');
  await agent.locator('#vp-name', { hasText: 'Alice' }).waitFor({ timeout: T });
  await agent.locator('.conversation-name', { hasText: 'Alice' }).waitFor({ timeout: T });
  await agent.fill('#vp-tag', 'VIP');
  await agent.press('#vp-tag', 'Enter');
  await agent.locator('#vp-tags .tag', { hasText: 'VIP' }).waitFor({ timeout: T });
  await agent.fill('#vp-note', 'Wants the white lamp; ships tomorrow.');
  await agent.click('#vp-note-form button[type=submit]');
  await agent.locator('#vp-notes li', { hasText: 'Wants the white lamp' }).waitFor({ timeout: T });

  step = 'the history search finds words in Chinese without spaces, and visitors by tag';
  await agent.fill('#inbox-search', '发货');
  const hit = agent.locator('#search-results .search-hit', { hasText: 'white ships tomorrow' });
  await hit.locator('mark', { hasText: '发货' }).waitFor({ timeout: T });
  await shot(agent, 'workspace-search');
  await hit.click();
  await agent.locator('.tmsg.is-found', { hasText: '明天发货' }).waitFor({ timeout: T });
  await agent.fill('#inbox-search', 'VIP');
  await agent.locator('#search-results .search-hit', { hasText: 'Alice' }).waitFor({ timeout: T });
  await agent.fill('#inbox-search', '');
  await agent.locator('#search-results').waitFor({ state: 'hidden', timeout: T });

  step = 'visitor sends a photo; the agent sees it and opens it full size';
  await chat.locator('#file').setInputFiles(PHOTO);
  await chat.locator('.msg.mine:not(.is-pending) .bubble.has-image img').waitFor({ timeout: T });
  const thumb = agent.locator('.tmsg.theirs .bubble.has-image img');
  await thumb.waitFor({ timeout: T });
  await agent.waitForFunction((img) => img.complete && img.naturalWidth > 0, await thumb.elementHandle(), { timeout: T });
  await agent.locator('.tmsg.theirs .bubble.has-image button').click();
  await agent.locator('.viewer img').waitFor({ timeout: T });
  await shot(agent, 'workspace-image-viewer');
  await agent.keyboard.press('Escape');
  await agent.locator('.viewer').waitFor({ state: 'detached', timeout: T });

  step = 'the agent sends a document; the visitor gets a file card';
  await agent.locator('#agent-file').setInputFiles({ name: 'Lamp manual.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.7\n1 0 obj << >> endobj\ntrailer\n%%EOF\n') });
  await agent.locator('.tmsg.mine:not(.is-pending) .file-card', { hasText: 'Lamp manual.pdf' }).waitFor({ timeout: T });
  await chat.locator('.msg.theirs .file-card', { hasText: 'Lamp manual.pdf' }).waitFor({ timeout: T });
  await shot(shop, 'widget-desktop-open');

  step = 'the agent goes away and back: the visitor sees the team availability';
  await agent.selectOption('#my-status', 'away');
  await chat.locator('#availability:not(.is-online)').waitFor({ timeout: T });
  await agent.selectOption('#my-status', 'online');
  await chat.locator('#availability.is-online').waitFor({ timeout: T });

  step = 'a reply while the chat is closed raises the badge and blinks the title';
  await chat.locator('#close').click();
  await shop.locator('[data-kefu-widget] [role=dialog]').waitFor({ state: 'hidden', timeout: T });
  await agent.fill('#reply', 'Anything else I can help with?');
  await agent.press('#reply', 'Enter');
  await shop.locator('[data-kefu-widget] button span', { hasText: '1' }).waitFor({ timeout: T });
  await shop.waitForFunction(() => document.title.startsWith('(1)'), null, { timeout: T });
  await shot(shop, 'widget-desktop-badge');
  await button.click();
  await shop.waitForFunction(() => !document.title.startsWith('('), null, { timeout: T });
  await shot(agent, 'workspace-desktop');

  step = 'a colleague signs in; the conversation is transferred to them';
  const colleagueCtx = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: 'en-US' });
  const colleague = await colleagueCtx.newPage();
  watch(colleague, 'colleague workspace');
  await colleague.goto(`${APP_URL}/login`);
  await colleague.fill('#email', colleagueEmail);
  await colleague.fill('#password', colleaguePassword);
  await colleague.click('button[type=submit]');
  await colleague.waitForURL('**/app', { timeout: T });
  await colleague.locator('.conversation').first().waitFor({ timeout: T });
  await agent.click('#transfer-menu summary');
  await agent.locator('#transfer-list .menu-item', { hasText: 'Lin' }).click();
  await agent.locator('.toast', { hasText: 'Transferred to Lin' }).waitFor({ timeout: T });
  await colleague.locator('.inbox-tab[data-view=mine] .count', { hasText: '1' }).waitFor({ timeout: T });
  await chat.locator('.msg.notice', { hasText: 'Lin' }).waitFor({ timeout: T });
  await colleague.click('.inbox-tab[data-view=mine]');
  await colleague.locator('.conversation', { hasText: 'Alice' }).click();
  await colleague.locator('#vp-notes li', { hasText: 'Wants the white lamp' }).waitFor({ timeout: T });
  await colleague.fill('#reply', 'Hi Alice, Lin here — I will take care of your order.');
  await colleague.press('#reply', 'Enter');
  await chat.locator('.msg.theirs .bubble', { hasText: 'Lin here' }).waitFor({ timeout: T });
  await shot(colleague, 'workspace-after-transfer');

  step = 'statuses: pending until the visitor writes, resolved with a rating, reopened';
  await colleague.click('#status-menu summary');
  await colleague.locator('#status-menu [data-status=pending]').click();
  await colleague.locator('#thread-state', { hasText: 'Pending' }).waitFor({ timeout: T });
  await colleague.locator('.tmsg.activity', { hasText: 'Lin marked this pending' }).waitFor({ timeout: T });
  await colleague.selectOption('#inbox-filter', 'pending');
  await colleague.locator('.conversation', { hasText: 'Alice' }).waitFor({ timeout: T });
  if (await chat.locator('.msg', { hasText: 'pending' }).count()) throw new Error('the visitor sees the team\'s status line');
  await chat.locator('#input').fill('Great, thanks!');
  await chat.locator('#input').press('Enter');
  await colleague.locator('.tmsg.activity', { hasText: "Reopened by the visitor's message" }).waitFor({ timeout: T });
  await colleague.locator('#thread-state').waitFor({ state: 'hidden', timeout: T });
  await colleague.selectOption('#inbox-filter', 'open');
  await colleague.locator('.conversation', { hasText: 'Alice' }).waitFor({ timeout: T });
  await colleague.click('#status-menu summary');
  await shot(colleague, 'workspace-status-menu');
  await colleague.keyboard.press('Escape');
  await colleague.click('#close-conversation');
  await colleague.locator('#thread-state', { hasText: 'Resolved' }).waitFor({ timeout: T });
  await chat.locator('.rating-card').waitFor({ timeout: T });
  await chat.locator('.rating-star').nth(3).click();
  await chat.locator('.rating-comment').fill('Quick and friendly');
  await chat.locator('.rating-send').click();
  await chat.locator('.rating-card', { hasText: 'Thank' }).waitFor({ timeout: T });
  await colleague.locator('#thread-rating', { hasText: '★★★★☆' }).waitFor({ timeout: T });
  await shot(colleague, 'workspace-resolved-rated');
  await colleague.click('#reopen-conversation');
  await colleague.locator('#close-conversation').waitFor({ timeout: T });
  // Settings are for admins: an agent has no link to them.
  if (await colleague.locator('a[href="/app/settings"]').count()) throw new Error('an agent sees the settings link');
  await colleagueCtx.close();

  step = 'the owner manages the team, quick replies and the blacklist in Settings';
  await agent.click('a[href="/app/settings"]');
  await agent.waitForURL('**/app/settings', { timeout: T });
  await agent.locator('#agents-table tbody tr', { hasText: colleagueEmail }).waitFor({ timeout: T });
  const meiEmail = `mei${Date.now()}@example.com`;
  await agent.fill('#agent-form [name=email]', meiEmail);
  await agent.fill('#agent-form [name=display_name]', 'Mei');
  await agent.click('#agent-form button[type=submit]');
  await agent.locator('#secret-box:not([hidden])').waitFor({ timeout: T });
  if ((await agent.inputValue('#secret-value')).length < 16) throw new Error('no first password shown');
  await agent.locator('#agents-table tbody tr', { hasText: meiEmail }).waitFor({ timeout: T });
  await shot(agent, 'settings-team');
  await agent.click('#tab-quick');
  await agent.fill('#quick-form [name=group]', 'Shipping');
  await agent.fill('#quick-form [name=title]', 'Returns');
  await agent.fill('#quick-form [name=body]', 'You can return it within 30 days, free of charge.');
  await agent.click('#quick-submit');
  await agent.locator('.quick-admin-list li', { hasText: 'Returns' }).waitFor({ timeout: T });
  await agent.locator('.quick-admin-list li', { hasText: 'Returns' }).getByRole('button', { name: 'Move up' }).click();
  await agent.waitForFunction(() => document.querySelector('.quick-admin-list li strong').textContent === 'Returns', null, { timeout: T });
  await shot(agent, 'settings-quick-replies');
  await agent.click('#tab-blacklist');
  await agent.fill('#block-form [name=ip]', '203.0.113.0/24');
  await agent.fill('#block-form [name=reason]', 'Spam from a bot farm');
  await agent.click('#block-form button[type=submit]');
  await agent.locator('#blacklist-table code', { hasText: '203.0.113.0/24' }).waitFor({ timeout: T });
  await shot(agent, 'settings-blacklist');
  await agent.click('#tab-chat');
  await agent.fill('#chat-form [name=service_name]', 'Lumen Support');
  // The welcome message in the rich-text editor: bold from the toolbar, a link, a list.
  const welcome = agent.locator('#welcome_message-editor');
  await welcome.click();
  await agent.keyboard.type('Welcome to ');
  await agent.click('[data-rich=welcome_message] .tool-bold');
  await agent.keyboard.type('Lumen');
  await agent.click('[data-rich=welcome_message] .tool-bold');
  await agent.keyboard.type('! Ask us anything about our lamps, or read the ');
  await agent.click('[data-rich=welcome_message] .tool-link');
  await agent.fill('[data-rich=welcome_message] .rich-link input', 'https://lumen.example/faq');
  await agent.press('[data-rich=welcome_message] .rich-link input', 'Enter');
  await agent.keyboard.press('Enter');
  await agent.click('[data-rich=welcome_message] .tool-insertUnorderedList');
  await agent.keyboard.type('Free shipping');
  await agent.keyboard.press('Enter');
  await agent.keyboard.type('30-day returns');
  // A pasted snippet of someone's web page arrives as plain text.
  await agent.locator('#offline_message-editor').evaluate((node) => {
    node.focus();
    const data = new DataTransfer();
    data.setData('text/html', '<img src=x onerror=alert(1)><b style="color:red">Back soon</b>');
    data.setData('text/plain', 'Back soon');
    node.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
  });
  await agent.click('#chat-form button[type=submit]');
  await agent.locator('.toast', { hasText: 'Saved' }).first().waitFor({ timeout: T });
  const saved = await api('GET', '/api/v1/settings');
  const html = saved.body.welcome_message;
  if (!/<b>Lumen<\/b>/.test(html) || !html.includes('href="https://lumen.example/faq"') || !/<ul><li>Free shipping<\/li><li>30-day returns<\/li><\/ul>/.test(html)) {
    throw new Error(`welcome message stored as ${html}`);
  }
  if (saved.body.offline_message !== 'Back soon' && saved.body.offline_message !== '<p>Back soon</p>') throw new Error(`pasted offline message: ${saved.body.offline_message}`);
  // The logo and the service avatar: chosen, stored at once, shown.
  await agent.setInputFiles('[data-picture=logo] input[type=file]', PHOTO);
  await agent.locator('[data-picture=logo] .picture-preview img').waitFor({ timeout: T });
  await agent.setInputFiles('[data-picture=avatar] input[type=file]', PHOTO);
  await agent.locator('[data-picture=avatar] .picture-preview img').waitFor({ timeout: T });
  await agent.locator('#welcome_message-editor').scrollIntoViewIfNeeded();
  await shot(agent, 'settings-chat');
  // The owner's own photo, from the profile dialog in the sidebar.
  await agent.click('#profile-open');
  await agent.locator('#profile-dialog[open]').waitFor({ timeout: T });
  await agent.setInputFiles('#profile-file', PHOTO);
  await agent.locator('#profile-photo img').waitFor({ timeout: T });
  // Where the owner is signed in: this browser, marked as such.
  await agent.locator('#session-list li .badge').waitFor({ timeout: T });
  await shot(agent, 'profile-dialog');
  await agent.click('#profile-form button[type=submit]');
  await agent.locator('#profile-open img.avatar').waitFor({ timeout: T });
  await agent.click('#tab-auto');
  await agent.fill('#auto-form [name=keyword]', '发货');
  await agent.fill('#auto-form [name=reply]', '今天下单，明天发货。');
  await agent.click('#auto-form button[type=submit]');
  await agent.locator('#auto-table td', { hasText: '今天下单' }).waitFor({ timeout: T });
  await agent.click('#tab-stats');
  await agent.waitForFunction(() => [...document.querySelectorAll('#chart-conversations rect.bar')].some((r) => Number(r.getAttribute('height')) > 0), null, { timeout: T });
  await agent.locator('#stats-agents tbody tr').first().waitFor({ timeout: T });
  // Alice's rating (4 stars) counts, her conversation lights an hour of the heatmap.
  await agent.locator('#stats-kpis .kpi', { hasText: '4.0 ★' }).waitFor({ timeout: T });
  await agent.locator('#chart-hours rect[fill^="rgba"]').first().waitFor({ timeout: T });
  await agent.locator('#stats-agents td', { hasText: '4.0 ★ (1)' }).waitFor({ timeout: T });
  await agent.click('[data-days="30"]');
  await agent.waitForFunction(() => document.querySelectorAll('#chart-conversations rect.bar').length === 30, null, { timeout: T });
  await shot(agent, 'settings-stats');
  await agent.screenshot({ path: `${OUT_DIR}/settings-stats-full.png`, fullPage: true });
  await agent.click('#stats-export summary');
  const csvHref = await agent.getAttribute('#stats-export a[data-table=agents]', 'href');
  const csvRes = await agent.request.get(`${APP_URL}${csvHref}`);
  const csvText = await csvRes.text();
  if (!csvRes.ok() || !csvText.startsWith('\ufeffagent_id,agent,')) throw new Error(`CSV export: ${csvRes.status()} ${csvText.slice(0, 80)}`);
  await agent.keyboard.press('Escape');
  await agent.click('#tab-audit');
  await agent.locator('#audit-table td code', { hasText: 'auto_reply.create' }).waitFor({ timeout: T });
  await shot(agent, 'settings-audit');
  await agent.click('#tab-deploy');
  const snippet = await agent.inputValue('#deploy-gofly');
  if (!snippet.includes(`GOFLY_ENT: "${entId}"`)) throw new Error(`GOFLY snippet: ${snippet}`);
  await shot(agent, 'settings-deploy');
  await agent.click('#tab-integrations');
  await agent.fill('#sso-form [name=sso_ip_whitelist]', '203.0.113.10\n198.51.100.0/24');
  await agent.click('#sso-form button[type=submit]');
  await agent.locator('.toast', { hasText: 'Saved' }).first().waitFor({ timeout: T });
  agent.once('dialog', (d) => d.accept());
  await agent.click('#sso-secret');
  await agent.locator('#sso-secret-box:not([hidden])').waitFor({ timeout: T });
  if ((await agent.inputValue('#sso-secret-value')).length < 40) throw new Error('no SSO secret shown');
  await agent.fill('#webhook-form [name=url]', 'https://hooks.example.com/kefu');
  await agent.check('#webhook-events input[value="message.created"]');
  await agent.check('#webhook-events input[value="conversation.closed"]');
  await agent.click('#webhook-form button[type=submit]');
  await agent.locator('#webhook-secret-box:not([hidden])').waitFor({ timeout: T });
  await agent.locator('#webhooks-table code', { hasText: 'hooks.example.com' }).waitFor({ timeout: T });
  await agent.locator('#webhooks-table button', { hasText: 'Deliveries' }).click();
  await agent.locator('#webhook-log:not([hidden])').waitFor({ timeout: T });
  await shot(agent, 'settings-integrations');
  // An API token for the shop's order system: shown once, then listed; it works, and a
  // revoked one does not.
  await agent.fill('#token-form [name=name]', 'Order system');
  await agent.click('#token-form button[type=submit]');
  await agent.locator('#token-box:not([hidden])').waitFor({ timeout: T });
  const apiToken = await agent.inputValue('#token-value');
  if (!apiToken.startsWith(`kefu_${entId}_`)) throw new Error(`API token: ${apiToken}`);
  await agent.locator('#tokens-table td', { hasText: 'Order system' }).waitFor({ timeout: T });
  const viaToken = await agent.request.get(`${APP_URL}/api/v1/conversations?view=all`, { headers: { authorization: `Bearer ${apiToken}` } });
  if (!viaToken.ok()) throw new Error(`the API token was refused: ${viaToken.status()}`);
  await agent.locator('#token-box').scrollIntoViewIfNeeded();
  await shot(agent, 'settings-api-tokens');
  agent.once('dialog', (dialog) => dialog.accept());
  await agent.locator('#tokens-table button', { hasText: 'Revoke' }).click();
  await agent.locator('#tokens-table td', { hasText: 'Order system' }).waitFor({ state: 'detached', timeout: T });
  await agent.click('a[href="/app"]');
  await agent.locator('.conversation').first().waitFor({ timeout: T });

  step = 'the agent on a phone: /app/m shows the list, then one chat, and back';
  const agentPhoneCtx = await browser.newContext({ viewport: { width: 390, height: 800 }, locale: 'en-US', isMobile: true, hasTouch: true });
  const agentPhone = await agentPhoneCtx.newPage();
  watch(agentPhone, 'phone workspace');
  await agentPhone.goto(`${APP_URL}/app/m`);
  await agentPhone.waitForURL('**/login?next=%2Fapp%2Fm', { timeout: T }).catch(() => agentPhone.waitForURL('**/login?next=/app/m', { timeout: T }));
  await agentPhone.fill('#email', email);
  await agentPhone.fill('#password', 'correct horse battery');
  await agentPhone.click('button[type=submit]');
  await agentPhone.waitForURL('**/app/m', { timeout: T });
  await agentPhone.locator('.conversation').first().waitFor({ timeout: T });
  if (await agentPhone.locator('.welcome-card').isVisible()) throw new Error('/app/m shows the onboarding cards');
  await shot(agentPhone, 'workspace-phone-list');
  await agentPhone.locator('.conversation').first().tap();
  await agentPhone.locator('.tmsg.theirs', { hasText: 'desk lamp' }).waitFor({ timeout: T });
  if (await agentPhone.locator('.inbox-list').isVisible()) throw new Error('the list stays beside the chat on a phone');
  // The thread fills the phone: a header no taller than 56 px, the composer on screen.
  const head = await agentPhone.locator('.thread-head').boundingBox();
  if (head.height > 56) throw new Error(`the phone's thread header is ${head.height} px high`);
  const sendBox = await agentPhone.locator('#thread-composer button[type=submit]').boundingBox();
  if (sendBox.y + sendBox.height > 800 || sendBox.x + sendBox.width > 390) throw new Error(`the send button is off screen: ${JSON.stringify(sendBox)}`);
  await agentPhone.fill('#reply', 'Answered from my phone.');
  await agentPhone.locator('#thread-composer button[type=submit]').tap();
  await agentPhone.locator('.tmsg.mine:not(.is-pending)', { hasText: 'from my phone' }).waitFor({ timeout: T });
  await shot(agentPhone, 'workspace-phone-chat');
  // The visitor panel opens over the chat: who they are, tags and notes, and closes again.
  await agentPhone.locator('#panel-toggle').tap();
  await agentPhone.locator('#vp-tags .tag', { hasText: 'VIP' }).waitFor({ timeout: T });
  await agentPhone.locator('#vp-notes li', { hasText: 'Wants the white lamp' }).waitFor({ timeout: T });
  await agentPhone.fill('#vp-tag', 'Phone');
  await agentPhone.press('#vp-tag', 'Enter');
  await agentPhone.locator('#vp-tags .tag', { hasText: 'Phone' }).waitFor({ timeout: T });
  await shot(agentPhone, 'workspace-phone-visitor');
  await agentPhone.locator('#panel-close').tap();
  await agentPhone.locator('#visitor-panel').waitFor({ state: 'hidden', timeout: T });
  await agentPhone.locator('#thread-back').tap();
  await agentPhone.locator('.conversation').first().waitFor({ timeout: T });
  await agentPhoneCtx.close();

  step = 'the chat page on a phone';
  const phoneCtx = await browser.newContext({ viewport: { width: 390, height: 760 }, locale: 'zh-CN', isMobile: true, hasTouch: true });
  const phone = await phoneCtx.newPage();
  watch(phone, 'phone chat');
  await phone.goto(`${APP_URL}/chatIndex?ent_id=${entId}`);
  await phone.locator('#availability.is-online').waitFor({ timeout: T });
  await phone.fill('#input', '你好，请问今天能发货吗？');
  await phone.click('#emoji');
  await phone.locator('.emoji-item', { hasText: '🙏' }).click();
  await phone.press('#input', 'Enter');
  await phone.locator('.msg.mine:not(.is-pending)', { hasText: '发货吗？🙏' }).waitFor({ timeout: T });
  await phone.locator('.msg.mine .meta', { hasText: '已送达' }).waitFor({ timeout: T });
  // The merchant's settings: its service name, its welcome message and a keyword auto-reply.
  await phone.locator('.chat-head h1', { hasText: 'Lumen Support' }).waitFor({ timeout: T });
  await phone.locator('.msg.theirs .rich b', { hasText: 'Lumen' }).waitFor({ timeout: T });
  await phone.locator('.msg.theirs .rich li', { hasText: '30-day returns' }).waitFor({ timeout: T });
  const faq = await phone.locator('.msg.theirs .rich a').first().getAttribute('href');
  if (faq !== 'https://lumen.example/faq') throw new Error(`welcome link: ${faq}`);
  await phone.locator('.chat-head img.chat-logo').waitFor({ timeout: T });
  await phone.locator('.msg.theirs img.msg-avatar').first().waitFor({ timeout: T });
  await phone.locator('.msg.theirs', { hasText: '今天下单，明天发货。' }).waitFor({ timeout: T });
  await shot(phone, 'chat-phone-zh');

  step = 'nobody online: the visitor leaves a message';
  await agentCtx.close();
  const lateCtx = await browser.newContext({ viewport: { width: 390, height: 760 }, locale: 'en-US', isMobile: true, hasTouch: true });
  const late = await lateCtx.newPage();
  watch(late, 'offline chat');
  await late.goto(`${APP_URL}/chatIndex?ent_id=${entId}`);
  await late.locator('#availability:not(.is-online) .label', { hasText: /offline/i }).waitFor({ timeout: T });
  await late.fill('#input', 'Are you open on Sundays?');
  await late.press('#input', 'Enter');
  await late.locator('#leave').waitFor({ timeout: T });
  await late.fill('#leave [name=name]', 'Mia');
  await late.fill('#leave [name=contact]', 'mia@example.com');
  await late.fill('#leave [name=body]', 'Please call me back about opening hours.');
  await shot(late, 'chat-phone-leave-message');
  await late.click('#leave button[type=submit]');
  await late.locator('#leave').waitFor({ state: 'hidden', timeout: T });
  // What they left is in their chat, as they wrote it.
  await late.locator('.msg.mine .bubble', { hasText: 'opening hours' }).waitFor({ timeout: T });

  step = 'the owner comes back: the lead waits in the inbox, marked, and is answered';
  const backCtx = await browser.newContext({ viewport: { width: 1366, height: 900 }, locale: 'en-US' });
  const back = await backCtx.newPage();
  watch(back, 'workspace again');
  await signIn(back, APP_URL, email, 'correct horse battery');
  const lead = back.locator('.conversation', { hasText: 'Mia' });
  await lead.locator('.left-offline', { hasText: 'Left while offline' }).waitFor({ timeout: T });
  await lead.click();
  await back.locator('.tmsg.theirs', { hasText: 'opening hours' }).waitFor({ timeout: T });
  await back.fill('#reply', 'We open at 10 on Sundays.');
  await back.press('#reply', 'Enter');
  await back.locator('.tmsg.mine:not(.is-pending)', { hasText: 'Sundays' }).waitFor({ timeout: T });
  await shot(back, 'workspace-left-message');
  await late.locator('.msg.theirs .bubble', { hasText: 'open at 10' }).waitFor({ timeout: T });

  step = 'a blocked visitor sees a clear, final screen';
  back.once('dialog', (d) => d.accept());
  await back.click('#vp-block');
  await back.locator('#vp-blocked:not([hidden])').waitFor({ timeout: T });
  await late.locator('.final-screen', { hasText: 'no longer chat' }).waitFor({ timeout: T });
  if (await late.locator('#composer').isVisible()) throw new Error('a blocked visitor still has a composer');
  await shot(late, 'chat-phone-blocked');

  if (errors.length) throw new Error(`console errors:\n${errors.join('\n')}`);
  console.log(JSON.stringify({ ok: true, entId }));
} catch (e) {
  console.error(`browser e2e failed at "${step}": ${e.message}`);
  if (errors.length) console.error(`console errors:\n${errors.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
