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
  const fmtTime = (t) => new Date(t).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
  function setText(id, text) { document.getElementById(id).textContent = text || pd.tUnknown; }
  function setLink(id, url) {
    const dd = document.getElementById(id);
    dd.replaceChildren();
    if (!url) { dd.textContent = pd.tUnknown; return; }
    const a = el('a', 'vp-link', url.replace(/^https?:\/\//, ''));
    a.href = url; a.target = '_blank'; a.rel = 'noopener noreferrer';
    dd.append(a);
  }
  function pageItem(p) {
    const li = el('li');
    const a = el('a', 'vp-link', p.title || p.url);
    a.href = p.url; a.target = '_blank'; a.rel = 'noopener noreferrer'; a.title = p.url;
    li.append(a, el('time', 'muted', fmtTime(p.at)));
    return li;
  }
  async function showVisitor(publicId) {
    panelVisitor = publicId;
    const res = await fetch(`/api/v1/visitors/${encodeURIComponent(publicId)}`);
    if (!res.ok || panelVisitor !== publicId) return;
    const v = await res.json();
    panel.hidden = false;
    document.getElementById('vp-avatar').textContent = (v.name || '?').trim().charAt(0).toUpperCase();
    document.getElementById('vp-name').textContent = v.real_name ? `${v.name} (${v.real_name})` : v.name;
    document.getElementById('vp-id').textContent = v.id;
    setText('vp-location', [v.city, v.region, v.country].filter(Boolean).join(', '));
    setText('vp-device', [v.os, v.browser, v.device].filter(Boolean).join(' · '));
    setText('vp-ip', v.ip);
    setLink('vp-referrer', v.referrer);
    setLink('vp-landing', v.landing_url);
    setText('vp-seen', `${fmtTime(v.first_seen_at)} / ${fmtTime(v.last_seen_at)} · ${v.visit_count} ${pd.tVisits}`);
    const product = document.getElementById('vp-product');
    const p = v.extra && v.extra.visitorProduct;
    product.hidden = !(p && p.title);
    if (p && p.title) product.replaceChildren(window.KefuContent.fill(el('div', 'bubble'), { kind: 'product', payload: { product: p } }));
    document.getElementById('vp-pages').replaceChildren(...(v.pages || []).map(pageItem));
  }

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
  const pending = new Map();
  let lastId = 0;
  let current = null;
  let socket = null;
  let retry = 0;

  const uuid = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`);
  const el = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };

  // Lists: Waiting (the queue), Mine, All open, Closed; a search over names and last messages.
  const me = Number(t.agentId);
  let view = 'all';
  const search = document.getElementById('inbox-search');
  const inView = {
    waiting: (c) => c.status === 'queued',
    mine: (c) => c.status !== 'closed' && c.agent_id === me,
    all: (c) => c.status !== 'closed',
    closed: (c) => c.status === 'closed',
  };
  for (const tab of document.querySelectorAll('.inbox-tab')) {
    tab.addEventListener('click', () => {
      view = tab.dataset.view;
      for (const other of document.querySelectorAll('.inbox-tab')) other.setAttribute('aria-selected', String(other === tab));
      renderList();
    });
  }
  search.addEventListener('input', () => renderList());

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
  document.getElementById('thread-back').addEventListener('click', () => {
    inbox.classList.remove('is-reading');
    current = null;
    renderList();
  });
  const myStatus = document.getElementById('my-status');
  myStatus.addEventListener('change', () => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: 'status', status: myStatus.value }));
  });

  function renderList() {
    listEl.replaceChildren();
    const all = [...conversations.values()];
    const count = (v) => all.filter(inView[v]).length;
    document.getElementById('count-waiting').textContent = count('waiting') || '';
    document.getElementById('count-mine').textContent = count('mine') || '';
    const q = search.value.trim().toLowerCase();
    const items = all
      .filter(inView[view])
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
      const name = el('span', 'conversation-name', c.visitor_name);
      if (online.has(c.visitor_id)) name.append(el('span', 'online-dot', ''));
      // The last message says most; the state where it matters (queued, closed).
      const state = c.status === 'queued' ? t.tQueued : c.status === 'closed' ? t.tClosed : '';
      const meta = el('span', 'conversation-meta', [state, c.last_message || c.agent_name || ''].filter(Boolean).join(' · '));
      button.append(name, meta);
      const n = unread.get(c.id) || 0;
      if (n) button.append(el('span', 'unread', String(n)));
      button.addEventListener('click', () => open(c.id));
      li.append(button);
      listEl.append(li);
    }
  }

  function bubble(m) {
    const row = el('div', `tmsg ${m.sender.kind === 'visitor' ? 'theirs' : 'mine'} ${m.kind === 'notice' ? 'notice' : ''}`);
    row.append(window.KefuContent.fill(el('div', 'bubble'), m));
    const c = conversations.get(m.conversation_id);
    const who = m.sender.name || (m.sender.kind === 'visitor' && c ? c.visitor_name : '');
    row.append(el('div', 'meta', who));
    return row;
  }

  async function open(id) {
    current = id;
    inbox.classList.add('is-reading'); // phones: the chat replaces the list
    unread.delete(id);
    const c = conversations.get(id);
    threadTitle.textContent = c ? c.visitor_name : '';
    showPage();
    if (c) showVisitor(c.visitor_id);
    thread.hidden = false;
    closeBtn.hidden = !c || c.status === 'closed';
    threadMessages.replaceChildren();
    const res = await fetch(`/api/v1/conversations/${id}/messages?limit=100`);
    if (res.ok) {
      const page = await res.json();
      for (const m of page.messages) threadMessages.append(bubble(m));
      threadMessages.scrollTop = threadMessages.scrollHeight;
      const last = page.messages[page.messages.length - 1];
      if (last) fetch(`/api/v1/conversations/${id}/read`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body: JSON.stringify({ up_to: last.id }) });
    }
    renderList();
    reply.focus();
  }

  async function loadList() {
    const res = await fetch('/api/v1/conversations?view=all&status=any&limit=100');
    if (!res.ok) return;
    for (const c of (await res.json()).conversations) {
      conversations.set(c.id, c);
      if (c.unread) unread.set(c.id, c.unread);
    }
    renderList();
  }

  // A message in one line, for lists.
  function preview(m) {
    const p = m.payload || {};
    if (m.kind === 'image') return `📷 ${(p.attachment && p.attachment.name) || ''}`.trim();
    if (m.kind === 'file') return `📎 ${(p.attachment && p.attachment.name) || ''}`.trim();
    if (m.kind === 'product') return `🛒 ${(p.product && p.product.title) || ''}`.trim();
    return m.body || '';
  }

  function onMessage(m) {
    if (seen.has(m.id)) return;
    seen.add(m.id);
    lastId = Math.max(lastId, m.id);
    if (m.client_msg_id && pending.has(m.client_msg_id)) {
      pending.get(m.client_msg_id).el.classList.remove('is-pending');
      pending.delete(m.client_msg_id);
      return;
    }
    if (m.conversation_id === current) {
      threadMessages.append(bubble(m));
      threadMessages.scrollTop = threadMessages.scrollHeight;
    } else if (m.sender.kind === 'visitor') {
      unread.set(m.conversation_id, (unread.get(m.conversation_id) || 0) + 1);
      if (!conversations.has(m.conversation_id)) loadList();
    }
    const c = conversations.get(m.conversation_id);
    if (c) c.last_message = preview(m);
    renderList();
    if (m.sender.kind === 'visitor' && (m.conversation_id !== current || document.hidden)) {
      alertAgent(t.tNewMessage, `${m.sender.name || ''}: ${m.body || ''}`.slice(0, 140));
    }
  }

  function handle(f) {
    switch (f.type) {
      case 'message': onMessage(f); break;
      case 'conversation':
        if (f.event === 'created' && !conversations.has(f.conversation.id)) alertAgent(t.tNewVisitor, f.conversation.visitor_name);
        conversations.set(f.conversation.id, Object.assign(conversations.get(f.conversation.id) || {}, f.conversation));
        if (f.conversation.id === current) closeBtn.hidden = f.conversation.status === 'closed';
        renderList();
        break;
      case 'presence':
        if (f.of === 'visitor') { if (f.online) online.add(f.visitor_id); else online.delete(f.visitor_id); renderList(); }
        if (f.of === 'agent' && f.agent_id === me) myStatus.value = f.status;
        if (f.of === 'page') {
          lastPage.set(f.visitor_id, f);
          showPage();
          if (f.visitor_id === panelVisitor) document.getElementById('vp-pages').prepend(pageItem(f));
        }
        break;
      case 'ack': {
        const p = pending.get(f.client_msg_id);
        if (p) { p.el.classList.remove('is-pending'); pending.delete(f.client_msg_id); seen.add(f.id); }
        break;
      }
      case 'sync_done': lastId = Math.max(lastId, f.last_id); break;
      default: break;
    }
  }

  function connect() {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    socket = new WebSocket(`${proto}://${location.host}/ws/agent?since=${lastId}`);
    socket.onopen = () => { retry = 0; statusEl.textContent = ''; for (const p of pending.values()) socket.send(JSON.stringify(p.frame)); };
    socket.onmessage = (ev) => { try { handle(JSON.parse(ev.data)); } catch (_) { /* ignore */ } };
    socket.onclose = () => {
      socket = null;
      statusEl.textContent = t.tReconnecting;
      setTimeout(connect, Math.min(15000, 500 * 2 ** retry++));
    };
  }

  // Shows a reply as sending and sends it; it is resent on reconnect until acknowledged.
  function sendFrame(frame, shown) {
    const c = conversations.get(frame.conversation_id);
    if (c) { c.last_message = preview(shown); renderList(); }
    const node = bubble(Object.assign({ sender: { kind: 'agent', name: '' } }, shown));
    node.classList.add('is-pending');
    threadMessages.append(node);
    threadMessages.scrollTop = threadMessages.scrollHeight;
    pending.set(frame.client_msg_id, { frame, el: node });
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = reply.value.trim();
    if (!text || !current) return;
    reply.value = '';
    sendFrame({ type: 'send', client_msg_id: uuid(), conversation_id: current, kind: 'text', body: text }, { kind: 'text', body: text });
  });

  // Attachments: upload (the session cookie and the CSRF header), then send by id.
  const fileInput = document.getElementById('agent-file');
  document.getElementById('agent-attach').addEventListener('click', () => { if (current) fileInput.click(); });
  fileInput.addEventListener('change', async () => {
    const file = fileInput.files[0];
    fileInput.value = '';
    if (!file || !current) return;
    const conversation = current;
    const body = new FormData();
    body.append('file', file);
    const res = await fetch('/api/v1/uploads', { method: 'POST', headers: { 'x-csrf-token': csrf }, body });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) { statusEl.textContent = (data.error && data.error.message) || res.statusText; return; }
    statusEl.textContent = '';
    const kind = data.kind === 'image' ? 'image' : 'file';
    sendFrame({ type: 'send', client_msg_id: uuid(), conversation_id: conversation, kind, attachment: { id: data.id } },
      { kind, body: '', payload: { attachment: data } });
  });
  reply.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); composer.requestSubmit(); }
  });
  reply.addEventListener('input', () => {
    if (socket && socket.readyState === WebSocket.OPEN && current) socket.send(JSON.stringify({ type: 'typing', conversation_id: current }));
  });
  closeBtn.addEventListener('click', async () => {
    if (!current) return;
    await fetch(`/api/v1/conversations/${current}/close`, { method: 'POST', headers: { 'x-csrf-token': csrf } });
  });

  loadList().then(connect);
})();
