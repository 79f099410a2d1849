// The merchant's settings (admins): team, quick replies, blacklist. Everything goes through
// the JSON API (docs/api.md); the server checks roles and input, this page shows its answers.
(() => {
  'use strict';
  const root = document.getElementById('settings');
  if (!root) return;
  const t = root.dataset;
  const me = Number(t.agentId);
  const { el, when } = window.KefuDom;

  const { api, upload, toast } = window.KefuApp;
  // Shows an API error under a form: each field's message with the field's label.
  function showError(box, form, err) {
    const parts = Object.entries(err.fields).map(([f, m]) => {
      const input = form && form.elements[f];
      const own = form && form.querySelector(`[data-rich="${f}"] .field-label, [data-picture="${f}"] .field-label`);
      const label = input && input.closest('label') ? input.closest('label').firstChild.textContent.trim() : own ? own.textContent : f;
      return `${label}: ${m}`;
    });
    box.textContent = parts.join(' · ') || err.message;
    box.hidden = false;
  }
  const button = (text, cls, onClick) => { const b = el('button', `btn btn-sm ${cls}`, text); b.type = 'button'; b.addEventListener('click', onClick); return b; };

  // Tabs (arrow keys move between them, as in any tab list).
  const tabs = [...root.querySelectorAll('[role=tab]')];
  function select(tab) {
    for (const other of tabs) {
      const on = other === tab;
      other.setAttribute('aria-selected', String(on));
      other.tabIndex = on ? 0 : -1;
      document.getElementById(other.getAttribute('aria-controls')).hidden = !on;
    }
    history.replaceState(null, '', `#${tab.id.slice(4)}`);
  }
  tabs.forEach((tab, i) => {
    tab.addEventListener('click', () => select(tab));
    tab.addEventListener('keydown', (e) => {
      const next = e.key === 'ArrowRight' ? tabs[(i + 1) % tabs.length] : e.key === 'ArrowLeft' ? tabs[(i + tabs.length - 1) % tabs.length] : null;
      if (next) { e.preventDefault(); select(next); next.focus(); }
    });
  });
  const initial = tabs.find((tab) => `#${tab.id.slice(4)}` === location.hash);
  if (initial) select(initial);

  // ---- Team ----
  const agentsBody = document.querySelector('#agents-table tbody');
  const secretBox = document.getElementById('secret-box');
  function showSecret(title, password) {
    document.getElementById('secret-title').textContent = title;
    document.getElementById('secret-value').value = password;
    secretBox.hidden = false;
    document.getElementById('secret-value').select();
  }
  function agentRow(a) {
    const tr = el('tr');
    if (a.disabled) tr.className = 'is-disabled';
    const who = el('td');
    who.append(el('strong', '', a.display_name), a.id === me ? el('span', 'muted', ` (${t.tYou})`) : '', el('small', 'muted block', a.email));
    const role = el('td');
    if (a.role === 'owner' || a.id === me) {
      role.append(el('span', 'badge', t[`tRole${a.role[0].toUpperCase()}${a.role.slice(1)}`]));
    } else {
      const select = el('select');
      select.setAttribute('aria-label', `${a.display_name}: role`);
      for (const r of ['agent', 'admin']) { const o = el('option', '', t[`tRole${r[0].toUpperCase()}${r.slice(1)}`]); o.value = r; o.selected = a.role === r; select.append(o); }
      select.addEventListener('change', () => update(a, { role: select.value }));
      role.append(select);
    }
    const chats = el('td');
    const max = el('input', 'narrow');
    max.type = 'number'; max.min = '0'; max.max = '1000'; max.value = a.max_concurrent_chats;
    max.setAttribute('aria-label', `${a.display_name}: max chats`);
    max.addEventListener('change', () => update(a, { max_concurrent_chats: Number(max.value) }));
    chats.append(max);
    const state = el('td', '', a.disabled ? t.tDisabled : a.invitation_pending ? t.tInvitationPending : '');
    if (!a.disabled && !a.invitation_pending) state.append(el('span', `status-dot is-${a.status}`, ''), ` ${t[`tStatus${a.status[0].toUpperCase()}${a.status.slice(1)}`] || a.status}`);
    const actionsCell = el('td');
    const actions = el('div', 'row-actions');
    actionsCell.append(actions);
    if (a.invitation_pending && !a.disabled) {
      actions.append(button(t.tResendInvite, 'btn-ghost', async () => {
        try { await api('POST', `/api/v1/agents/${a.id}/invite`); toast(`${t.tInvited} ${a.email}`); } catch (err) { toast(err.message); }
      }));
    }
    if (a.role !== 'owner' && a.id !== me && !a.invitation_pending) {
      actions.append(button(t.tReset, 'btn-ghost', async () => {
        if (!confirm(t.tConfirmReset)) return;
        try { const r = await api('POST', `/api/v1/agents/${a.id}/reset_password`); showSecret(`${a.display_name} · ${a.email}`, r.password); } catch (err) { toast(err.message); }
      }));
      if (a.two_factor) {
        actions.append(button(t.tReset2fa, 'btn-ghost', async () => {
          if (!confirm(t.tConfirmReset2fa)) return;
          try { await api('POST', `/api/v1/agents/${a.id}/reset_2fa`); toast(t.tReset2faDone); loadAgents(); } catch (err) { toast(err.message); }
        }));
      }
      actions.append(button(a.disabled ? t.tEnable : t.tDisable, a.disabled ? 'btn-outline' : 'btn-outline btn-danger', () => {
        if (!a.disabled && !confirm(t.tConfirmDisable)) return;
        update(a, { disabled: !a.disabled });
      }));
    }
    tr.append(who, role, chats, state, actionsCell);
    return tr;
  }
  async function update(a, change) {
    try { await api('PATCH', `/api/v1/agents/${a.id}`, change); toast(t.tSaved); } catch (err) { toast(err.message); }
    loadAgents();
  }
  const agentSearch = document.getElementById('agent-search');
  let team = [];
  function renderAgents() {
    const q = agentSearch.value.trim().toLowerCase();
    agentsBody.replaceChildren(...team.filter((a) => !q || `${a.display_name} ${a.email}`.toLowerCase().includes(q)).map(agentRow));
  }
  agentSearch.addEventListener('input', renderAgents);
  async function loadAgents() {
    team = (await api('GET', '/api/v1/agents')).agents;
    renderAgents();
  }
  const agentForm = document.getElementById('agent-form');
  agentForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = agentForm.elements;
    const errorBox = document.getElementById('agent-form-error');
    errorBox.hidden = true;
    const body = { email: f.email.value, role: f.role.value, max_concurrent_chats: Number(f.max_concurrent_chats.value) };
    if (f.display_name.value.trim()) body.display_name = f.display_name.value;
    try {
      const r = await api('POST', '/api/v1/agents', body);
      // With email the agent gets an invitation; without, the admin passes a password on.
      if (r.invited) { secretBox.hidden = true; toast(`${t.tInvited} ${r.agent.email}`); } else showSecret(`${r.agent.display_name} · ${r.agent.email}`, r.password);
      agentForm.reset();
      loadAgents();
    } catch (err) { showError(errorBox, agentForm, err); }
  });

  // ---- Quick replies ----
  const quickForm = document.getElementById('quick-form');
  const quickSubmit = document.getElementById('quick-submit');
  const quickCancel = document.getElementById('quick-cancel');
  const quickList = document.getElementById('quick-groups-list');
  let quick = [];
  function editQuick(r) {
    const f = quickForm.elements;
    f.id.value = r ? r.id : '';
    f.group.value = r ? r.group : '';
    f.title.value = r ? r.title : '';
    f.body.value = r ? r.body : '';
    quickSubmit.textContent = r ? quickSubmit.dataset.tSave : quickSubmit.dataset.tAdd;
    quickCancel.hidden = !r;
    if (r) f.title.focus();
  }
  quickCancel.addEventListener('click', () => editQuick(null));
  // Moving renumbers the group in its new order (only changed positions are sent).
  async function move(r, by) {
    const group = quick.filter((q) => q.group === r.group);
    const i = group.indexOf(r);
    if (!group[i + by]) return;
    [group[i], group[i + by]] = [group[i + by], group[i]];
    try {
      for (const [position, q] of group.entries()) {
        if (q.position !== position) await api('PATCH', `/api/v1/quick_replies/${q.id}`, { position });
      }
    } catch (err) { toast(err.message); }
    loadQuick();
  }
  function renderQuick() {
    const groups = new Map();
    for (const r of quick) { if (!groups.has(r.group)) groups.set(r.group, []); groups.get(r.group).push(r); }
    document.getElementById('quick-groups').replaceChildren(...[...groups.keys()].filter(Boolean).map((g) => { const o = el('option'); o.value = g; return o; }));
    if (!quick.length) { quickList.replaceChildren(el('p', 'muted', t.tEmpty)); return; }
    quickList.replaceChildren(...[...groups].map(([group, items]) => {
      const section = el('section', 'quick-group-block');
      section.append(el('h3', '', group || t.tUngrouped));
      const ul = el('ul', 'quick-admin-list');
      items.forEach((r, i) => {
        const li = el('li');
        const text = el('div', 'grow');
        text.append(el('strong', '', r.title), el('p', 'muted', r.body));
        const actions = el('div', 'row-actions');
        const up = button('↑', 'btn-ghost', () => move(r, -1)); up.disabled = i === 0; up.setAttribute('aria-label', `${t.tUp}: ${r.title}`);
        const down = button('↓', 'btn-ghost', () => move(r, 1)); down.disabled = i === items.length - 1; down.setAttribute('aria-label', `${t.tDown}: ${r.title}`);
        actions.append(up, down, button(t.tEdit, 'btn-ghost', () => editQuick(r)), button(t.tDelete, 'btn-ghost btn-danger', async () => {
          if (!confirm(t.tConfirmDelete)) return;
          try { await api('DELETE', `/api/v1/quick_replies/${r.id}`); } catch (err) { toast(err.message); }
          loadQuick();
        }));
        li.append(text, actions);
        ul.append(li);
      });
      section.append(ul);
      return section;
    }));
  }
  async function loadQuick() {
    quick = (await api('GET', '/api/v1/quick_replies')).quick_replies;
    renderQuick();
  }
  quickForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = quickForm.elements;
    const errorBox = document.getElementById('quick-form-error');
    errorBox.hidden = true;
    const body = { group: f.group.value, title: f.title.value, body: f.body.value };
    try {
      if (f.id.value) await api('PATCH', `/api/v1/quick_replies/${f.id.value}`, body);
      else await api('POST', '/api/v1/quick_replies', body);
      editQuick(null);
      toast(t.tSaved);
      loadQuick();
    } catch (err) { showError(errorBox, quickForm, err); }
  });

  // ---- Blacklist ----
  const blockBody = document.querySelector('#blacklist-table tbody');
  async function loadBlacklist() {
    const { entries } = await api('GET', '/api/v1/blacklist');
    if (!entries.length) { const tr = el('tr'); const td = el('td', 'muted', t.tEmpty); td.colSpan = 4; tr.append(td); blockBody.replaceChildren(tr); return; }
    blockBody.replaceChildren(...entries.map((b) => {
      const tr = el('tr');
      const what = el('td');
      what.append(b.ip ? el('code', '', b.ip) : el('span', '', `${b.visitor_name || ''} (${b.visitor_id})`));
      const actionsCell = el('td');
      const actions = el('div', 'row-actions');
      actionsCell.append(actions);
      actions.append(button(t.tUnblock, 'btn-outline', async () => {
        try { await api('DELETE', `/api/v1/blacklist/${b.id}`); } catch (err) { toast(err.message); }
        loadBlacklist();
      }));
      tr.append(what, el('td', '', b.reason), el('td', 'muted', `${b.created_by || ''} · ${when(b.created_at)}`), actionsCell);
      return tr;
    }));
  }
  const blockForm = document.getElementById('block-form');
  blockForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const errorBox = document.getElementById('block-form-error');
    errorBox.hidden = true;
    try {
      await api('POST', '/api/v1/blacklist', { ip: blockForm.elements.ip.value, reason: blockForm.elements.reason.value });
      blockForm.reset();
      loadBlacklist();
    } catch (err) { showError(errorBox, blockForm, err); }
  });

  // ---- Rich text: the welcome, offline and out-of-hours messages ----
  // A contenteditable box with a toolbar. The server sanitizes what is sent (and keeps the
  // same small set of elements); what it answers is shown through KefuContent.rich, which
  // rebuilds it node by node.
  document.execCommand('defaultParagraphSeparator', false, 'p');
  const TOOLS = [
    ['bold', t.tBold, 'B'], ['italic', t.tItalic, 'I'], ['underline', t.tUnderline, 'U'],
    ['insertUnorderedList', t.tBullets, '•'], ['insertOrderedList', t.tNumbers, '1.'],
    ['link', t.tLink, '🔗'], ['removeFormat', t.tUnformat, '⌀'],
  ];
  const SAFE_LINK = /^(https?:\/\/|mailto:|tel:)\S+$/i;
  const editors = {};
  for (const field of root.querySelectorAll('[data-rich]')) {
    const input = field.querySelector('.rich-input');
    const bar = el('div', 'rich-toolbar');
    bar.setAttribute('role', 'toolbar');
    bar.setAttribute('aria-label', `${field.querySelector('.field-label').textContent}: ${t.tToolbar}`);
    bar.setAttribute('aria-controls', input.id);
    const linkRow = el('div', 'rich-link');
    linkRow.hidden = true;
    const linkInput = el('input');
    linkInput.type = 'url';
    linkInput.placeholder = t.tLinkUrl;
    linkInput.setAttribute('aria-label', t.tLinkUrl);
    let savedRange = null;
    const closeLink = () => { linkRow.hidden = true; linkInput.value = ''; input.focus(); };
    const applyLink = () => {
      const url = linkInput.value.trim();
      if (!SAFE_LINK.test(url)) { linkInput.setAttribute('aria-invalid', 'true'); linkInput.focus(); return; }
      linkInput.removeAttribute('aria-invalid');
      const sel = getSelection();
      input.focus();
      if (savedRange) { sel.removeAllRanges(); sel.addRange(savedRange); }
      if (!savedRange || savedRange.collapsed) {
        // Nothing selected: the address becomes the link's text.
        const a = el('a', '', url);
        a.href = url;
        const range = savedRange || document.createRange();
        if (!savedRange) { range.selectNodeContents(input); range.collapse(false); }
        range.insertNode(a);
        range.setStartAfter(a);
        sel.removeAllRanges();
        sel.addRange(range);
      } else {
        document.execCommand('createLink', false, url);
      }
      closeLink();
    };
    linkInput.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') { e.preventDefault(); applyLink(); }
      if (e.key === 'Escape') { e.preventDefault(); closeLink(); }
    });
    linkRow.append(linkInput, button(t.tApply, 'btn-outline', applyLink), button(t.tCancel, 'btn-ghost', closeLink));
    for (const [command, label, mark] of TOOLS) {
      const b = el('button', `rich-tool tool-${command}`, mark);
      b.type = 'button';
      b.title = label;
      b.setAttribute('aria-label', label);
      // Keep the editor's selection while the button is pressed.
      b.addEventListener('mousedown', (e) => e.preventDefault());
      b.addEventListener('click', () => {
        if (command === 'link') {
          const sel = getSelection();
          savedRange = sel.rangeCount && input.contains(sel.anchorNode) ? sel.getRangeAt(0).cloneRange() : null;
          linkRow.hidden = false;
          linkInput.focus();
          return;
        }
        input.focus();
        document.execCommand(command);
        if (command === 'removeFormat') document.execCommand('unlink');
      });
      bar.append(b);
    }
    // Pasted text arrives as text: formatting from other sites is not carried in.
    input.addEventListener('paste', (e) => {
      e.preventDefault();
      document.execCommand('insertText', false, (e.clipboardData || window.clipboardData).getData('text/plain'));
    });
    input.addEventListener('drop', (e) => e.preventDefault());
    // An emptied editor is really empty, so its placeholder shows again.
    input.addEventListener('input', () => { if (!input.textContent.trim() && !input.querySelector('li')) input.replaceChildren(); });
    field.insertBefore(bar, input);
    field.insertBefore(linkRow, input);
    editors[field.dataset.rich] = {
      get: () => input.innerHTML,
      set: (html) => input.replaceChildren(...(html ? window.KefuContent.rich(html).childNodes : [])),
    };
  }

  // ---- Pictures: the logo and the service avatar, saved as soon as they are chosen ----
  const pictures = {};
  for (const field of root.querySelectorAll('[data-picture]')) {
    const name = field.dataset.picture;
    const preview = field.querySelector('.picture-preview');
    const pick = field.querySelector('[data-pick]');
    const remove = field.querySelector('[data-remove]');
    const file = field.querySelector('input[type=file]');
    const show = (url) => {
      preview.replaceChildren();
      if (url) { const img = el('img'); img.src = url; img.alt = ''; preview.append(img); }
      pick.textContent = url ? t.tReplace : t.tUpload;
      remove.textContent = t.tRemove;
      remove.hidden = !url;
    };
    const save = async (id) => {
      try { const s = await api('PATCH', '/api/v1/settings', { [name]: id }); show(s[`${name}_url`]); toast(t.tSaved); } catch (err) { toast(err.message); }
    };
    pick.addEventListener('click', () => file.click());
    file.addEventListener('change', async () => {
      const chosen = file.files[0];
      file.value = '';
      if (!chosen) return;
      try { await save((await upload(chosen)).id); } catch (err) { toast(err.message); }
    });
    remove.addEventListener('click', () => save(''));
    pictures[name] = show;
  }

  // ---- Chat & widget ----
  const chatForm = document.getElementById('chat-form');
  const TEXT = ['service_name', 'widget_button_text', 'notification_email', 'landing_url'];
  const RICH_FIELDS = ['welcome_message', 'offline_message'];
  // Business hours: one stretch a day here (the API takes up to four).
  const week = document.getElementById('hours-week');
  const dayNames = week.dataset.days.split(',');
  const dayRows = dayNames.map((name, i) => {
    const row = el('div', 'hours-day');
    const open = el('input'); open.type = 'checkbox'; open.id = `day-${i}`;
    const label = el('label', 'day-name', name); label.htmlFor = open.id;
    const from = el('input'); from.type = 'time'; from.setAttribute('aria-label', `${name} from`);
    const to = el('input'); to.type = 'time'; to.setAttribute('aria-label', `${name} to`);
    const closed = el('span', 'muted', week.dataset.tClosed);
    const sync = () => { from.hidden = to.hidden = !open.checked; closed.hidden = open.checked; };
    open.addEventListener('change', () => { if (open.checked && !from.value) { from.value = '09:00'; to.value = '18:00'; } sync(); });
    row.append(open, label, from, to, closed);
    week.append(row);
    return { open, from, to, sync };
  });
  // The pre-chat form: a row per field (type, key for the merchant's own, labels in both
  // languages, required, choices for a select).
  const prechatBox = document.getElementById('prechat-fields');
  const pt = prechatBox.dataset;
  const KINDS = ['name', 'email', 'phone', 'text', 'select'];
  const kindNames = pt.tKinds.split(',');
  function prechatRow(field) {
    const row = el('div', 'prechat-field');
    const labelled = (text, control) => { const l = el('label', '', text); l.append(control); return l; };
    const kind = el('select');
    KINDS.forEach((k, i) => kind.append(Object.assign(el('option', '', kindNames[i] || k), { value: k })));
    kind.value = field.kind || 'text';
    kind.dataset.role = 'kind';
    const key = Object.assign(el('input'), { value: field.key || '', maxLength: 32, spellcheck: false, placeholder: 'order_number' });
    key.dataset.role = 'key';
    const en = Object.assign(el('input'), { value: (field.label && field.label.en) || '', maxLength: 80 });
    en.dataset.role = 'en';
    const zh = Object.assign(el('input'), { value: (field.label && field.label['zh-CN']) || '', maxLength: 80 });
    zh.dataset.role = 'zh';
    const required = Object.assign(el('input'), { type: 'checkbox', checked: !!field.required });
    required.dataset.role = 'required';
    const options = Object.assign(el('textarea'), { rows: 3, value: (field.options || []).map((o) => (o['zh-CN'] && o['zh-CN'] !== o.en ? `${o.en} | ${o['zh-CN']}` : o.en)).join('\n') });
    options.dataset.role = 'options';
    const keyLabel = labelled(pt.tKey, key);
    const optionsLabel = labelled(pt.tOptions, options);
    optionsLabel.classList.add('wide');
    const requiredLabel = el('label', 'check');
    requiredLabel.append(required, ` ${pt.tRequired}`);
    const remove = el('button', 'btn btn-ghost btn-sm', pt.tRemove);
    remove.type = 'button';
    remove.addEventListener('click', () => row.remove());
    const sync = () => { keyLabel.hidden = !['text', 'select'].includes(kind.value); optionsLabel.hidden = kind.value !== 'select'; };
    kind.addEventListener('change', sync);
    row.append(labelled(pt.tKind, kind), keyLabel, labelled(pt.tLabelEn, en), labelled(pt.tLabelZh, zh), requiredLabel, remove, optionsLabel);
    sync();
    prechatBox.append(row);
    return row;
  }
  function prechatValue() {
    const fields = [...prechatBox.querySelectorAll('.prechat-field')].map((row) => {
      const v = (role) => row.querySelector(`[data-role="${role}"]`);
      const field = { kind: v('kind').value, label: { en: v('en').value, 'zh-CN': v('zh').value }, required: v('required').checked };
      if (['text', 'select'].includes(field.kind)) field.key = v('key').value.trim();
      if (field.kind === 'select') {
        field.options = v('options').value.split('\n').map((line) => line.trim()).filter(Boolean).map((line) => {
          const [a, b] = line.split('|').map((x) => x.trim());
          return { en: a, 'zh-CN': b || '' };
        });
      }
      return field;
    });
    return { enabled: chatForm.elements.prechat_enabled.checked, fields };
  }
  document.getElementById('prechat-add').addEventListener('click', () => {
    prechatRow({ kind: 'text' }).querySelector('select').focus();
  });
  function fillChat(s) {
    const f = chatForm.elements;
    f.prechat_enabled.checked = s.prechat_form.enabled;
    prechatBox.replaceChildren();
    s.prechat_form.fields.forEach(prechatRow);
    const h = s.business_hours;
    f.hours_enabled.checked = h.enabled;
    f.time_zone.value = h.time_zone;
    editors.out_of_hours_message.set(h.out_of_hours_message || '');
    dayRows.forEach((r, i) => {
      const stretch = h.days[i] && h.days[i][0];
      r.open.checked = !!stretch;
      r.from.value = stretch ? stretch.from : '';
      r.to.value = stretch ? (stretch.to === '24:00' ? '23:59' : stretch.to) : '';
      r.sync();
    });
    for (const k of TEXT) f[k].value = s[k] || '';
    for (const k of RICH_FIELDS) editors[k].set(s[k] || '');
    pictures.logo(s.logo_url);
    pictures.avatar(s.avatar_url);
    f.widget_color.value = s.widget_color;
    f.widget_position.value = s.widget_position;
    f.default_lang.value = s.default_lang;
    f.allowed_widget_domains.value = s.allowed_widget_domains.join('\n');
    f.typing_preview.checked = s.typing_preview;
    f.unanswered_email_minutes.value = s.unanswered_email_minutes;
    f.auto_away_minutes.value = s.auto_away_minutes;
    f.auto_resolve_minutes.value = s.auto_resolve_minutes;
    f.reopen_hours.value = s.reopen_hours;
  }
  chatForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = chatForm.elements;
    const errorBox = document.getElementById('chat-form-error');
    errorBox.hidden = true;
    const body = {
      widget_color: f.widget_color.value, widget_position: f.widget_position.value, default_lang: f.default_lang.value,
      allowed_widget_domains: f.allowed_widget_domains.value.split(/[\s,]+/).filter(Boolean), typing_preview: f.typing_preview.checked,
      unanswered_email_minutes: Number(f.unanswered_email_minutes.value) || 0,
      auto_away_minutes: Number(f.auto_away_minutes.value) || 0,
      auto_resolve_minutes: Number(f.auto_resolve_minutes.value) || 0,
      reopen_hours: Number(f.reopen_hours.value) || 0,
      prechat_form: prechatValue(),
    };
    for (const k of TEXT) body[k] = f[k].value;
    for (const k of RICH_FIELDS) body[k] = editors[k].get();
    body.business_hours = {
      enabled: f.hours_enabled.checked, time_zone: f.time_zone.value.trim(), out_of_hours_message: editors.out_of_hours_message.get(),
      days: dayRows.map((r) => (r.open.checked ? [{ from: r.from.value, to: r.to.value === '23:59' ? '24:00' : r.to.value }] : [])),
    };
    try { fillChat(await api('PATCH', '/api/v1/settings', body)); toast(t.tSaved); } catch (err) { showError(errorBox, chatForm, err); }
  });

  // ---- Integrations: single sign-on ----
  const ssoForm = document.getElementById('sso-form');
  const ssoState = document.getElementById('sso-secret-state');
  function fillSso(s) {
    ssoForm.elements.sso_ip_whitelist.value = s.sso_ip_whitelist.join('\n');
    ssoForm.elements.sso_satisfies_2fa.checked = s.sso_satisfies_2fa;
    ssoState.textContent = s.sso_secret_set ? ssoState.dataset.tSet : ssoState.dataset.tUnset;
  }
  ssoForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const errorBox = document.getElementById('sso-form-error');
    errorBox.hidden = true;
    const list = ssoForm.elements.sso_ip_whitelist.value.split(/[\s,]+/).filter(Boolean);
    const body = { sso_ip_whitelist: list };
    // The owner's call alone (the box is disabled for everyone else).
    if (!ssoForm.elements.sso_satisfies_2fa.disabled) body.sso_satisfies_2fa = ssoForm.elements.sso_satisfies_2fa.checked;
    try { fillSso(await api('PATCH', '/api/v1/settings', body)); toast(t.tSaved); } catch (err) { showError(errorBox, ssoForm, err); }
  });
  const ssoSecret = document.getElementById('sso-secret');
  ssoSecret.addEventListener('click', async () => {
    if (!confirm(ssoSecret.dataset.tConfirm)) return;
    try {
      const { secret } = await api('POST', '/api/v1/settings/sso_secret');
      document.getElementById('sso-secret-value').value = secret;
      document.getElementById('sso-secret-box').hidden = false;
      ssoState.textContent = ssoState.dataset.tSet;
    } catch (err) { toast(err.message); }
  });

  // ---- Team: two-step verification for everyone ----
  const securityForm = document.getElementById('security-form');
  securityForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const s = await api('PATCH', '/api/v1/settings', { require_2fa: securityForm.elements.require_2fa.checked });
      securityForm.elements.require_2fa.checked = s.require_2fa;
      toast(t.tSaved);
    } catch (err) { toast(err.message); }
  });

  // ---- Integrations: visitor identity verification ----
  const idForm = document.getElementById('identity-form');
  const idState = document.getElementById('identity-state');
  const idRotate = document.getElementById('identity-rotate');
  const idBox = document.getElementById('identity-secret-box');
  let idSecretSet = false;
  function fillIdentity(s) {
    idSecretSet = s.identity_secret_set;
    idForm.elements.identity_required.checked = s.identity_required;
    idForm.elements.identity_required.disabled = !idSecretSet;
    document.getElementById('identity-show').hidden = !idSecretSet;
    document.getElementById('identity-now').closest('label').hidden = !idSecretSet;
    idRotate.textContent = idSecretSet ? idRotate.dataset.tRotate : idRotate.dataset.tNew;
    if (!idSecretSet) idState.textContent = idState.dataset.tUnset;
  }
  function showIdentitySecret(out) {
    document.getElementById('identity-secret-value').value = out.secret;
    idBox.hidden = !out.secret;
    const until = out.previous_valid_until ? when(out.previous_valid_until) : '';
    idState.textContent = out.secret ? (until ? `${idState.dataset.tSet} ${idState.dataset.tPrevious.replace('{until}', until)}` : idState.dataset.tSet) : idState.dataset.tUnset;
  }
  document.getElementById('identity-show').addEventListener('click', async () => {
    try { showIdentitySecret(await api('GET', '/api/v1/settings/identity')); } catch (err) { toast(err.message); }
  });
  idRotate.addEventListener('click', async () => {
    const now = document.getElementById('identity-now').checked;
    if (idSecretSet && !confirm(now ? idRotate.dataset.tConfirmNow : idRotate.dataset.tConfirm)) return;
    try {
      showIdentitySecret(await api('POST', '/api/v1/settings/identity_secret', now ? { keep_previous_hours: 0 } : {}));
      fillIdentity(await api('GET', '/api/v1/settings'));
      toast(t.tSaved);
    } catch (err) { toast(err.message); }
  });
  idForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const errorBox = document.getElementById('identity-form-error');
    errorBox.hidden = true;
    try { fillIdentity(await api('PATCH', '/api/v1/settings', { identity_required: idForm.elements.identity_required.checked })); toast(t.tSaved); } catch (err) { showError(errorBox, idForm, err); }
  });

  // ---- Integrations: webhooks ----
  const hookForm = document.getElementById('webhook-form');
  const hookBody = document.querySelector('#webhooks-table tbody');
  const hookLog = document.getElementById('webhook-log');
  const ht = hookForm.dataset;
  let hookEvents = [];
  function eventChoices(events) {
    const box = document.getElementById('webhook-events');
    box.replaceChildren(...events.map((e) => {
      const label = el('label', 'check');
      const input = el('input');
      input.type = 'checkbox'; input.name = 'events'; input.value = e;
      label.append(input, ` ${e}`);
      return label;
    }));
  }
  function showHookSecret(hook) {
    document.getElementById('webhook-secret-title').textContent = `${ht.tSecret} · ${hook.url}`;
    document.getElementById('webhook-secret-value').value = hook.secret;
    document.getElementById('webhook-secret-box').hidden = false;
  }
  async function showLog(hook) {
    const { deliveries } = await api('GET', `/api/v1/webhooks/${hook.id}/deliveries?limit=20`);
    document.getElementById('webhook-log-title').textContent = `${ht.tLog} · ${hook.url}`;
    const body = hookLog.querySelector('tbody');
    if (!deliveries.length) { const tr = el('tr'); const td = el('td', 'muted', ht.tNoDeliveries); td.colSpan = 5; tr.append(td); body.replaceChildren(tr); }
    else body.replaceChildren(...deliveries.map((d) => {
      const tr = el('tr');
      const status = el('span', `badge badge-delivery-${d.status}`, ht[`t${d.status[0].toUpperCase()}${d.status.slice(1)}`] || d.status);
      const statusCell = el('td'); statusCell.append(status);
      const answer = d.last_status_code ? String(d.last_status_code) : (d.last_error || '');
      tr.append(el('td', 'muted', when(d.created_at)), el('td', '', d.event), statusCell, el('td', '', String(d.attempts)), el('td', 'muted', answer));
      return tr;
    }));
    hookLog.hidden = false;
  }
  async function loadHooks() {
    const { webhooks, events } = await api('GET', '/api/v1/webhooks');
    if (!hookEvents.length) { hookEvents = events; eventChoices(events); }
    if (!webhooks.length) { const tr = el('tr'); const td = el('td', 'muted', t.tEmpty); td.colSpan = 4; tr.append(td); hookBody.replaceChildren(tr); return; }
    hookBody.replaceChildren(...webhooks.map((h) => {
      const tr = el('tr');
      const url = el('td');
      url.append(el('code', 'block', h.url), h.description ? el('small', 'muted block', h.description) : '');
      const on = el('input');
      on.type = 'checkbox'; on.checked = h.enabled; on.setAttribute('aria-label', `${h.url}: ${ht.tOn}`);
      on.addEventListener('change', async () => {
        try { await api('PATCH', `/api/v1/webhooks/${h.id}`, { enabled: on.checked }); toast(t.tSaved); } catch (err) { toast(err.message); on.checked = !on.checked; }
      });
      const onCell = el('td'); onCell.append(on);
      const actionsCell = el('td');
      const actions = el('div', 'row-actions');
      actionsCell.append(actions);
      actions.append(
        button(ht.tTest, 'btn-outline', async () => { try { await api('POST', `/api/v1/webhooks/${h.id}/test`); toast(ht.tTested); setTimeout(() => showLog(h), 1500); } catch (err) { toast(err.message); } }),
        button(ht.tLog, 'btn-ghost', () => showLog(h)),
        button(ht.tSecret, 'btn-ghost', () => showHookSecret(h)),
        button(t.tDelete, 'btn-ghost btn-danger', async () => {
          if (!confirm(t.tConfirmDelete)) return;
          try { await api('DELETE', `/api/v1/webhooks/${h.id}`); hookLog.hidden = true; } catch (err) { toast(err.message); }
          loadHooks();
        }),
      );
      tr.append(url, el('td', 'muted', h.events.join(', ')), onCell, actionsCell);
      return tr;
    }));
  }
  hookForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const errorBox = document.getElementById('webhook-form-error');
    errorBox.hidden = true;
    const f = hookForm.elements;
    const events = [...hookForm.querySelectorAll('input[name=events]:checked')].map((i) => i.value);
    try {
      const hook = await api('POST', '/api/v1/webhooks', { url: f.url.value, events, description: f.description.value });
      hookForm.reset();
      showHookSecret(hook);
      loadHooks();
    } catch (err) { showError(errorBox, hookForm, err); }
  });

  // ---- Integrations: API tokens ----
  const tokenForm = document.getElementById('token-form');
  const tokenTable = document.getElementById('tokens-table');
  const tokenBody = tokenTable.querySelector('tbody');
  const tt = tokenTable.dataset;
  async function loadTokens() {
    const { tokens } = await api('GET', '/api/v1/api_tokens');
    if (!tokens.length) { const tr = el('tr'); const td = el('td', 'muted', t.tEmpty); td.colSpan = 5; tr.append(td); tokenBody.replaceChildren(tr); return; }
    const scopes = Object.fromEntries([...tokenForm.elements.scope.options].map((o) => [o.value, o.textContent]));
    tokenBody.replaceChildren(...tokens.map((tok) => {
      const tr = el('tr');
      const name = el('td');
      name.append(el('strong', 'block', tok.name), el('code', 'muted', `${tok.prefix}…`));
      const actions = el('td');
      actions.append(button(tt.tRevoke, 'btn-ghost btn-danger', async () => {
        if (!confirm(tt.tConfirm)) return;
        try { await api('DELETE', `/api/v1/api_tokens/${tok.id}`); } catch (err) { toast(err.message); }
        loadTokens();
      }));
      tr.append(name, el('td', '', scopes[tok.scope] || tok.scope),
        el('td', 'muted', `${when(tok.created_at)}${tok.created_by ? ` · ${tok.created_by}` : ''}`),
        el('td', 'muted', tok.last_used_at ? when(tok.last_used_at) : tt.tNever), actions);
      return tr;
    }));
  }
  tokenForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const errorBox = document.getElementById('token-form-error');
    errorBox.hidden = true;
    const f = tokenForm.elements;
    try {
      const created = await api('POST', '/api/v1/api_tokens', { name: f.name.value, scope: f.scope.value });
      tokenForm.reset();
      document.getElementById('token-value').value = created.token;
      document.getElementById('token-box').hidden = false;
      loadTokens();
    } catch (err) { showError(errorBox, tokenForm, err); }
  });

  // ---- Auto-replies ----
  const autoBody = document.querySelector('#auto-table tbody');
  async function loadAuto() {
    const { auto_replies: rules } = await api('GET', '/api/v1/auto_replies');
    if (!rules.length) { const tr = el('tr'); const td = el('td', 'muted', t.tEmpty); td.colSpan = 5; tr.append(td); autoBody.replaceChildren(tr); return; }
    autoBody.replaceChildren(...rules.map((r) => {
      const tr = el('tr');
      const on = el('input');
      on.type = 'checkbox'; on.checked = r.enabled;
      on.setAttribute('aria-label', `${r.keyword}: ${t.tEnable}`);
      on.addEventListener('change', async () => {
        try { await api('PATCH', `/api/v1/auto_replies/${r.id}`, { enabled: on.checked }); toast(t.tSaved); } catch (err) { toast(err.message); on.checked = !on.checked; }
      });
      const onCell = el('td');
      onCell.append(on);
      const actionsCell = el('td');
      const actions = el('div', 'row-actions');
      actionsCell.append(actions);
      actions.append(button(t.tDelete, 'btn-ghost btn-danger', async () => {
        if (!confirm(t.tConfirmDelete)) return;
        try { await api('DELETE', `/api/v1/auto_replies/${r.id}`); } catch (err) { toast(err.message); }
        loadAuto();
      }));
      tr.append(el('td', '', r.keyword), el('td', 'muted', r.match_kind === 'exact' ? t.tMatchExact : t.tMatchContains), el('td', '', r.reply), onCell, actionsCell);
      return tr;
    }));
  }
  const autoForm = document.getElementById('auto-form');
  autoForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = autoForm.elements;
    const errorBox = document.getElementById('auto-form-error');
    errorBox.hidden = true;
    try {
      await api('POST', '/api/v1/auto_replies', { keyword: f.keyword.value, match_kind: f.match_kind.value, reply: f.reply.value });
      autoForm.reset();
      loadAuto();
    } catch (err) { showError(errorBox, autoForm, err); }
  });

  // ---- Statistics ----
  const statsPanel = document.getElementById('panel-stats');
  const st = statsPanel.dataset;
  const statsForm = document.getElementById('stats-form');
  const SVG = 'http://www.w3.org/2000/svg';
  const svgEl = (tag, attrs) => { const e = document.createElementNS(SVG, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
  const duration = (s) => (s === null || s === undefined ? st.tNone : s < 60 ? `${Math.round(s)} s` : s < 3600 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`);
  // A bar chart of one value per day (or any labelled values), with its own scale.
  function barChart(days, key, label, opts = {}) {
    const w = 560, h = 180, pad = { l: 34, r: 8, t: 10, b: 24 };
    const max = Math.max(1, ...days.map((d) => d[key]));
    const step = (w - pad.l - pad.r) / days.length;
    const svg = svgEl('svg', { viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': label, class: 'bars' });
    for (const frac of [0, 0.5, 1]) {
      const y = pad.t + (h - pad.t - pad.b) * (1 - frac);
      svg.append(svgEl('line', { x1: pad.l, x2: w - pad.r, y1: y, y2: y, class: 'grid' }));
      const t = svgEl('text', { x: pad.l - 6, y: y + 4, class: 'axis', 'text-anchor': 'end' }); t.textContent = Number.isInteger(max * frac) ? max * frac : ''; svg.append(t);
    }
    days.forEach((d, i) => {
      const bh = (h - pad.t - pad.b) * (d[key] / max);
      const bar = svgEl('rect', { x: pad.l + i * step + step * 0.15, y: h - pad.b - bh, width: step * 0.7, height: Math.max(bh, 0), rx: 3, class: opts.barClass || 'bar' });
      const name = opts.label ? opts.label(d) : d.date;
      const title = svgEl('title', {}); title.textContent = `${name}: ${d[key]}`; bar.append(title);
      svg.append(bar);
      if (days.length <= 16 || i % Math.ceil(days.length / 8) === 0) {
        const t = svgEl('text', { x: pad.l + i * step + step / 2, y: h - 6, class: 'axis', 'text-anchor': 'middle' }); t.textContent = opts.label ? name : d.date.slice(5); svg.append(t);
      }
    });
    return svg;
  }
  function kpi(title, value, sub) {
    const box = el('div', 'kpi');
    box.append(el('span', 'muted', title), el('strong', '', value), el('small', 'muted', sub));
    return box;
  }
  // Busiest hours: 7 rows (Monday first) of 24 cells, darker for more conversations.
  function heatmap(hours) {
    const days = st.tWeekdays.split(',');
    const cell = 22, left = 44, top = 16, w = left + 24 * cell + 4, h = top + 7 * cell + 4;
    const max = Math.max(1, ...hours.flat());
    const svg = svgEl('svg', { viewBox: `0 0 ${w} ${h}`, role: 'img', 'aria-label': st.tHours, class: 'heatmap' });
    for (let hour = 0; hour < 24; hour += 3) {
      const t = svgEl('text', { x: left + hour * cell + cell / 2, y: 11, class: 'axis', 'text-anchor': 'middle' }); t.textContent = String(hour).padStart(2, '0'); svg.append(t);
    }
    hours.forEach((row, d) => {
      const t = svgEl('text', { x: left - 8, y: top + d * cell + cell / 2 + 4, class: 'axis', 'text-anchor': 'end' }); t.textContent = days[d]; svg.append(t);
      row.forEach((n, hour) => {
        const alpha = n ? 0.15 + 0.85 * (n / max) : 0;
        const r = svgEl('rect', { x: left + hour * cell, y: top + d * cell, width: cell, height: cell, rx: 4, fill: n ? `rgba(79, 70, 229, ${alpha.toFixed(2)})` : '#f1f5f9' });
        const title = svgEl('title', {}); title.textContent = `${days[d]} ${String(hour).padStart(2, '0')}:00 · ${n}`; r.append(title);
        svg.append(r);
      });
    });
    return svg;
  }
  const pct = (x) => `${Math.round(x * 100)}%`;
  const stars = (avg) => (avg === null || avg === undefined ? st.tNone : `${avg.toFixed(1)} ★`);
  // The quick ranges end today (the merchant's today comes back as `to`).
  for (const b of statsPanel.querySelectorAll('[data-days]')) {
    b.addEventListener('click', () => {
      const f = statsForm.elements;
      const to = f.to.value ? new Date(`${f.to.value}T00:00:00`) : new Date();
      const from = new Date(to);
      from.setDate(from.getDate() - Number(b.dataset.days) + 1);
      const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
      f.from.value = iso(from); f.to.value = iso(to);
      for (const o of statsPanel.querySelectorAll('[data-days]')) o.setAttribute('aria-pressed', String(o === b));
      loadStats();
    });
  }
  const exportMenu = document.getElementById('stats-export');
  exportMenu.addEventListener('keydown', (e) => { if (e.key === 'Escape') { exportMenu.open = false; exportMenu.querySelector('summary').focus(); } });
  for (const a of exportMenu.querySelectorAll('a')) a.addEventListener('click', () => { exportMenu.open = false; });
  async function loadStats() {
    const f = statsForm.elements;
    const q = f.from.value && f.to.value ? `?from=${f.from.value}&to=${f.to.value}` : '';
    const errorBox = document.getElementById('stats-error');
    errorBox.hidden = true;
    let s;
    try { s = await api('GET', `/api/v1/stats${q}`); } catch (err) { showError(errorBox, statsForm, err); return; }
    f.from.value = s.from; f.to.value = s.to;
    for (const a of exportMenu.querySelectorAll('a')) a.href = `/api/v1/stats/export?from=${s.from}&to=${s.to}&table=${a.dataset.table}`;
    document.getElementById('stats-zone').textContent = `${document.getElementById('stats-zone').dataset.label} ${s.time_zone}`;
    const total = (k) => s.days.reduce((a, d) => a + d[k], 0);
    document.getElementById('stats-kpis').replaceChildren(
      kpi(st.tConversations, String(total('conversations')), `${s.from} – ${s.to}`),
      kpi(st.tMessages, String(total('messages')), ''),
      kpi(st.tFirstResponse, duration(s.first_response.median_seconds), `${st.tMedian} · p90 ${duration(s.first_response.p90_seconds)}`),
      kpi(st.tResolution, duration(s.resolution.median_seconds), `${st.tMedian} · p90 ${duration(s.resolution.p90_seconds)}`),
      kpi(st.tCsat, stars(s.csat.average), [st.tRatings.replace('{n}', String(s.csat.count)), s.csat.satisfied_share === null ? '' : st.tSatisfied.replace('{pct}', pct(s.csat.satisfied_share))].filter(Boolean).join(' · ')),
      kpi(st.tMissed, String(s.missed), s.conversations ? `${pct(s.missed / s.conversations)} · ${st.tMissedHelp}` : st.tMissedHelp),
    );
    document.getElementById('chart-conversations').replaceChildren(barChart(s.days, 'conversations', st.tConversations));
    document.getElementById('chart-messages').replaceChildren(barChart(s.days, 'messages', st.tMessages));
    document.getElementById('chart-missed').replaceChildren(barChart(s.days, 'missed', st.tMissed, { barClass: 'bar bar-warn' }));
    const scores = s.csat.distribution.map((n, i) => ({ score: i + 1, n }));
    document.getElementById('chart-csat').replaceChildren(barChart(scores, 'n', st.tDistribution, { label: (d) => st.tStars.replace('{n}', String(d.score)), barClass: 'bar bar-alt' }));
    document.getElementById('chart-hours').replaceChildren(heatmap(s.hours));
    document.querySelector('#stats-agents tbody').replaceChildren(...s.agents.map((a) => {
      const tr = el('tr');
      const csat = a.ratings ? `${stars(a.csat_average)} (${a.ratings})` : st.tNone;
      tr.append(el('td', '', a.name), el('td', '', String(a.conversations)), el('td', '', String(a.messages)), el('td', '', duration(a.median_first_response_seconds)),
        el('td', '', duration(a.p90_first_response_seconds)), el('td', '', String(a.resolved)), el('td', '', duration(a.median_resolution_seconds)), el('td', '', csat));
      return tr;
    }));
  }
  statsForm.addEventListener('submit', (e) => { e.preventDefault(); loadStats(); });
  document.getElementById('tab-stats').addEventListener('click', loadStats);
  if (!statsPanel.hidden) loadStats();

  // ---- Audit log ----
  const auditBody = document.querySelector('#audit-table tbody');
  const auditSearch = document.getElementById('audit-search');
  const auditMore = document.getElementById('audit-more');
  let auditBefore = null;
  async function loadAudit(more) {
    const q = auditSearch.value.trim();
    const params = new URLSearchParams({ limit: '50' });
    if (q) params.set('q', q);
    if (more && auditBefore) params.set('before', auditBefore);
    const page = await api('GET', `/api/v1/audit?${params}`);
    const rows = page.entries.map((e) => {
      const tr = el('tr');
      tr.append(el('td', 'muted', when(e.created_at)), el('td', '', e.agent_name), el('td'), el('td', '', e.target));
      tr.children[2].append(el('code', '', e.action));
      return tr;
    });
    if (more) auditBody.append(...rows); else auditBody.replaceChildren(...rows);
    auditBefore = page.next_before;
    auditMore.hidden = !auditBefore;
  }
  let auditTimer = null;
  auditSearch.addEventListener('input', () => { clearTimeout(auditTimer); auditTimer = setTimeout(() => loadAudit(false), 250); });
  auditMore.addEventListener('click', () => loadAudit(true));
  document.getElementById('tab-audit').addEventListener('click', () => loadAudit(false));
  if (!document.getElementById('panel-audit').hidden) loadAudit(false);

  loadAgents();
  loadQuick();
  loadBlacklist();
  loadAuto();
  api('GET', '/api/v1/settings').then((s) => { fillChat(s); fillSso(s); fillIdentity(s); securityForm.elements.require_2fa.checked = s.require_2fa; });
  loadHooks().catch((err) => toast(err.message));
  loadTokens().catch((err) => toast(err.message));
})();
