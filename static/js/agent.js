// The agent inbox (minimal view): conversations of the merchant, one thread, replies.
// Same protocol as docs/protocol.md: the session cookie opens /ws/agent, `since` on every
// reconnect, replies resent with their client_msg_id until acknowledged.
(() => {
  'use strict';
  const inbox = document.getElementById('inbox');
  if (!inbox) return;
  const t = inbox.dataset;
  const listEl = document.getElementById('conversation-list');
  const emptyEl = document.getElementById('inbox-empty');
  const statusEl = document.getElementById('inbox-status');
  const thread = document.getElementById('thread');
  const threadTitle = document.getElementById('thread-title');
  const threadPage = document.getElementById('thread-page');
  const lastPage = new Map(); // visitor public id -> the page they opened last

  // The visitor panel: who the visitor is, where from, on what, and the pages they opened.
  const panel = document.getElementById('visitor-panel');
  const pd = panel.dataset;
  let panelVisitor = null;
  // In the viewer's time zone and the page's language (dom.js).
  const fmtTime = window.KefuDom.when;
  function setText(id, text) { document.getElementById(id).textContent = text || pd.tUnknown; }
  function setLink(id, raw) {
    const dd = document.getElementById(id);
    dd.replaceChildren();
    // Visitor-supplied: only an http(s) URL becomes a link; anything else shows as text.
    const url = window.KefuContent.webUrl(raw);
    if (!url) { dd.textContent = raw || pd.tUnknown; return; }
    const a = el('a', 'vp-link', url.replace(/^https?:\/\//, ''));
    a.href = url; a.target = '_blank'; a.rel = 'noopener noreferrer';
    dd.append(a);
  }
  function pageItem(p) {
    const li = el('li');
    const href = window.KefuContent.webUrl(p.url);
    const a = el(href ? 'a' : 'span', 'vp-link', p.title || p.url);
    if (href) { a.href = href; a.target = '_blank'; a.rel = 'noopener noreferrer'; a.title = href; }
    li.append(a, el('time', 'muted', fmtTime(p.at)));
    return li;
  }
  let panelData = null;      // the visitor shown in the panel, as the API returned it
  const isAdmin = pd.admin === 'true';
  const { api, upload, toast } = window.KefuApp;
  const vpStatus = document.getElementById('vp-status');
  const say = (text) => { vpStatus.textContent = text; if (text) setTimeout(() => { if (vpStatus.textContent === text) vpStatus.textContent = ''; }, 4000); };
  const visitorPath = () => `/api/v1/visitors/${encodeURIComponent(panelVisitor)}`;

  function renderIdentity(v) {
    // The visitor's own picture (the page's `avatar`, served through kefu), else an initial.
    const face = document.getElementById('vp-avatar');
    face.replaceChildren();
    const src = v.avatar_src || (panelData && panelData.id === v.id ? panelData.avatar_src : null);
    if (src) { const img = document.createElement('img'); img.src = src; img.alt = ''; face.append(img); }
    else face.textContent = (v.name || '?').trim().charAt(0).toUpperCase();
    document.getElementById('vp-name').textContent = v.real_name && v.real_name !== v.name ? `${v.name} (${v.real_name})` : v.name;
    setText('vp-contact', [v.email, v.phone].filter(Boolean).join(' · '));
    document.getElementById('vp-blocked').hidden = !v.blocked;
    // A verified visitor is the merchant's user (its site proved it); a claimed id is a hint.
    document.getElementById('vp-verified').hidden = !v.user_id;
    const userId = v.user_id || v.claimed_user_id;
    const idLabel = document.getElementById('vp-user-id-label');
    idLabel.hidden = !userId;
    idLabel.textContent = v.user_id ? idLabel.dataset.tUser : idLabel.dataset.tClaimed;
    const idValue = document.getElementById('vp-user-id');
    idValue.hidden = !userId;
    idValue.textContent = userId || '';
    document.getElementById('vp-block').disabled = !!v.blocked;
    const tags = document.getElementById('vp-tags');
    tags.replaceChildren(...(v.tags || []).map((name) => {
      const li = el('li', 'tag', name);
      const x = el('button', 'tag-remove', '×');
      x.type = 'button';
      x.setAttribute('aria-label', `${pd.tRemoveTag}: ${name}`);
      x.addEventListener('click', () => api('DELETE', `${visitorPath()}/tags/${encodeURIComponent(name)}`).then(updateVisitor).catch((e) => say(e.message)));
      li.append(x);
      return li;
    }));
  }
  function noteItem(n) {
    const li = el('li');
    li.append(el('p', 'vp-note-body', n.body));
    const meta = el('div', 'vp-note-meta muted', `${n.agent_name || ''} · ${fmtTime(n.created_at)}`);
    if (n.agent_id === me || isAdmin) {
      const del = el('button', 'link-button', pd.tDelete);
      del.type = 'button';
      del.addEventListener('click', () => api('DELETE', `${visitorPath()}/notes/${n.id}`).then(() => li.remove()).catch((e) => say(e.message)));
      meta.append(' · ', del);
    }
    li.append(meta);
    return li;
  }
  // Custom data the merchant's site passed in `extra` (the product has its own card).
  function renderExtra(extra) {
    const dl = document.getElementById('vp-extra');
    // The product has its card, names show above, and the page the widget reports is in the
    // page trail: the rest is the merchant's own data.
    const shown = new Set(['visitorProduct', 'visitorName', 'visitorAvatar', 'pageUrl', 'pageTitle']);
    const entries = Object.entries(extra || {}).filter(([k, v]) => !shown.has(k) && v !== null && typeof v !== 'object');
    dl.hidden = entries.length === 0;
    dl.replaceChildren(...entries.flatMap(([k, v]) => [el('dt', '', k), el('dd', '', String(v))]));
  }
  // The pre-chat form's answers, labelled in the page's language.
  function renderPrechat(answers) {
    const dl = document.getElementById('vp-prechat');
    const zh = document.documentElement.lang === 'zh-CN';
    const word = (l) => (l && (zh ? l['zh-CN'] : l.en)) || '';
    const list = Array.isArray(answers) ? answers : [];
    dl.hidden = list.length === 0;
    document.getElementById('vp-prechat-title').hidden = list.length === 0;
    dl.replaceChildren(...list.flatMap((a) => [el('dt', '', word(a.label)), el('dd', '', a.choice ? word(a.choice) : a.value)]));
  }
  async function showVisitor(publicId) {
    panelVisitor = publicId;
    const res = await fetch(`/api/v1/visitors/${encodeURIComponent(publicId)}`);
    if (!res.ok || panelVisitor !== publicId) return;
    const v = await res.json();
    panelData = v;
    panel.hidden = false;
    closeEditor();
    renderIdentity(v);
    document.getElementById('vp-id').textContent = v.id;
    setText('vp-location', [v.city, v.region, v.country].filter(Boolean).join(', '));
    setText('vp-device', [v.os, v.browser, v.device].filter(Boolean).join(' · '));
    setText('vp-ip', v.ip);
    document.getElementById('vp-block-ip').disabled = !v.ip;
    setLink('vp-referrer', v.referrer);
    setLink('vp-landing', v.landing_url);
    setText('vp-seen', `${fmtTime(v.first_seen_at)} / ${fmtTime(v.last_seen_at)} · ${v.visit_count} ${pd.tVisits}`);
    const product = document.getElementById('vp-product');
    const p = v.extra && v.extra.visitorProduct;
    product.hidden = !(p && p.title);
    if (p && p.title) product.replaceChildren(window.KefuContent.fill(el('div', 'bubble'), { kind: 'product', payload: { product: p } }));
    renderExtra(v.extra);
    renderPrechat(v.prechat);
    document.getElementById('vp-pages').replaceChildren(...(v.pages || []).map(pageItem));
    document.getElementById('vp-notes').replaceChildren(...(v.notes || []).map(noteItem));
  }
  // A visitor changed (here or by a colleague): lists and the panel follow.
  function updateVisitor(v) {
    for (const c of conversations.values()) if (c.visitor_id === v.id) c.visitor_name = v.name;
    renderList();
    const c = conversations.get(current);
    if (c && c.visitor_id === v.id) {
      threadTitle.textContent = v.name;
      for (const e of threadMessages.querySelectorAll('.tmsg.theirs .meta-text')) e.textContent = v.name;
    }
    if (panelVisitor === v.id && panelData) { Object.assign(panelData, v); renderIdentity(panelData); }
  }

  // Editing names and contact details.
  const form = document.getElementById('vp-form');
  const editBtn = document.getElementById('vp-edit');
  const formError = document.getElementById('vp-form-error');
  function closeEditor() { form.hidden = true; editBtn.setAttribute('aria-expanded', 'false'); formError.hidden = true; }
  editBtn.addEventListener('click', () => {
    if (!form.hidden) { closeEditor(); return; }
    for (const name of ['name', 'real_name', 'email', 'phone']) form.elements[name].value = (panelData && panelData[name]) || '';
    form.hidden = false;
    editBtn.setAttribute('aria-expanded', 'true');
    form.elements.name.focus();
  });
  document.getElementById('vp-cancel').addEventListener('click', closeEditor);
  form.addEventListener('keydown', (e) => { if (e.key === 'Escape') { closeEditor(); editBtn.focus(); } });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = {};
    for (const name of ['name', 'real_name', 'email', 'phone']) body[name] = form.elements[name].value;
    try {
      updateVisitor(await api('PATCH', visitorPath(), body));
      closeEditor();
    } catch (err) {
      formError.textContent = Object.entries(err.fields).map(([f, m]) => `${form.elements[f] ? form.elements[f].parentElement.firstChild.textContent.trim() : f}: ${m}`).join(' ') || err.message;
      formError.hidden = false;
    }
  });

  // Tags, with the merchant's existing tags as suggestions.
  const tagInput = document.getElementById('vp-tag');
  async function loadTagOptions() {
    const res = await fetch('/api/v1/tags');
    if (!res.ok) return;
    const { tags } = await res.json();
    document.getElementById('vp-tag-options').replaceChildren(...tags.map((t) => { const o = el('option'); o.value = t.name; return o; }));
  }
  tagInput.addEventListener('focus', loadTagOptions, { once: true });
  document.getElementById('vp-tag-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = tagInput.value.trim();
    if (!name || !panelVisitor) return;
    try { updateVisitor(await api('POST', `${visitorPath()}/tags`, { name })); tagInput.value = ''; } catch (err) { say(Object.values(err.fields)[0] || err.message); }
  });

  // Notes for the team.
  const noteInput = document.getElementById('vp-note');
  document.getElementById('vp-note-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = noteInput.value.trim();
    if (!body || !panelVisitor) return;
    try { document.getElementById('vp-notes').prepend(noteItem(await api('POST', `${visitorPath()}/notes`, { body }))); noteInput.value = ''; } catch (err) { say(err.message); }
  });
  noteInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); e.target.form.requestSubmit(); }
  });

  // Blocking and clearing.
  document.getElementById('vp-block').addEventListener('click', async () => {
    if (!panelVisitor || !confirm(pd.tConfirmBlock)) return;
    try { await api('POST', '/api/v1/blacklist', { visitor_id: panelVisitor }); say(t.tBlockDone); } catch (err) { say(err.message); }
  });
  document.getElementById('vp-block-ip').addEventListener('click', async () => {
    if (!panelData || !panelData.ip || !confirm(`${t.tConfirmBlockIp}\n${panelData.ip}`)) return;
    try { await api('POST', '/api/v1/blacklist', { ip: panelData.ip }); say(t.tBlockDone); } catch (err) { say(err.message); }
  });
  const clearBtn = document.getElementById('vp-clear');
  if (clearBtn) clearBtn.addEventListener('click', async () => {
    if (!panelVisitor || !confirm(pd.tConfirmClear)) return;
    try { await api('DELETE', `${visitorPath()}/messages`); say(t.tCleared); } catch (err) { say(err.message); }
  });

  function showPage() {
    const c = conversations.get(current);
    const page = c && lastPage.get(c.visitor_id);
    threadPage.hidden = !page;
    if (page) {
      threadPage.href = page.url;
      threadPage.textContent = `${threadPage.dataset.label} ${page.title || page.url}`;
    }
  }
  const threadMessages = document.getElementById('thread-messages');
  const composer = document.getElementById('thread-composer');
  const reply = document.getElementById('reply');
  const closeBtn = document.getElementById('close-conversation');
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  const conversations = new Map(); // id -> conversation
  const unread = new Map();
  const online = new Set();        // visitor public ids
  const seen = new Set();
  let current = null;

  const uuid = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`);
  const { el, timeEl, markDays, markDay, since } = window.KefuDom;

  // Lists: Waiting (nobody has it), Mine, All, each by status (open, pending, snoozed,
  // resolved, any); a search over names and last messages.
  const me = Number(t.agentId);
  let view = 'all';
  const search = document.getElementById('inbox-search');
  const filter = document.getElementById('inbox-filter');
  const inView = {
    waiting: (c) => c.agent_id == null,
    mine: (c) => c.agent_id === me,
    all: () => true,
    mentions: (c) => mentioned.has(c.id),
  };
  // Conversations with a note that @mentions this agent (the Mentions tab).
  const mentioned = new Set();
  const byStatus = {
    open: (c) => c.status === 'queued' || c.status === 'open',
    pending: (c) => c.status === 'pending',
    snoozed: (c) => c.status === 'snoozed',
    closed: (c) => c.status === 'closed',
    any: () => true,
  };
  const shown = (c) => inView[view](c) && (view === 'mentions' || byStatus[filter.value](c));
  filter.addEventListener('change', () => renderList());
  // A conversation's state in words, where it matters (not for a plain open one).
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => values[k] ?? '');
  function stateText(c) {
    switch (c.status) {
      case 'queued': return t.tQueued;
      case 'pending': return t.tStatePending;
      case 'snoozed': return c.snoozed_until ? fill(t.tStateSnoozedUntil, { time: fmtTime(c.snoozed_until) }) : t.tStateSnoozed;
      case 'closed': return t.tClosed;
      default: return '';
    }
  }
  for (const tab of document.querySelectorAll('.inbox-tab')) {
    tab.addEventListener('click', () => {
      view = tab.dataset.view;
      for (const other of document.querySelectorAll('.inbox-tab')) other.setAttribute('aria-selected', String(other === tab));
      renderList();
    });
  }
  search.addEventListener('input', () => { renderList(); searchHistory(); });

  // The whole history (GET /api/v1/search): words said in any conversation, resolved ones
  // too, and visitors by name, contact, tag or note, shown under the list with the words
  // highlighted; a message opens its conversation at that message.
  const results = document.getElementById('search-results');
  const rd = results.dataset;
  let searchTimer = null;
  let searchSeq = 0;
  function searchHistory() {
    clearTimeout(searchTimer);
    const q = search.value.trim();
    if (!q) { results.hidden = true; results.replaceChildren(); return; }
    searchTimer = setTimeout(async () => {
      const seq = ++searchSeq;
      const res = await fetch(`/api/v1/search?q=${encodeURIComponent(q)}`);
      if (seq !== searchSeq || !res.ok) { if (res.status === 422) results.hidden = true; return; }
      showResults(await res.json());
    }, 250);
  }
  function marked(text, words) {
    const frag = document.createDocumentFragment();
    const escaped = words.filter(Boolean).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    if (!escaped.length) { frag.append(text); return frag; }
    const re = new RegExp(`(${escaped.join('|')})`, 'giu');
    text.split(re).forEach((part, i) => frag.append(i % 2 ? el('mark', '', part) : part));
    return frag;
  }
  // Around the first word found: enough to read it in its sentence.
  function excerpt(body, words) {
    const lower = body.toLowerCase();
    const at = Math.min(...words.map((w) => lower.indexOf(w)).filter((i) => i >= 0), body.length);
    const start = Math.max(0, at - 30);
    return (start > 0 ? '…' : '') + body.slice(start, start + 120) + (start + 120 < body.length ? '…' : '');
  }
  // One found thing: a heading line (a name, maybe a time) and a line of text under it.
  function resultItem(head, text, onClick) {
    const b = el('button', 'search-hit');
    b.type = 'button';
    b.append(head, text);
    if (onClick) b.addEventListener('click', onClick); else b.disabled = true;
    const li = el('li');
    li.append(b);
    return li;
  }
  function resultGroup(title, items) {
    if (!items.length) return;
    const ul = el('ul', 'search-list');
    ul.append(...items);
    results.append(el('h4', '', title), ul);
  }
  function showResults(found) {
    results.replaceChildren();
    results.hidden = false;
    if (!found.messages.length && !found.visitors.length) { results.append(el('p', 'list-empty muted', rd.tNone)); return; }
    resultGroup(rd.tMessages, found.messages.map((h) => {
      const head = el('span', 'search-hit-head');
      const time = timeEl(h.created_at, 'conversation-time');
      time.textContent = since(h.created_at);
      head.append(el('strong', 'name-text', h.visitor_name), time);
      const text = el('span', 'search-hit-text');
      text.append(marked(excerpt(h.body, found.words), found.words));
      return resultItem(head, text, () => openAt(h.conversation_id, h.message_id));
    }));
    resultGroup(rd.tVisitors, found.visitors.map((v) => {
      const head = el('span', 'search-hit-head');
      const name = el('strong', 'name-text');
      name.append(marked(v.name, [search.value.trim().toLowerCase()]));
      head.append(name);
      const why = v.matched === 'tag' ? rd.tMatchedTag : v.matched === 'note' ? rd.tMatchedNote : (v.email || v.phone || '');
      const open = v.conversation_id ? () => openAt(v.conversation_id, null) : null;
      return resultItem(head, el('span', 'search-hit-text muted', why), open);
    }));
  }
  // Opens conversation `id` (fetched when it is not listed) at message `messageId`: older
  // pages load until it is there, then it is scrolled to and marked.
  async function openAt(id, messageId) {
    if (!conversations.has(id)) {
      const res = await fetch(`/api/v1/conversations/${id}`);
      if (!res.ok) return;
      conversations.set(id, await res.json());
    }
    await open(id);
    if (!messageId) return;
    const find = () => threadMessages.querySelector(`[data-id="${messageId}"]`);
    for (let i = 0; i < 40 && !find() && olderBefore && current === id; i++) await loadOlder();
    const node = find();
    if (!node) return;
    node.scrollIntoView({ block: 'center' });
    node.classList.add('is-found');
    setTimeout(() => node.classList.remove('is-found'), 2400);
  }

  // Alerts: a short tone, a desktop notification and a blinking title while the tab is
  // hidden. The choice is remembered in this browser.
  const alertsBtn = document.getElementById('alerts');
  let alertsOn = localStorage.getItem('kefu:alerts') !== 'off';
  let blink = null;
  const baseTitle = document.title;
  function showAlertsState() {
    alertsBtn.setAttribute('aria-pressed', String(alertsOn));
    alertsBtn.textContent = alertsOn ? t.tAlertsOn : t.tAlertsOff;
  }
  alertsBtn.addEventListener('click', () => {
    alertsOn = !alertsOn;
    localStorage.setItem('kefu:alerts', alertsOn ? 'on' : 'off');
    showAlertsState();
    if (alertsOn && 'Notification' in window && Notification.permission === 'default') Notification.requestPermission();
  });
  showAlertsState();
  let audio = null;
  function tone() {
    try {
      audio = audio || new AudioContext();
      if (audio.state !== 'running') return; // browsers allow sound only after a user gesture
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.001, audio.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.2, audio.currentTime + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.35);
      osc.connect(gain).connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.4);
    } catch (_) { /* no audio here */ }
  }
  document.addEventListener('pointerdown', () => { try { audio = audio || new AudioContext(); audio.resume(); } catch (_) { /* none */ } }, { once: true });
  const totalUnread = () => [...unread.values()].reduce((a, b) => a + b, 0);
  function alertAgent(title, body) {
    if (!alertsOn) return;
    tone();
    if (document.hidden) {
      if ('Notification' in window && Notification.permission === 'granted') {
        const n = new Notification(title, { body, tag: 'kefu' });
        n.onclick = () => { window.focus(); n.close(); };
      }
      if (!blink) {
        let on = false;
        blink = setInterval(() => { on = !on; document.title = on ? `(${totalUnread()}) ${title}` : baseTitle; }, 1200);
      }
    }
  }
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && blink) { clearInterval(blink); blink = null; document.title = baseTitle; }
  });

  // The agent's own status: visitors see the team as available only while someone is online.
  // Narrow screens (up to 1280 px, phones too) open the visitor panel as a drawer.
  const panelToggle = document.getElementById('panel-toggle');
  function setPanelOpen(open) {
    inbox.classList.toggle('is-panel-open', open);
    panelToggle.setAttribute('aria-expanded', String(open));
    if (open) document.getElementById('panel-close').focus();
  }
  panelToggle.addEventListener('click', () => setPanelOpen(!inbox.classList.contains('is-panel-open')));
  document.getElementById('panel-close').addEventListener('click', () => { setPanelOpen(false); panelToggle.focus(); });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && inbox.classList.contains('is-panel-open')) { setPanelOpen(false); panelToggle.focus(); }
  });

  document.getElementById('thread-back').addEventListener('click', () => {
    setPanelOpen(false);
    inbox.classList.remove('is-reading');
    current = null;
    renderList();
  });
  // Someone is at this tab: at most once a minute, keyboard, mouse or touch tell the server,
  // which ends an automatic away (the merchant's auto_away_minutes of idleness start one).
  let lastActive = 0;
  function active() {
    const now = Date.now();
    if (now - lastActive < 60000 || !sock.open()) return;
    lastActive = now;
    sock.send({ type: 'active' });
  }
  for (const type of ['keydown', 'pointerdown', 'pointermove', 'wheel', 'touchstart']) document.addEventListener(type, active, { passive: true });
  document.addEventListener('visibilitychange', () => { if (!document.hidden) active(); });
  const myStatus = document.getElementById('my-status');
  myStatus.addEventListener('change', () => {
    sock.send({ type: 'status', status: myStatus.value });
  });

  function renderList() {
    listEl.replaceChildren();
    const all = [...conversations.values()];
    document.getElementById('count-waiting').textContent = all.filter((c) => c.status === 'queued').length || '';
    document.getElementById('count-mine').textContent = all.filter((c) => c.agent_id === me && c.status === 'open').length || '';
    document.getElementById('count-mentions').textContent = mentioned.size || '';
    const q = search.value.trim().toLowerCase();
    const items = all
      .filter(shown)
      .filter((c) => !q || `${c.visitor_name} ${c.last_message || ''}`.toLowerCase().includes(q))
      .sort((a, b) => b.id - a.id);
    // The welcome state while the merchant has no conversation at all; a plain line when a
    // list or a search is empty.
    emptyEl.hidden = all.length > 0;
    const listEmpty = document.getElementById('list-empty');
    listEmpty.hidden = all.length === 0 || items.length > 0;
    listEmpty.textContent = q ? listEmpty.dataset.tNoMatch : listEmpty.dataset.tEmpty;
    for (const c of items) {
      const li = el('li');
      const button = el('button', `conversation${current === c.id ? ' is-active' : ''}`);
      button.type = 'button';
      const name = el('span', 'conversation-name');
      name.append(el('span', 'name-text', c.visitor_name));
      if (online.has(c.visitor_id)) name.append(el('span', 'online-dot', ''));
      if (c.left_offline_at) name.append(el('span', 'left-offline', t.tLeftOffline));
      // The last message says most; the state where it matters.
      const meta = el('span', 'conversation-meta');
      const state = stateText(c);
      if (state) meta.append(el('span', `state is-${c.status}`, state), state && (c.last_message || c.agent_name) ? ' · ' : '');
      meta.append(c.last_message || c.agent_name || '');
      const when = c.last_message_at || c.created_at;
      const time = timeEl(when, 'conversation-time');
      time.textContent = since(when);
      button.append(name, time, meta);
      const n = unread.get(c.id) || 0;
      if (n) button.append(el('span', 'unread', String(n)));
      button.addEventListener('click', () => open(c.id));
      li.append(button);
      listEl.append(li);
    }
    if (listBefore) listEl.append(listSentinel);
  }

  // "3 min ago" grows older while the list stays.
  setInterval(() => {
    for (const e of listEl.querySelectorAll('.conversation-time')) e.textContent = since(e.dateTime);
  }, 60_000);

  // A status change, in the reader's language (the stored body is English).
  function activityText(m) {
    const p = m.payload || {};
    const who = m.sender.name || '';
    if (p.status === 'closed') return p.by === 'auto' ? t.tActAutoResolved : fill(t.tActResolved, { who });
    if (p.status === 'pending') return fill(t.tActPending, { who });
    if (p.status === 'snoozed') return p.snoozed_until ? fill(t.tActSnoozed, { who, time: fmtTime(p.snoozed_until) }) : fill(t.tActSnoozedReply, { who });
    if (p.by === 'visitor') return t.tActVisitor;
    if (p.by === 'auto') return t.tActWoke;
    return fill(t.tActReopened, { who });
  }

  function bubble(m) {
    if (m.kind === 'activity') {
      const row = el('div', 'tmsg activity');
      row.dataset.at = m.created_at;
      const line = el('div', 'bubble', activityText(m));
      line.append(' · ', timeEl(m.created_at));
      row.append(line);
      return row;
    }
    const row = el('div', `tmsg ${m.sender.kind === 'visitor' ? 'theirs' : 'mine'} ${m.kind === 'notice' ? 'notice' : ''} ${m.kind === 'note' ? 'note-msg' : ''}`);
    if (m.kind === 'note') {
      row.append(el('div', 'note-label', t.tNoteLabel));
      if (((m.payload || {}).mentions || []).includes(me)) row.classList.add('mentions-me');
    }
    // Pending replies have no server time yet: now, as the agent sees it.
    row.dataset.at = m.created_at || new Date().toISOString();
    if (m.id) row.dataset.id = m.id;
    row.append(window.KefuContent.fill(el('div', 'bubble'), m));
    const c = conversations.get(m.conversation_id);
    // A visitor is shown by the name they have now (a pre-chat answer, an agent's edit),
    // not the one their connection opened with.
    const who = (m.sender.kind === 'visitor' && c && c.visitor_name) || m.sender.name || '';
    const meta = el('div', 'meta');
    if (who) meta.append(el('span', 'meta-text', who));
    meta.append(timeEl(row.dataset.at));
    row.append(meta);
    return row;
  }

  // History pages: the newest first, older ones as the agent scrolls up.
  let olderBefore = null;   // cursor of the next older page of the open thread
  let loadingOlder = false;
  const PAGE = 50;
  async function fetchPage(id, before) {
    const res = await fetch(`/api/v1/conversations/${id}/messages?limit=${PAGE}${before ? `&before=${before}` : ''}`);
    return res.ok ? res.json() : null;
  }
  function historyStart() { return el('p', 'thread-start muted', t.tHistoryStart); }
  async function loadOlder() {
    if (!olderBefore || loadingOlder || current === null) return;
    loadingOlder = true;
    const id = current;
    const page = await fetchPage(id, olderBefore);
    loadingOlder = false;
    if (!page || id !== current) return;
    const height = threadMessages.scrollHeight;
    const top = threadMessages.firstChild;
    for (const m of page.messages) { if (!seen.has(m.id)) seen.add(m.id); threadMessages.insertBefore(bubble(m), top); }
    olderBefore = page.next_before;
    if (!olderBefore) threadMessages.prepend(historyStart());
    markDays(threadMessages);
    threadMessages.scrollTop += threadMessages.scrollHeight - height; // keep the reader's place
  }
  threadMessages.addEventListener('scroll', () => { if (threadMessages.scrollTop < 120) loadOlder(); });

  async function open(id) {
    current = id;
    inbox.classList.add('is-reading'); // phones: the chat replaces the list
    unread.delete(id);
    const c = conversations.get(id);
    threadTitle.textContent = c ? c.visitor_name : '';
    showRating(c);
    showState(c);
    showPage();
    showTyping(null);
    if (c) showVisitor(c.visitor_id);
    thread.hidden = false;
    threadMessages.replaceChildren();
    olderBefore = null;
    const page = await fetchPage(id, null);
    if (page && id === current) {
      // What the socket delivered while the page loaded stays after it, unless the page
      // has it too; a message it replays later is not shown twice (seen).
      const paged = new Set(page.messages.map((m) => String(m.id)));
      const arrived = [...threadMessages.querySelectorAll(':scope > .tmsg')].filter((n) => !paged.has(n.dataset.id));
      threadMessages.replaceChildren();
      if (!page.next_before) threadMessages.append(historyStart());
      for (const m of page.messages) { seen.add(m.id); threadMessages.append(bubble(m)); }
      threadMessages.append(...arrived);
      markDays(threadMessages);
      olderBefore = page.next_before;
      threadMessages.scrollTop = threadMessages.scrollHeight;
      const last = page.messages[page.messages.length - 1];
      if (last) fetch(`/api/v1/conversations/${id}/read`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: JSON.stringify({ up_to: last.id }) });
    }
    renderList();
    reply.focus();
  }

  // The list holds the newest 100 conversations; older pages load as the end of the list
  // comes into view.
  let listBefore = null;
  let listLoading = false;
  const listSentinel = el('li', 'list-sentinel');
  listSentinel.setAttribute('aria-hidden', 'true');
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadList(listBefore);
  }, { rootMargin: '200px' }).observe(listSentinel);
  async function loadList(before) {
    if (listLoading || before === null) return;
    listLoading = true;
    try {
      const res = await fetch(`/api/v1/conversations?view=all&status=any&limit=100${before ? `&before=${before}` : ''}`);
      if (!res.ok) return;
      const page = await res.json();
      for (const c of page.conversations) {
        if (before && conversations.has(c.id)) continue; // the live copy is newer
        conversations.set(c.id, c);
        if (c.unread) unread.set(c.id, c.unread);
      }
      listBefore = page.next_before || null;
    } finally {
      listLoading = false;
    }
    renderList();
  }

  // A message in one line, for lists.
  function preview(m) {
    const p = m.payload || {};
    if (m.kind === 'image') return `📷 ${(p.attachment && p.attachment.name) || ''}`.trim();
    if (m.kind === 'file') return `📎 ${(p.attachment && p.attachment.name) || ''}`.trim();
    if (m.kind === 'product') return `🛒 ${(p.product && p.product.title) || ''}`.trim();
    if (m.kind === 'card') return `🗂 ${(p.card && p.card.title) || m.body || ''}`.trim();
    return m.body || '';
  }

  function onMessage(m) {
    if (seen.has(m.id)) return;
    seen.add(m.id);
    const mine = sock.settle(m.client_msg_id);
    if (mine) {
      mine.data.classList.remove('is-pending');
      return;
    }
    if (m.conversation_id === current) {
      if (m.sender.kind === 'visitor') showTyping(null);
      const node = bubble(m);
      threadMessages.append(node);
      markDay(node);
      threadMessages.scrollTop = threadMessages.scrollHeight;
    } else if (m.sender.kind === 'visitor') {
      // The socket replays what came before the page too: what the list's count already
      // holds (up to its last message) is not counted again.
      const listed = conversations.get(m.conversation_id);
      const counted = listed && listed.last_message_at && new Date(m.created_at) <= new Date(listed.last_message_at);
      if (!counted) unread.set(m.conversation_id, (unread.get(m.conversation_id) || 0) + 1);
      if (!listed) loadList();
    }
    // The list previews what was said (as the server's list does), not status lines.
    const c = conversations.get(m.conversation_id);
    if (c && m.kind !== 'activity' && m.kind !== 'note') { c.last_message = preview(m); c.last_message_at = m.created_at; }
    renderList();
    if (m.kind === 'note' && ((m.payload || {}).mentions || []).includes(me)) {
      mentioned.add(m.conversation_id);
      renderList();
      const who = m.sender.name || '';
      toast(fill(t.tMentionedYou, { name: who }), () => open(m.conversation_id));
      alertAgent(fill(t.tMentionedYou, { name: who }), preview(m).slice(0, 140));
    }
    if (m.sender.kind === 'visitor' && (m.conversation_id !== current || document.hidden)) {
      const from = (c && c.visitor_name) || m.sender.name || '';
      alertAgent(t.tNewMessage, `${from}: ${preview(m)}`.slice(0, 140));
    }
  }

  // The visitor's CSAT rating of a closed conversation, beside its title.
  const threadRating = document.getElementById('thread-rating');
  function showRating(c) {
    const score = c && c.rating;
    threadRating.hidden = !score;
    if (!score) return;
    threadRating.textContent = `${'★'.repeat(score)}${'☆'.repeat(5 - score)}`;
    threadRating.title = c.rating_comment || '';
    threadRating.setAttribute('aria-label', `${score}/5${c.rating_comment ? ` · ${c.rating_comment}` : ''}`);
  }
  function handle(f) {
    switch (f.type) {
      case 'message': onMessage(f); break;
      case 'rating': {
        const c = conversations.get(f.rating.conversation_id);
        if (c) {
          c.rating = f.rating.score;
          c.rating_comment = f.rating.comment;
          if (c.id === current) showRating(c);
          toast(`${c.visitor_name}: ${'★'.repeat(f.rating.score)}${f.rating.comment ? ` “${f.rating.comment.slice(0, 80)}”` : ''}`, () => open(c.id));
        }
        break;
      }
      case 'conversation':
        if (f.event === 'created' && !conversations.has(f.conversation.id)) {
          alertAgent(t.tNewVisitor, f.conversation.visitor_name);
          toast(`${t.tNewVisitorToast} ${f.conversation.visitor_name}`, () => open(f.conversation.id));
        }
        {
          const known = conversations.get(f.conversation.id) || {};
          delete known.snoozed_until; // absent means none
          conversations.set(f.conversation.id, Object.assign(known, f.conversation));
        }
        if (f.conversation.id === current) showState(conversations.get(current));
        renderList();
        break;
      case 'typing':
        if (f.from === 'visitor' && f.conversation_id === current) showTyping(f.preview);
        break;
      case 'visitor':
        updateVisitor(f.visitor);
        // New pre-chat answers: the panel shows them if it is this visitor's.
        if (f.event === 'prechat' && panelVisitor === f.visitor.id) showVisitor(f.visitor.id);
        if (f.event === 'history_cleared') {
          const c = conversations.get(current);
          if (c && c.visitor_id === f.visitor.id) { threadMessages.replaceChildren(historyStart()); olderBefore = null; }
          for (const conv of conversations.values()) if (conv.visitor_id === f.visitor.id) conv.last_message = '';
          renderList();
        }
        break;
      case 'presence':
        if (f.of === 'visitor') { if (f.online) online.add(f.visitor_id); else online.delete(f.visitor_id); renderList(); }
        if (f.of === 'agent') { agentStatus.set(f.agent_id, f.status); if (f.agent_id === me) myStatus.value = f.status; }
        if (f.of === 'page') {
          lastPage.set(f.visitor_id, f);
          showPage();
          if (f.visitor_id === panelVisitor) document.getElementById('vp-pages').prepend(pageItem(f));
        }
        break;
      case 'ack': {
        const p = sock.settle(f.client_msg_id);
        if (p) { p.data.classList.remove('is-pending'); seen.add(f.id); }
        break;
      }
      case 'announcement':
        if (f.event === 'withdrawn') { const b = document.querySelector(`[data-announcement="${f.announcement.id}"]`); if (b) b.remove(); }
        else showAnnouncement(f.announcement);
        break;
      case 'notice':
        if (f.code === 'tenant_suspended') { statusEl.textContent = f.message; }
        // The merchant's billing state changed (read-only, past due, active again): the
        // page shows it after a reload, unless the agent is typing a reply.
        if (f.code === 'billing' && !reply.value.trim()) location.reload();
        break;
      default: break;
    }
  }

  // Set while the page unloads, so a socket closed by that (or by the logout it follows)
  // does not send the browser somewhere else.
  let leaving = false;
  window.addEventListener('pagehide', () => { leaving = true; });
  window.addEventListener('beforeunload', () => { leaving = true; });
  document.addEventListener('submit', (e) => { if (e.target.action && new URL(e.target.action, location.href).pathname === '/logout') leaving = true; }, true);

  // The socket (static/js/socket.js): replays from the last message seen, resends what was
  // not acknowledged, reconnects with backoff.
  const sock = window.KefuSocket({
    url: (since) => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/agent?since=${since}`,
    onFrame: handle,
    onOpen: () => { statusEl.textContent = ''; },
    onClose: (ev) => {
      if (leaving) return false; // navigating away (logging out, say): the page is going anyway
      // The session ended (signed out, here or elsewhere; a new password or role; access turned
      // off): sign in again.
      if (ev.code === 4003) { location.href = '/login?next=' + encodeURIComponent(location.pathname); return false; }
      if (ev.code === 4004) { location.reload(); return false; } // merchant suspended: the page says so
      statusEl.textContent = t.tReconnecting;
      return true;
    },
  });

  // Shows a reply as sending and sends it; it is resent on reconnect until acknowledged.
  function sendFrame(frame, shown) {
    const c = conversations.get(frame.conversation_id);
    // The list previews what was said to the visitor, not the team's notes.
    if (c && shown.kind !== 'note') { c.last_message = preview(shown); renderList(); }
    const node = bubble(Object.assign({ sender: { kind: 'agent', name: '' } }, shown));
    node.classList.add('is-pending');
    threadMessages.append(node);
    markDay(node);
    threadMessages.scrollTop = threadMessages.scrollHeight;
    sock.sendTracked(frame, node);
  }

  composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = reply.value.trim();
    if (!text || !current) return;
    reply.value = '';
    const kind = noteMode ? 'note' : 'text';
    sendFrame({ type: 'send', client_msg_id: uuid(), conversation_id: current, kind, body: text }, { kind, body: text });
    mentionList.hidden = true;
  });

  // Reply or private note: a note goes to the team only; "@" offers the colleagues to mention.
  let noteMode = false;
  const modeReply = document.getElementById('mode-reply');
  const modeNote = document.getElementById('mode-note');
  const mentionList = document.getElementById('mention-list');
  let team = null;
  function setMode(note) {
    noteMode = note;
    composer.classList.toggle('is-note', note);
    modeReply.setAttribute('aria-selected', String(!note));
    modeNote.setAttribute('aria-selected', String(note));
    reply.placeholder = note ? composer.dataset.tNote : composer.dataset.tReply;
    if (!note) mentionList.hidden = true;
    reply.focus();
  }
  modeReply.addEventListener('click', () => setMode(false));
  modeNote.addEventListener('click', () => setMode(true));
  async function colleagues() {
    if (!team) {
      const res = await fetch('/api/v1/agents');
      team = res.ok ? (await res.json()).agents.filter((a) => !a.disabled && a.id !== me) : [];
    }
    return team;
  }
  function pickMention(name) {
    const caret = reply.selectionStart;
    const before = reply.value.slice(0, caret).replace(/@[^\s@]*$/, `@${name} `);
    reply.value = before + reply.value.slice(caret);
    reply.selectionStart = reply.selectionEnd = before.length;
    mentionList.hidden = true;
    reply.focus();
  }
  reply.addEventListener('input', async () => {
    const typed = noteMode && reply.value.slice(0, reply.selectionStart).match(/@([^\s@]*)$/);
    if (!typed) { mentionList.hidden = true; return; }
    const q = typed[1].toLowerCase();
    const matches = (await colleagues()).filter((a) => a.display_name.toLowerCase().includes(q)).slice(0, 6);
    mentionList.replaceChildren(...matches.map((a, i) => {
      const li = el('li', 'mention-option', a.display_name);
      li.setAttribute('role', 'option');
      li.setAttribute('aria-selected', String(i === 0));
      li.addEventListener('mousedown', (e) => { e.preventDefault(); pickMention(a.display_name); });
      return li;
    }));
    mentionList.hidden = matches.length === 0;
  });
  reply.addEventListener('keydown', (e) => {
    if (mentionList.hidden) return;
    const options = [...mentionList.children];
    const at = options.findIndex((o) => o.getAttribute('aria-selected') === 'true');
    const select = (i) => options.forEach((o, j) => o.setAttribute('aria-selected', String(j === i)));
    if (e.key === 'ArrowDown') { e.preventDefault(); select((at + 1) % options.length); }
    else if (e.key === 'ArrowUp') { e.preventDefault(); select((at - 1 + options.length) % options.length); }
    else if (e.key === 'Enter' || e.key === 'Tab') { e.preventDefault(); e.stopImmediatePropagation(); pickMention(options[Math.max(at, 0)].textContent); }
    else if (e.key === 'Escape') { mentionList.hidden = true; }
  });

  async function loadMentions() {
    const res = await fetch('/api/v1/mentions?limit=100');
    if (!res.ok) return;
    for (const x of (await res.json()).mentions) {
      mentioned.add(x.conversation_id);
      if (!conversations.has(x.conversation_id)) {
        const one = await fetch(`/api/v1/conversations/${x.conversation_id}`);
        if (one.ok) conversations.set(x.conversation_id, await one.json());
      }
    }
    renderList();
  }

  // Attachments: upload (the session cookie and the CSRF header), then send by id.
  const fileInput = document.getElementById('agent-file');
  document.getElementById('agent-attach').addEventListener('click', () => { if (current) fileInput.click(); });
  fileInput.addEventListener('change', async () => {
    const file = fileInput.files[0];
    fileInput.value = '';
    if (!file || !current) return;
    const conversation = current;
    let data;
    try { data = await upload(file); } catch (err) { statusEl.textContent = err.message; return; }
    statusEl.textContent = '';
    const kind = data.kind === 'image' ? 'image' : 'file';
    sendFrame({ type: 'send', client_msg_id: uuid(), conversation_id: conversation, kind, attachment: { id: data.id } },
      { kind, body: '', payload: { attachment: data } });
  });
  reply.addEventListener('keydown', (e) => {
    if (quickKeys(e)) return;
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); composer.requestSubmit(); }
  });
  reply.addEventListener('input', () => {
    // A private note is not typing to the visitor.
    if (current && !noteMode) sock.send({ type: 'typing', conversation_id: current });
  });
  // Statuses: resolve, reopen, and the menu's pending and snoozes. The socket's
  // `conversation` frame updates the list and the header for every tab.
  const reopenBtn = document.getElementById('reopen-conversation');
  const statusMenu = document.getElementById('status-menu');
  const threadState = document.getElementById('thread-state');
  function showState(c) {
    const closed = !c || c.status === 'closed';
    closeBtn.hidden = closed;
    reopenBtn.hidden = !c || !closed;
    transferMenu.hidden = closed;
    statusMenu.hidden = closed;
    const text = c && c.status !== 'queued' ? stateText(c) : '';
    threadState.hidden = !text;
    threadState.textContent = text;
    threadState.className = `thread-state is-${c ? c.status : ''}`;
    for (const b of statusMenu.querySelectorAll('[data-status="pending"]')) b.disabled = !!c && c.status === 'pending';
  }
  async function setStatus(status, snoozedUntil) {
    if (!current) return;
    const body = { status };
    if (snoozedUntil) body.snoozed_until = snoozedUntil.toISOString();
    try { await api('POST', `/api/v1/conversations/${current}/status`, body); } catch (err) { toast(err.message); }
  }
  // 9:00 local time, `days` from today.
  function nineAm(days) { const d = new Date(); d.setDate(d.getDate() + days); d.setHours(9, 0, 0, 0); return d; }
  const snoozeUntil = {
    hour: () => new Date(Date.now() + 3600e3),
    tomorrow: () => nineAm(1),
    monday: () => nineAm(((8 - new Date().getDay()) % 7) || 7),
    reply: () => null,
  };
  for (const b of statusMenu.querySelectorAll('[data-status]')) {
    b.addEventListener('click', () => {
      statusMenu.open = false;
      setStatus(b.dataset.status, b.dataset.snooze ? snoozeUntil[b.dataset.snooze]() : null);
    });
  }
  statusMenu.addEventListener('toggle', () => { if (statusMenu.open) statusMenu.querySelector('button:not(:disabled)').focus(); });
  statusMenu.addEventListener('keydown', (e) => { if (e.key === 'Escape') { statusMenu.open = false; statusMenu.querySelector('summary').focus(); } });
  closeBtn.addEventListener('click', () => setStatus('resolved'));
  reopenBtn.addEventListener('click', () => setStatus('open'));

  // What the visitor is typing (a preview only where the merchant enabled it).
  const typingEl = document.getElementById('thread-typing');
  let typingTimer = null;
  function showTyping(preview) {
    clearTimeout(typingTimer);
    if (preview === null) { typingEl.hidden = true; return; }
    const c = conversations.get(current);
    typingEl.textContent = `${c ? c.visitor_name : ''} ${t.tTyping}${preview ? `: ${preview}` : '…'}`;
    typingEl.hidden = false;
    typingTimer = setTimeout(() => { typingEl.hidden = true; }, 5000);
  }

  window.KefuContent.emojiPicker(document.getElementById('agent-emoji'), document.getElementById('agent-emoji-panel'), reply);

  // Quick replies: the ⚡ button or `/` at the start of the composer opens a searchable
  // list; arrows move, Enter inserts, Escape closes.
  const quickBtn = document.getElementById('agent-quick');
  const quickPanel = document.getElementById('quick-panel');
  const quickSearch = document.getElementById('quick-search');
  const quickList = document.getElementById('quick-list');
  let quickReplies = null;
  let quickActive = 0;
  let quickBySlash = false;
  async function loadQuickReplies() {
    const res = await fetch('/api/v1/quick_replies');
    quickReplies = res.ok ? (await res.json()).quick_replies : [];
  }
  function quickMatches() {
    const q = (quickBySlash ? reply.value.slice(1) : quickSearch.value).trim().toLowerCase();
    return (quickReplies || []).filter((r) => !q || `${r.group} ${r.title} ${r.body}`.toLowerCase().includes(q));
  }
  function renderQuick() {
    const items = quickMatches();
    quickActive = Math.min(quickActive, Math.max(items.length - 1, 0));
    document.getElementById('quick-empty').hidden = items.length > 0;
    quickList.replaceChildren(...items.map((r, i) => {
      const li = el('li', `quick-item${i === quickActive ? ' is-active' : ''}`);
      li.setAttribute('role', 'option');
      li.setAttribute('aria-selected', String(i === quickActive));
      li.id = `quick-${r.id}`;
      const head = el('div', 'quick-head');
      head.append(el('strong', '', r.title));
      if (r.group) head.append(el('span', 'quick-group', r.group));
      li.append(head, el('p', 'quick-body', r.body));
      li.addEventListener('mousedown', (e) => { e.preventDefault(); useQuick(r); });
      return li;
    }));
    const active = quickList.children[quickActive];
    if (active) { active.scrollIntoView({ block: 'nearest' }); (quickBySlash ? reply : quickSearch).setAttribute('aria-activedescendant', active.id); }
  }
  async function openQuick(bySlash) {
    quickBySlash = bySlash;
    quickActive = 0;
    quickPanel.hidden = false;
    quickBtn.setAttribute('aria-expanded', 'true');
    quickSearch.hidden = bySlash;
    if (quickReplies === null) await loadQuickReplies();
    renderQuick();
    if (!bySlash) { quickSearch.value = ''; quickSearch.focus(); }
  }
  function closeQuick() {
    quickPanel.hidden = true;
    quickBtn.setAttribute('aria-expanded', 'false');
    reply.removeAttribute('aria-activedescendant');
  }
  function useQuick(r) {
    if (quickBySlash) reply.value = r.body;
    else { const at = reply.selectionStart ?? reply.value.length; reply.setRangeText(r.body, at, reply.selectionEnd ?? at, 'end'); }
    closeQuick();
    reply.focus();
  }
  function quickKeys(e) {
    if (quickPanel.hidden) return false;
    const items = quickMatches();
    if (e.key === 'ArrowDown') { quickActive = Math.min(quickActive + 1, items.length - 1); renderQuick(); }
    else if (e.key === 'ArrowUp') { quickActive = Math.max(quickActive - 1, 0); renderQuick(); }
    else if (e.key === 'Enter' && !e.shiftKey) { if (items[quickActive]) useQuick(items[quickActive]); else closeQuick(); }
    else if (e.key === 'Escape') { closeQuick(); reply.focus(); }
    else return false;
    e.preventDefault();
    return true;
  }
  quickBtn.addEventListener('click', () => { if (quickPanel.hidden) { loadQuickReplies().then(() => openQuick(false)); } else closeQuick(); });
  quickSearch.addEventListener('input', () => { quickActive = 0; renderQuick(); });
  quickSearch.addEventListener('keydown', quickKeys);
  reply.addEventListener('input', () => {
    const slash = /^\/[^\n]*$/.test(reply.value);
    if (slash && (quickPanel.hidden || !quickBySlash)) openQuick(true);
    else if (slash) { quickActive = 0; renderQuick(); }
    else if (quickBySlash && !quickPanel.hidden) closeQuick();
  });

  // Transfer: the menu lists active colleagues with their status.
  const transferMenu = document.getElementById('transfer-menu');
  const agentStatus = new Map();
  transferMenu.addEventListener('toggle', async () => {
    if (!transferMenu.open) return;
    const list = document.getElementById('transfer-list');
    const res = await fetch('/api/v1/agents');
    if (!res.ok) return;
    const agents = (await res.json()).agents.filter((a) => !a.disabled && a.id !== me);
    if (!agents.length) { list.replaceChildren(el('li', 'muted menu-empty', t.tNoColleagues)); return; }
    list.replaceChildren(...agents.map((a) => {
      const status = agentStatus.get(a.id) || a.status;
      const li = el('li');
      const b = el('button', 'menu-item');
      b.type = 'button';
      b.dataset.agentId = a.id;
      b.append(el('span', `status-dot is-${status}`, ''), el('span', 'grow', a.display_name), el('span', 'muted', t[`tStatus${status[0].toUpperCase()}${status.slice(1)}`] || status));
      b.addEventListener('click', async () => {
        transferMenu.open = false;
        try {
          await api('POST', `/api/v1/conversations/${current}/transfer`, { agent_id: a.id });
          toast(`${t.tTransferred} ${a.display_name}`);
        } catch (err) { toast(err.message); }
      });
      li.append(b);
      return li;
    }));
    list.querySelector('button').focus();
  });
  transferMenu.addEventListener('keydown', (e) => { if (e.key === 'Escape') { transferMenu.open = false; transferMenu.querySelector('summary').focus(); } });

  // Announcements: shown until this person dismisses them (on every device); new ones arrive
  // live over the socket.
  function wireAnnouncement(banner) {
    banner.querySelector('.announcement-dismiss').addEventListener('click', () => {
      banner.remove();
      api('POST', `/api/v1/announcements/${banner.dataset.announcement}/dismiss`, undefined, { keepalive: true }).catch(() => {});
    });
  }
  function showAnnouncement(a) {
    const existing = document.querySelector(`[data-announcement="${a.id}"]`);
    const template = document.getElementById('announcement-template');
    const banner = existing || template.content.firstElementChild.cloneNode(true);
    banner.dataset.announcement = a.id;
    banner.querySelector('strong').textContent = a.title;
    banner.querySelector('p').textContent = a.body;
    if (!existing) {
      wireAnnouncement(banner);
      document.getElementById('inbox').before(banner);
      toast(`${t.tAnnouncement} ${a.title}`);
    }
  }
  for (const banner of document.querySelectorAll('[data-announcement]')) wireAnnouncement(banner);

  // `/app#c=<id>` (links in emails) opens that conversation, fetched if it is not listed.
  function openLinked() {
    const id = Number(new URLSearchParams(location.hash.slice(1)).get('c'));
    if (Number.isSafeInteger(id) && id > 0) openAt(id, null);
  }
  window.addEventListener('hashchange', openLinked);
  loadList().then(() => { sock.connect(); openLinked(); loadMentions(); });
})();
