// Small progressive enhancements for the agent workspace shell.
// Copy buttons: <button data-copy="element-id" data-copied="Copied">.
document.addEventListener('click', async (event) => {
  const button = event.target.closest('[data-copy]');
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(source.value);
  } catch {
    source.select();
    document.execCommand('copy');
  }
  button.textContent = button.dataset.copied || 'Copied';
  setTimeout(() => { button.textContent = label; }, 1500);
});

// Shared by the workspace and the settings pages: JSON API calls with the CSRF header (an
// error carries the API's message and its per-field messages), and corner toasts (an action
// makes them clickable).
window.KefuApp = (() => {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || '';
  async function answer(res) {
    const data = res.status === 204 ? {} : await res.json().catch(() => ({}));
    if (!res.ok) {
      const err = new Error((data.error && data.error.message) || res.statusText);
      err.fields = (data.error && data.error.fields) || {};
      throw err;
    }
    return data;
  }
  // `keepalive` lets a request outlive the page (a click just before the person navigates away).
  async function api(method, url, body, { keepalive = false } = {}) {
    const init = { method, keepalive, headers: { 'x-csrf-token': csrf() } };
    if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
    return answer(await fetch(url, init));
  }
  // Uploads one file (POST /api/v1/uploads); resolves to the stored upload.
  async function upload(file) {
    const body = new FormData();
    body.append('file', file);
    return answer(await fetch('/api/v1/uploads', { method: 'POST', headers: { 'x-csrf-token': csrf() }, body }));
  }
  function toast(text, action) {
    const stack = document.getElementById('toasts');
    if (!stack) return;
    const node = document.createElement(action ? 'button' : 'div');
    node.className = 'toast';
    node.textContent = text;
    if (action) { node.type = 'button'; node.addEventListener('click', () => { node.remove(); action(); }); }
    // The same notice again replaces the earlier one; at most three are shown at once.
    for (const old of [...stack.children]) if (old.textContent === text) old.remove();
    while (stack.children.length >= 3) stack.firstElementChild.remove();
    stack.append(node);
    setTimeout(() => node.remove(), 6000);
  }
  return { api, upload, toast };
})();

// The sidebar's profile dialog: an agent's own name and photo (PATCH /api/v1/agents/{id}).
(() => {
  const dialog = document.getElementById('profile-dialog');
  const opener = document.getElementById('profile-open');
  if (!dialog || !opener) return;
  const { api, upload, toast } = window.KefuApp;
  const form = document.getElementById('profile-form');
  const photo = document.getElementById('profile-photo');
  const file = document.getElementById('profile-file');
  const remove = document.getElementById('profile-remove');
  const errorBox = document.getElementById('profile-error');
  let avatar = null; // the upload id chosen in this dialog, '' to remove, null: unchanged
  function showPhoto(url) {
    photo.replaceChildren();
    if (url) { const img = document.createElement('img'); img.src = url; img.alt = ''; photo.append(img); } else photo.textContent = dialog.dataset.initial;
    remove.hidden = !url;
  }
  opener.addEventListener('click', () => {
    avatar = null;
    errorBox.hidden = true;
    loadTwoFactor();
    loadIdentities();
    loadSessions();
    byId('pw-fields').hidden = true;
    byId('pw-error').hidden = true;
    form.elements.display_name.value = opener.querySelector('strong').textContent;
    showPhoto(dialog.dataset.avatar);
    dialog.showModal();
  });
  document.getElementById('profile-cancel').addEventListener('click', () => dialog.close());

  // Two-step verification for oneself (/api/v1/me/totp): set up with a QR code, confirmed
  // by a code; turned off with a code, unless the workspace requires it.
  const tfa = document.getElementById('tfa');
  const tfaError = document.getElementById('tfa-error');
  const byId = (id) => document.getElementById(id);
  const tfaFail = (err) => { tfaError.textContent = err.message; tfaError.hidden = false; };
  function showTwoFactor(s) {
    byId('tfa-state').textContent = s.enabled ? (s.required ? tfa.dataset.tRequired : tfa.dataset.tOn) : tfa.dataset.tOff;
    byId('tfa-start').hidden = s.enabled;
    byId('tfa-setup').hidden = true;
    byId('tfa-disable-row').hidden = !s.enabled || s.required;
  }
  async function loadTwoFactor() {
    tfaError.hidden = true;
    byId('tfa-codes').hidden = true;
    try { showTwoFactor(await api('GET', '/api/v1/me/totp')); } catch (err) { tfaFail(err); }
  }
  byId('tfa-start').addEventListener('click', async () => {
    tfaError.hidden = true;
    try {
      const offer = await api('POST', '/api/v1/me/totp');
      byId('tfa-qr').src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(offer.qr_svg)}`;
      byId('tfa-secret').textContent = offer.secret;
      byId('tfa-setup').hidden = false;
      byId('tfa-start').hidden = true;
      byId('tfa-code').focus();
    } catch (err) { tfaFail(err); }
  });
  async function confirmTwoFactor() {
    tfaError.hidden = true;
    try {
      const { recovery_codes: codes } = await api('POST', '/api/v1/me/totp/confirm', { code: byId('tfa-code').value });
      byId('tfa-code').value = '';
      byId('tfa-code-list').replaceChildren(...codes.map((c) => { const li = document.createElement('li'); li.textContent = c; return li; }));
      showTwoFactor(await api('GET', '/api/v1/me/totp'));
      byId('tfa-codes').hidden = false;
    } catch (err) { tfaFail(err); }
  }
  async function disableTwoFactor() {
    tfaError.hidden = true;
    try {
      await api('POST', '/api/v1/me/totp/disable', { code: byId('tfa-disable-code').value });
      byId('tfa-disable-code').value = '';
      showTwoFactor(await api('GET', '/api/v1/me/totp'));
      toast(tfa.dataset.tTurnedOff);
    } catch (err) { tfaFail(err); }
  }
  // Sign-in providers for oneself (/api/v1/me/identities): linking asks for the provider's
  // URL, goes there, and comes back here.
  const idp = byId('idp');
  const idpError = byId('idp-error');
  function identityRow(p) {
    const li = document.createElement('li');
    const who = document.createElement('span');
    who.className = 'who';
    const mark = document.createElement('span');
    mark.className = `provider-mark provider-${p.kind}`;
    mark.setAttribute('aria-hidden', 'true');
    mark.textContent = p.name.charAt(0);
    const text = document.createElement('span');
    const name = document.createElement('strong');
    name.textContent = p.name;
    const detail = document.createElement('small');
    detail.textContent = p.linked ? `${idp.dataset.tLinked}${p.email ? ` · ${p.email}` : ''}` : idp.dataset.tNotLinked;
    text.append(name, detail);
    who.append(mark, text);
    const button = document.createElement('button');
    button.type = 'button';
    button.className = p.linked ? 'btn btn-ghost btn-sm' : 'btn btn-outline btn-sm';
    button.textContent = p.linked ? idp.dataset.tUnlink : idp.dataset.tLink;
    button.setAttribute('aria-label', `${button.textContent} ${p.name}`);
    button.addEventListener('click', () => (p.linked ? unlinkIdentity(p) : linkIdentity(p)));
    li.append(who, button);
    return li;
  }
  async function loadIdentities() {
    idpError.hidden = true;
    try {
      const list = await api('GET', '/api/v1/me/identities');
      idp.hidden = list.length === 0;
      byId('idp-list').replaceChildren(...list.map(identityRow));
    } catch (err) { idp.hidden = true; }
  }
  async function linkIdentity(p) {
    idpError.hidden = true;
    try {
      const { redirect } = await api('POST', `/auth/oauth/${encodeURIComponent(p.slug)}/link`, { next: window.location.pathname + window.location.search });
      window.location.assign(redirect);
    } catch (err) { idpError.textContent = err.message; idpError.hidden = false; }
  }
  async function unlinkIdentity(p) {
    idpError.hidden = true;
    try {
      await api('DELETE', `/api/v1/me/identities/${encodeURIComponent(p.slug)}`);
      toast(idp.dataset.tUnlinked);
      await loadIdentities();
    } catch (err) { idpError.textContent = err.message; idpError.hidden = false; }
  }
  // Where one is signed in (/api/v1/me/sessions): every browser, app and the console, most
  // recently active first; any of them can be signed out from here, or all but this one.
  const devices = byId('devices');
  const sessionsError = byId('sessions-error');
  // Times as every page shows them (dom.js).
  const { ago, full } = window.KefuDom;
  function sessionItem(s) {
    const li = document.createElement('li');
    const text = document.createElement('div');
    const title = document.createElement('strong');
    title.textContent = s.device || devices.dataset.tUnknown;
    const where = s.kind === 'platform' ? devices.dataset.tConsole : s.kind === 'support' ? devices.dataset.tSupport : s.workspace;
    const meta = document.createElement('span');
    meta.className = 'muted small block';
    const when = new Date(s.last_seen_at);
    meta.textContent = [where, s.ip, `${devices.dataset.tActive} ${ago(s.last_seen_at)}`].filter(Boolean).join(' · ');
    meta.title = full(when);
    text.append(title, meta);
    li.append(text);
    if (s.current) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = devices.dataset.tCurrent;
      li.append(badge);
    } else {
      const out = document.createElement('button');
      out.type = 'button';
      out.className = 'btn btn-ghost btn-sm';
      out.textContent = devices.dataset.tSignOut;
      out.addEventListener('click', async () => {
        try { await api('DELETE', `/api/v1/me/sessions/${s.id}`); toast(devices.dataset.tEnded); await loadSessions(); } catch (err) { sessionsError.textContent = err.message; sessionsError.hidden = false; }
      });
      li.append(out);
    }
    return li;
  }
  async function loadSessions() {
    sessionsError.hidden = true;
    try {
      const { sessions } = await api('GET', '/api/v1/me/sessions');
      byId('session-list').replaceChildren(...sessions.map(sessionItem));
      byId('sessions-end-others').hidden = !sessions.some((s) => !s.current);
    } catch (err) { sessionsError.textContent = err.message; sessionsError.hidden = false; }
  }
  byId('sessions-end-others').addEventListener('click', async () => {
    try { await api('DELETE', '/api/v1/me/sessions'); toast(devices.dataset.tEnded); await loadSessions(); } catch (err) { sessionsError.textContent = err.message; sessionsError.hidden = false; }
  });

  // Changing one's password: this device stays signed in (the answer renews its cookie),
  // every other session ends.
  const pwError = byId('pw-error');
  byId('pw-start').addEventListener('click', () => {
    const open = byId('pw-fields').hidden;
    byId('pw-fields').hidden = !open;
    byId('pw-start').setAttribute('aria-expanded', String(open));
    if (open) byId('pw-current').focus();
  });
  async function changePassword() {
    pwError.hidden = true;
    try {
      await api('POST', '/api/v1/me/password', { current_password: byId('pw-current').value, new_password: byId('pw-new').value });
      byId('pw-current').value = '';
      byId('pw-new').value = '';
      byId('pw-fields').hidden = true;
      byId('pw-start').setAttribute('aria-expanded', 'false');
      toast(byId('pw').dataset.tChanged);
      await loadSessions();
    } catch (err) { pwError.textContent = Object.values(err.fields || {}).join(' · ') || err.message; pwError.hidden = false; }
  }
  byId('pw-save').addEventListener('click', changePassword);
  byId('pw-new').addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); changePassword(); } });
  byId('tfa-confirm').addEventListener('click', confirmTwoFactor);
  byId('tfa-disable').addEventListener('click', disableTwoFactor);
  // Enter in these fields acts on them, not on the profile form around them.
  const onEnter = (fn) => (e) => { if (e.key === 'Enter') { e.preventDefault(); fn(); } };
  byId('tfa-code').addEventListener('keydown', onEnter(confirmTwoFactor));
  byId('tfa-disable-code').addEventListener('keydown', onEnter(disableTwoFactor));
  document.getElementById('profile-pick').addEventListener('click', () => file.click());
  file.addEventListener('change', async () => {
    const chosen = file.files[0];
    file.value = '';
    if (!chosen) return;
    errorBox.hidden = true;
    try { const up = await upload(chosen); avatar = up.id; showPhoto(up.thumb_url || up.url); } catch (err) { errorBox.textContent = err.message; errorBox.hidden = false; }
  });
  remove.addEventListener('click', () => { avatar = ''; showPhoto(''); });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { display_name: form.elements.display_name.value };
    if (avatar !== null) body.avatar = avatar;
    try {
      const saved = await api('PATCH', `/api/v1/agents/${dialog.dataset.agentId}`, body);
      dialog.dataset.avatar = saved.avatar_url || '';
      opener.querySelector('strong').textContent = saved.display_name;
      const old = opener.querySelector('.avatar');
      let mark;
      if (saved.avatar_url) { mark = document.createElement('img'); mark.src = saved.avatar_url; mark.alt = ''; } else { mark = document.createElement('span'); mark.setAttribute('aria-hidden', 'true'); mark.textContent = saved.display_name.trim().charAt(0).toUpperCase(); }
      mark.className = 'avatar';
      old.replaceWith(mark);
      dialog.dataset.initial = saved.display_name.trim().charAt(0).toUpperCase();
      dialog.close();
      toast(dialog.dataset.tSaved);
    } catch (err) {
      errorBox.textContent = Object.values(err.fields || {}).join(' · ') || err.message;
      errorBox.hidden = false;
    }
  });
})();
