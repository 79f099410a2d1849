// The visitor chat page. Talks the protocol in docs/protocol.md: a visitor session
// (token kept per merchant: in localStorage for anonymous visitors, for the browser tab only
// for users the merchant verified), a single-use ticket per socket, `since=<last id>`
// on every reconnect, and unacked messages resent with their original client_msg_id, so
// nothing is lost or duplicated. Everything shown is text (never HTML).
(() => {
  'use strict';
  const root = document.getElementById('chat');
  const d = root.dataset;
  // The merchant's colour (set through the CSSOM: the page's CSP allows no inline styles).
  if (/^#[0-9a-f]{6}$/i.test(d.color || '')) document.documentElement.style.setProperty('--brand', d.color);
  const entId = d.entId;
  const storeKey = `kefu:visitor:${entId}`;
  const list = document.getElementById('messages');
  const input = document.getElementById('input');
  const composer = document.getElementById('composer');
  const leave = document.getElementById('leave');
  const banner = document.getElementById('banner');
  const availability = document.getElementById('availability');
  const typingLine = document.getElementById('typing');

  const seen = new Map();       // message id -> element
  // A logged-in user's proof from the merchant's site: the widget passes it in this page's
  // fragment (`#identity=<base64 JSON>`), a direct link may name `#user_id=…&user_hash=…`
  // or `#identity_token=…`. Fragments never reach a server's logs.
  let identity = readIdentity();
  let visitorId = null;
  // The link in an emailed answer (`#resume=<visitor token>`) brings the visitor back into
  // their conversation on any device; the fragment is dropped once read.
  const resume = new URLSearchParams(location.hash.slice(1)).get('resume');
  if (resume) {
    localStorage.setItem(storeKey, resume);
    history.replaceState(null, '', location.pathname + location.search);
  }
  let token = resume || sessionStorage.getItem(storeKey) || localStorage.getItem(storeKey);
  let sessionStarted = false; // the server decides on every page load who this visitor is
  let typingTimer = null;

  // Inside the widget's iframe the page talks to the host page, and only to the origin
  // the loader named (`host=`): the browser delivers nothing to a parent of another origin.
  const params = new URLSearchParams(location.search);
  const parentOrigin = (() => {
    if (params.get('embed') !== '1' || window.parent === window) return null;
    try { const o = new URL(params.get('host') || '').origin; return o === params.get('host') ? o : null; } catch (_) { return null; }
  })();
  let historyLoaded = false; // messages before the first sync_done are history, not news
  function toParent(type, data) {
    if (parentOrigin) window.parent.postMessage(Object.assign({ source: 'kefu-chat', type }, data || {}), parentOrigin);
  }

  const uuid = () => (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`);

  const { el, timeEl, markDays, markDay } = window.KefuDom;

  // Every message carries its time (the full date on hover); pending ones, now.
  function bubble(msg, mine) {
    const row = el('div', `msg ${mine ? 'mine' : 'theirs'} kind-${msg.kind}`);
    row.dataset.at = msg.created_at || new Date().toISOString();
    if (msg.kind === 'notice') {
      row.className = 'msg notice';
      const html = msg.payload && msg.payload.html;
      row.append(html ? window.KefuContent.rich(html) : el('span', '', msg.body));
      return row;
    }
    const b = window.KefuContent.fill(el('div', 'bubble'), msg);
    const meta = el('div', 'meta');
    meta.append(el('span', 'meta-text', mine ? '' : (msg.sender && msg.sender.name) || d.tAgent), timeEl(row.dataset.at));
    if (mine) { row.append(b, meta); return row; }
    const body = el('div', 'msg-body');
    body.append(b, meta);
    row.append(avatar(msg.sender), body);
    return row;
  }

  // Beside a reply: the agent's picture, else the service's, else an initial.
  function avatar(sender) {
    const url = (sender && sender.avatar) || d.serviceAvatar;
    if (url) { const img = el('img', 'msg-avatar'); img.src = url; img.alt = ''; return img; }
    const name = (sender && sender.kind === 'agent' && sender.name) || d.initial || '';
    const span = el('span', 'msg-avatar', name.trim().charAt(0).toUpperCase());
    span.setAttribute('aria-hidden', 'true');
    return span;
  }

  // Only the latest own message carries a status (delivered, then read).
  let lastOwn = null;
  function markOwn(node, id, text) {
    if (lastOwn && lastOwn.id > id) { node.querySelector('.meta-text').textContent = ''; return; }
    if (lastOwn && lastOwn.el !== node) lastOwn.el.querySelector('.meta-text').textContent = '';
    lastOwn = { el: node, id };
    node.querySelector('.meta-text').textContent = text;
  }

  function scroll() { list.scrollTop = list.scrollHeight; }

  // The merchant's welcome greets a visitor with no history as soon as the chat opens; the
  // stored one (sent when their first message opens the conversation) takes its place.
  let greeting = null;
  function showGreeting() {
    if (!d.welcome || greeting || list.querySelector('.msg:not(.notice)')) return;
    greeting = bubble({ kind: 'text', body: '', payload: { html: d.welcome }, sender: { kind: 'bot' } }, false);
    greeting.classList.add('is-greeting');
    list.prepend(greeting);
    markDays(list);
  }

  function show(msg) {
    if (seen.has(msg.id)) return;
    const mine = msg.sender && msg.sender.kind === 'visitor';
    if (!mine) typingLine.hidden = true;
    if (!mine && historyLoaded) {
      toParent('message', { message: { id: msg.id, kind: msg.kind, body: msg.body, sender: msg.sender && msg.sender.name } });
    }
    if (!mine && msg.sender && msg.sender.kind === 'agent') agentWrote(msg.created_at);
    const waiting = sock.settle(msg.client_msg_id);
    const node = bubble(msg, mine);
    const welcome = !mine && String(msg.client_msg_id || '').startsWith('welcome:');
    if (waiting) waiting.data.replaceWith(node);
    else if (welcome && greeting) { greeting.replaceWith(node); greeting = null; }
    else { list.append(node); markDay(node); }
    seen.set(msg.id, node);
    if (mine) markOwn(node, msg.id, d.tDelivered);
    scroll();
  }

  // Online when the team is (business hours, someone online), and also out of hours while
  // an agent is answering this visitor: an agent is online and wrote in the last 15
  // minutes of an open conversation.
  const ANSWERING_MS = 15 * 60 * 1000;
  let teamOnline = false;
  let agentsOnline = false;
  let agentWroteAt = 0;
  function showAvailability() {
    const online = teamOnline || (agentsOnline && Date.now() - agentWroteAt < ANSWERING_MS);
    availability.classList.toggle('is-online', online);
    availability.querySelector('.label').textContent = online ? d.tOnline : d.tOffline;
  }
  function setAvailability(online, agents) { teamOnline = online; agentsOnline = agents === true; showAvailability(); }
  function agentWrote(at) {
    agentWroteAt = Math.max(agentWroteAt, Date.parse(at) || Date.now());
    showAvailability();
    // Someone is answering now: no need to leave a message (unless one is being written).
    if (availability.classList.contains('is-online') && !leave.elements.body.value.trim()) leave.hidden = true;
  }
  setInterval(showAvailability, 60_000);

  // A blocked visitor's chat ends here: one clear, final screen in their language, nothing
  // left to type into.
  function blockedScreen() {
    setBanner('');
    const end = el('div', 'final-screen');
    end.setAttribute('role', 'status');
    end.append(el('div', 'final-icon', '⊘'), el('p', '', d.tBlocked));
    list.replaceChildren(end);
    for (const id of ['composer', 'leave', 'typing', 'availability']) { const n = document.getElementById(id); if (n) n.hidden = true; }
  }

  function setBanner(text) { banner.hidden = !text; banner.textContent = text || ''; }

  async function api(path, body, auth) {
    const headers = { 'content-type': 'application/json' };
    if (auth) headers.authorization = `Bearer ${token}`;
    const res = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body || {}) });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw Object.assign(new Error((data.error && data.error.message) || res.statusText), { status: res.status, data });
    return data;
  }

  function readIdentity() {
    const f = new URLSearchParams(location.hash.slice(1));
    let proof = null;
    try {
      if (f.get('identity')) {
        const bytes = Uint8Array.from(atob(f.get('identity')), (c) => c.charCodeAt(0));
        proof = JSON.parse(new TextDecoder().decode(bytes));
      } else if (f.get('user_id') || f.get('identity_token')) {
        proof = { user_id: f.get('user_id'), user_hash: f.get('user_hash'), identity_token: f.get('identity_token') };
      }
    } catch (_) { proof = null; }
    if (!proof || typeof proof !== 'object') return null;
    const text = (v) => (typeof v === 'string' && v ? v : null);
    return { user_id: text(proof.user_id), user_hash: text(proof.user_hash), identity_token: text(proof.identity_token) };
  }
  function fragmentOf(proof) {
    if (!proof) return '';
    const bytes = new TextEncoder().encode(JSON.stringify(proof));
    let bin = '';
    bytes.forEach((b) => { bin += String.fromCharCode(b); });
    return `#identity=${encodeURIComponent(btoa(bin))}`;
  }
  // Who the visitor is changed (the user logged in or out): start over as them.
  function restart() {
    history.replaceState(null, '', location.pathname + location.search + fragmentOf(identity));
    location.reload();
  }

  // Creates or resumes the visitor; true when the visitor changed since the last call.
  async function startSession(profile) {
    const s = await api('/api/v1/visitor/session', Object.assign({
      ent_id: entId, token, name: d.visitorName || null, avatar: d.avatar || null,
      // Embedded, the page the visitor is on is the host's (the loader says which), and this
      // frame's referrer is that page, not where the visitor came from.
      refer: d.refer || (parentOrigin ? null : document.referrer) || null,
      landing_url: (parentOrigin && params.get('landing')) || location.href,
      extra: d.extra || null,
    }, identity || {}, profile || {}));
    token = s.token;
    sessionStarted = true;
    // A verified user's token lives for this tab only (a shared computer forgets it).
    const [keep, drop] = s.verified ? [sessionStorage, localStorage] : [localStorage, sessionStorage];
    keep.setItem(storeKey, token);
    drop.removeItem(storeKey);
    const changed = visitorId !== null && visitorId !== s.visitor_id;
    visitorId = s.visitor_id;
    if (s.prechat && !changed) showPrechat(s.prechat); else hidePrechat();
    return changed;
  }

  // The merchant's pre-chat form: shown before the first message (the server says when);
  // the composer waits for it. Each field's problem shows under it.
  let prechatForm = null;
  const labelOf = (l) => (d.lang === 'zh-CN' ? l['zh-CN'] : l.en) || l.en || l['zh-CN'] || '';
  function hidePrechat() {
    if (prechatForm) prechatForm.remove();
    prechatForm = null;
    input.disabled = false;
  }
  function showPrechat(form) {
    if (prechatForm) return;
    const f = el('form', 'prechat');
    f.noValidate = true;
    f.append(el('h2', '', d.tPrechatTitle), el('p', '', d.tPrechatLead));
    const inputs = new Map();
    form.fields.forEach((field, i) => {
      const id = `prechat-${i}`;
      const label = el('label');
      label.htmlFor = id;
      label.append(labelOf(field.label));
      if (!field.required) label.append(' ', el('small', '', d.tPrechatOptional));
      let control;
      if (field.kind === 'select') {
        control = el('select');
        control.append(Object.assign(el('option', '', d.tPrechatChoose), { value: '' }));
        for (const o of field.options) control.append(Object.assign(el('option', '', labelOf(o)), { value: o.en }));
      } else {
        control = el('input');
        control.type = { email: 'email', phone: 'tel' }[field.kind] || 'text';
        control.autocomplete = { name: 'name', email: 'email', phone: 'tel' }[field.kind] || 'off';
        control.maxLength = field.kind === 'name' ? 80 : 500;
      }
      control.id = id;
      control.required = field.required;
      // What the link or the widget said about the visitor (GOFLY's visitor_name) fills
      // the name in; they can change it.
      if (field.kind === 'name' && d.visitorName) control.value = d.visitorName;
      const problem = el('span', 'field-error');
      problem.id = `${id}-error`;
      problem.hidden = true;
      control.setAttribute('aria-describedby', problem.id);
      label.append(control, problem);
      inputs.set(field.key, { control, problem });
      f.append(label);
    });
    const submit = el('button', '', d.tPrechatSubmit);
    submit.type = 'submit';
    f.append(submit);
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      const answers = {};
      for (const [key, { control, problem }] of inputs) {
        answers[key] = control.value;
        problem.hidden = true;
        control.removeAttribute('aria-invalid');
      }
      submit.disabled = true;
      try {
        await sendPrechat(answers, submit);
        hidePrechat();
        setBanner('');
        input.focus();
      } catch (err) {
        const fields = (err.data && err.data.error && err.data.error.fields) || {};
        let first = null;
        for (const [key, message] of Object.entries(fields)) {
          const target = inputs.get(key);
          if (!target) continue;
          target.problem.textContent = message;
          target.problem.hidden = false;
          target.control.setAttribute('aria-invalid', 'true');
          first = first || target.control;
        }
        if (first) first.focus(); else setBanner(err.message);
      } finally {
        submit.disabled = false;
        submit.textContent = d.tPrechatSubmit;
      }
    });
    prechatForm = f;
    list.append(f);
    input.disabled = true;
    scroll();
  }
  // Sends the answers; a busy address is asked to prove some work first (a second or so).
  async function sendPrechat(answers, submit) {
    try {
      return await api('/api/v1/visitor/prechat', { answers, lang: d.lang }, true);
    } catch (err) {
      if (err.status !== 428) throw err;
      submit.textContent = d.tPrechatChecking;
      const c = await api('/api/v1/visitor/prechat/challenge', {}, true);
      const nonce = await solveChallenge(c.challenge, c.difficulty);
      return api('/api/v1/visitor/prechat', { answers, lang: d.lang, proof: { challenge: c.challenge, nonce } }, true);
    }
  }
  async function solveChallenge(challenge, bits) {
    const enc = new TextEncoder();
    const zeros = (h) => { let n = 0; for (const b of h) { if (b === 0) { n += 8; continue; } n += Math.clz32(b) - 24; break; } return n; };
    for (let i = 0; ; i++) {
      const nonce = i.toString(36);
      const h = new Uint8Array(await crypto.subtle.digest('SHA-256', enc.encode(`${challenge}:${nonce}`)));
      if (zeros(h) >= bits) return nonce;
    }
  }
  const identityRefused = (e) => e.status === 401 && e.data && e.data.error && e.data.error.code === 'identity_invalid';

  function handle(frame) {
    switch (frame.type) {
      case 'message': show(frame); break;
      case 'ack': {
        // The sending connection gets the ack, not an echo: the message is stored.
        const p = sock.settle(frame.client_msg_id);
        if (p) {
          p.data.classList.remove('is-pending');
          seen.set(frame.id, p.data);
          markOwn(p.data, frame.id, d.tDelivered);
        }
        break;
      }
      case 'read':
        // The agent has read up to here: the latest own message says so.
        if (frame.by === 'agent' && lastOwn && lastOwn.id <= frame.up_to) markOwn(lastOwn.el, lastOwn.id, d.tRead);
        break;
      case 'presence': if (frame.of === 'team') setAvailability(frame.online, frame.agents); break;
      case 'conversation':
        if (frame.event === 'closed') { agentWroteAt = 0; showAvailability(); }
        if (frame.event === 'closed' && historyLoaded) askRating(frame.conversation.id);
        // Reopened by the visitor's next message: a rating not given yet is no longer asked.
        if (frame.event === 'reopened') {
          const card = list.querySelector(`.rating-card[data-conversation="${frame.conversation.id}"]`);
          if (card && card.querySelector('.rating-stars')) card.remove();
        }
        break;
      case 'typing':
        typingLine.hidden = false;
        clearTimeout(typingTimer);
        typingTimer = setTimeout(() => { typingLine.hidden = true; }, 4000);
        break;
      case 'notice':
        if (frame.code === 'offline') leave.hidden = false;
        if (frame.code === 'history_cleared') list.replaceChildren(el('div', 'msg notice', d.tHistoryCleared));
        break;
      case 'sync_done': historyLoaded = true; showGreeting(); break;
      case 'error': {
        const p = sock.waiting(frame.client_msg_id);
        if (p && frame.code === 'conversation_limit') {
          // No new chat can start (the merchant's plan): the message goes into the form.
          sock.settle(frame.client_msg_id);
          p.data.remove();
          leave.elements.body.value = p.frame.body || '';
          leave.hidden = false;
          list.append(el('div', 'msg notice', d.tLeaveInstead));
          scroll();
          break;
        }
        if (p) {
          if (frame.code === 'unavailable') p.data.querySelector('.meta-text').textContent = d.tFailed;
          else { p.data.classList.add('is-failed'); sock.settle(frame.client_msg_id); }
        }
        break;
      }
      default: break;
    }
  }

  // The socket (static/js/socket.js): a fresh single-use ticket per connection, replays
  // from the last message seen, resends what was not acknowledged, reconnects with backoff.
  async function socketUrl(since) {
    if (!token || !sessionStarted) await startSession();
    let ticket;
    try { ticket = (await api('/api/v1/visitor/ticket', {}, true)).ticket; }
    catch (e) { if (e.status === 401) { token = null; await startSession(); ticket = (await api('/api/v1/visitor/ticket', {}, true)).ticket; } else throw e; }
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const query = new URLSearchParams({ ticket, since: String(since), lang: d.lang });
    if (d.kefuId) query.set('kefu_id', d.kefuId);
    return `${proto}://${location.host}/ws/visitor?${query}`;
  }
  const sock = window.KefuSocket({
    url: socketUrl,
    onFrame: handle,
    onOpen: () => { flushPages(); setBanner(''); },
    onClose: (ev) => {
      if (ev.code === 4003) { blockedScreen(); return false; } // blocked: no coming back
      setBanner(d.tReconnecting);
      return true;
    },
    onConnectError: (e) => {
      if (identityRefused(e)) { setBanner(d.tIdentityInvalid); return false; }
      if (e.status === 403 && e.data && e.data.error && e.data.error.code === 'visitor_blocked') { blockedScreen(); return false; }
      if (e.status === 403 || e.status === 404) { setBanner(e.message); return false; }
      return true;
    },
  });

  // A closed conversation asks for a rating: five stars and an optional comment, once.
  function askRating(conversationId) {
    if (list.querySelector(`.rating-card[data-conversation="${conversationId}"]`)) return;
    const card = el('form', 'rating-card');
    card.dataset.conversation = String(conversationId);
    card.append(el('p', 'rating-title', d.tRateTitle));
    const stars = el('div', 'rating-stars');
    stars.setAttribute('role', 'radiogroup');
    stars.setAttribute('aria-label', d.tRateTitle);
    let score = 0;
    const buttons = [1, 2, 3, 4, 5].map((n) => {
      const b = el('button', 'rating-star', '☆');
      b.type = 'button';
      b.setAttribute('role', 'radio');
      b.setAttribute('aria-checked', 'false');
      b.setAttribute('aria-label', d.tRateStar.replace('{n}', String(n)));
      b.addEventListener('click', () => {
        score = n;
        buttons.forEach((o, i) => { o.textContent = i < n ? '★' : '☆'; o.setAttribute('aria-checked', String(i + 1 === n)); });
        send.disabled = false;
      });
      return b;
    });
    stars.append(...buttons);
    const comment = el('textarea', 'rating-comment');
    comment.rows = 2;
    comment.maxLength = 1000;
    comment.placeholder = d.tRateComment;
    comment.setAttribute('aria-label', d.tRateComment);
    const send = el('button', 'btn rating-send', d.tRateSend);
    send.type = 'submit';
    send.disabled = true;
    card.append(stars, comment, send);
    card.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!score) return;
      send.disabled = true;
      try {
        await api('/api/v1/visitor/rating', { conversation_id: conversationId, score, comment: comment.value }, true);
      } catch (err) {
        if (err.status !== 409) { send.disabled = false; setBanner(err.message); return; }
      }
      card.replaceChildren(el('p', 'rating-title', d.tRateThanks));
    });
    list.append(card);
    scroll();
  }

  // Shows a message as sending and sends it; it stays pending (and is resent on
  // reconnect) until its ack arrives.
  function sendFrame(frame, shown) {
    const node = bubble(shown, true);
    node.classList.add('is-pending');
    node.querySelector('.meta-text').textContent = d.tSending;
    list.append(node);
    markDay(node);
    scroll();
    sock.sendTracked(frame, node);
    toParent('sent');
  }

  function send(text) {
    sendFrame({ type: 'send', client_msg_id: uuid(), kind: 'text', body: text }, { kind: 'text', body: text });
  }

  // Pages the widget saw on the host site, sent once there is a visitor session.
  const pageQueue = [];
  async function flushPages() {
    while (token && pageQueue.length) {
      const views = pageQueue.splice(0, 20);
      try { await api('/api/v1/visitor/page_views', { views }, true); } catch (_) { return; }
    }
  }

  // Calls from the host page (Kefu.identify / setAttributes / open / close).
  async function updateProfile(body) {
    if (!token) return;
    try { if (await startSession(body)) restart(); } catch (e) { if (identityRefused(e)) setBanner(d.tIdentityInvalid); }
  }
  function toBase64(value) {
    const bytes = new TextEncoder().encode(JSON.stringify(value));
    let bin = '';
    bytes.forEach((b) => { bin += String.fromCharCode(b); });
    return btoa(bin);
  }
  if (parentOrigin) {
    window.addEventListener('message', (e) => {
      if (e.source !== window.parent || e.origin !== parentOrigin) return;
      const m = e.data;
      if (!m || m.source !== 'kefu-host') return;
      if (m.type === 'open') input.focus();
      else if (m.type === 'identify' && m.user) {
        identity = { user_id: m.user.user_id || null, user_hash: m.user.user_hash || null, identity_token: m.user.identity_token || null };
        updateProfile({ name: m.name || null, avatar: m.avatar || null });
      } else if (m.type === 'logout') {
        if (!identity) return;
        identity = null;
        token = null;
        sessionStorage.removeItem(storeKey);
        restart();
      }
      else if (m.type === 'attributes' && m.attributes) updateProfile({ extra: toBase64(m.attributes) });
      else if (m.type === 'pages' && Array.isArray(m.views)) { pageQueue.push(...m.views); flushPages(); }
    });
    const closer = document.getElementById('close');
    closer.hidden = false;
    closer.addEventListener('click', () => toParent('close'));
    toParent('ready');
  }

  // The emoji picker (content.js), inserting at the cursor.
  window.KefuContent.emojiPicker(document.getElementById('emoji'), document.getElementById('emoji-panel'), input);

  // Attachments: upload first, then send the message naming the upload.
  const attach = document.getElementById('attach');
  const fileInput = document.getElementById('file');
  attach.addEventListener('click', () => { if (prechatForm) setBanner(d.tPrechatFillFirst); else fileInput.click(); });
  fileInput.addEventListener('change', async () => {
    const file = fileInput.files[0];
    fileInput.value = '';
    if (!file) return;
    const node = bubble({ kind: 'text', body: `${file.name} · ${window.KefuContent.size(file.size)}` }, true);
    node.classList.add('is-pending');
    node.querySelector('.meta-text').textContent = d.tUploading;
    list.append(node);
    markDay(node);
    scroll();
    try {
      if (!token) await startSession();
      const body = new FormData();
      body.append('file', file);
      const res = await fetch('/api/v1/uploads', { method: 'POST', headers: { authorization: `Bearer ${token}` }, body });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) throw new Error((data.error && data.error.message) || res.statusText);
      node.remove();
      // The server decided what the bytes are; an image is sent as one.
      const kind = data.kind === 'image' ? 'image' : 'file';
      sendFrame({ type: 'send', client_msg_id: uuid(), kind, attachment: { id: data.id } },
        { kind, body: '', payload: { attachment: data } });
    } catch (err) {
      node.classList.remove('is-pending');
      node.classList.add('is-failed');
      node.querySelector('.meta-text').textContent = err.message;
    }
  });

  composer.addEventListener('submit', (e) => {
    e.preventDefault();
    if (prechatForm) { setBanner(d.tPrechatFillFirst); return; }
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    send(text);
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); composer.requestSubmit(); }
  });
  // Typing: a signal, with what is typed only where the merchant enabled previews (the page
  // says so under the composer). At most one frame per 400 ms, and the last state is sent.
  const withPreview = d.typingPreview === 'true';
  let typingSent = 0;
  let typingPending = null;
  function sendTyping() {
    typingPending = null;
    typingSent = Date.now();
    const frame = { type: 'typing' };
    if (withPreview) frame.preview = input.value.slice(0, 200);
    sock.send(frame);
  }
  input.addEventListener('input', () => {
    if (typingPending) return;
    typingPending = setTimeout(sendTyping, Math.max(0, 400 - (Date.now() - typingSent)));
  });
  leave.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = new FormData(leave);
    try {
      await api('/api/v1/visitor/leave_message', { name: f.get('name'), contact: f.get('contact'), body: f.get('body') }, true);
      leave.hidden = true;
      list.append(el('div', 'msg notice', d.tLeft));
      scroll();
    } catch (err) { setBanner(err.message); }
  });

  sock.connect();
})();
