// The Conversations page (/app/conversations): every conversation with filters, paged as
// the list scrolls, and the agent's saved views (a name for a set of filters). Rows open
// the conversation in the workspace. Data is shown as text nodes only.
(() => {
  'use strict';

  const root = document.getElementById('conversations');
  if (!root) return;
  const { el, since, full } = window.KefuDom;
  const { api, toast } = window.KefuApp;
  const t = root.dataset;
  const fill = (template, values) => template.replace(/\{(\w+)\}/g, (_, k) => (k in values ? values[k] : `{${k}}`));
  const form = document.getElementById('conv-filters');
  const rows = document.getElementById('conv-rows');
  const empty = document.getElementById('conv-empty');
  const more = document.getElementById('conv-more');
  const count = document.getElementById('conv-count');
  const errorBox = document.getElementById('conv-error');
  const viewsList = document.getElementById('saved-views');
  const heads = [...root.querySelectorAll('.conv-table th')].map((th) => th.textContent.trim());
  let before = null;
  let shown = 0;
  let generation = 0;

  function showError(err) {
    errorBox.textContent = err ? err.message : '';
    errorBox.hidden = !err;
  }

  // The form as its own query (what a saved view keeps and the address bar shows).
  function formQuery() {
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v && !(k === 'status' && v === 'active')) p.set(k, v);
    return p;
  }
  function setForm(query) {
    form.reset();
    const p = new URLSearchParams(query);
    for (const field of form.elements) {
      if (!field.name || !p.has(field.name)) continue;
      if (field.type === 'checkbox') field.checked = p.get(field.name) === 'true';
      else field.value = p.get(field.name);
    }
  }
  // The form as the API's query.
  function apiQuery() {
    const p = formQuery();
    const who = p.get('assignee');
    p.delete('assignee');
    if (who === 'me') p.set('view', 'mine');
    else if (who === 'none') p.set('view', 'unassigned');
    else { p.set('view', 'all'); if (who) p.set('assignee', who); }
    if (!p.has('status')) p.set('status', 'active');
    return p;
  }

  function timeCell(at) {
    const td = el('td');
    if (!at) return td;
    const node = el('time', '', since(at));
    node.dateTime = at;
    node.title = full(at);
    td.append(node);
    return td;
  }

  function row(c) {
    const tr = el('tr', 'conv-row');
    const who = el('td', 'contact-name');
    const link = el('a', 'name-text', c.visitor_name);
    link.href = `/app#c=${c.id}`;
    link.setAttribute('aria-label', fill(t.tOpen, { name: c.visitor_name }));
    who.append(link);
    if (c.left_offline_at) who.append(el('span', 'badge badge-left', t.tLeft));
    const status = el('td');
    status.append(el('span', `badge badge-status-${c.status}`, t[`tStatus${c.status[0].toUpperCase()}${c.status.slice(1)}`] || c.status));
    const last = el('td', 'conv-last');
    last.append(el('span', 'name-text block', c.last_message || ''));
    if (c.unread > 0) last.append(el('span', 'unread-count', String(c.unread)));
    const rating = el('td', '', c.rating ? `★ ${c.rating}` : '');
    if (c.rating) rating.title = fill(t.tStars, { n: c.rating });
    const cells = [who, status, el('td', 'name-text', c.agent_name || t.tUnassigned), last, rating, timeCell(c.created_at), timeCell(c.last_message_at)];
    // Column names, shown before the values when the table is cards (phones).
    cells.forEach((cell, i) => { if (i >= 2 && i !== 3) cell.dataset.label = heads[i]; });
    tr.append(...cells);
    // The whole row opens the conversation (the link stays the keyboard's way in).
    tr.addEventListener('click', (e) => { if (!e.target.closest('a')) location.href = link.href; });
    return tr;
  }

  async function load(reset) {
    const mine = reset ? ++generation : generation;
    if (reset) { before = null; shown = 0; }
    const p = apiQuery();
    if (before) p.set('before', before);
    p.set('limit', '50');
    more.disabled = true;
    more.textContent = t.tLoading;
    try {
      const page = await api('GET', `/api/v1/conversations?${p}`);
      if (mine !== generation) return;
      if (reset) rows.replaceChildren();
      rows.append(...page.conversations.map(row));
      shown += page.conversations.length;
      before = page.next_before || null;
      empty.textContent = formQuery().toString() ? t.tEmpty : t.tNoneYet;
      empty.hidden = shown > 0;
      count.textContent = shown ? fill(t.tCount, { n: shown }) : '';
      more.hidden = !before;
      showError(null);
    } catch (err) {
      showError(err);
    } finally {
      more.disabled = false;
      more.textContent = more.dataset.label;
    }
  }

  function markView() {
    const current = formQuery().toString();
    for (const chip of viewsList.querySelectorAll('.view-chip')) chip.setAttribute('aria-pressed', String(chip.dataset.query === current));
  }

  function refresh() {
    const q = formQuery().toString();
    history.replaceState(null, '', q ? `?${q}` : location.pathname);
    markView();
    load(true);
  }

  function viewChip(v) {
    const li = el('li');
    const chip = el('button', 'view-chip', v.name);
    chip.type = 'button';
    chip.dataset.query = v.query;
    const x = el('button', 'view-remove', '×');
    x.type = 'button';
    x.setAttribute('aria-label', fill(t.tDeleteView, { name: v.name }));
    x.addEventListener('click', async () => {
      try { await api('DELETE', `/api/v1/views/${v.id}`); li.remove(); } catch (err) { showError(err); }
    });
    li.append(chip, x);
    return li;
  }

  async function loadViews() {
    try {
      const { views } = await api('GET', '/api/v1/views');
      viewsList.append(...views.map(viewChip));
      markView();
    } catch (err) { showError(err); }
  }

  viewsList.addEventListener('click', (e) => {
    const chip = e.target.closest('.view-chip');
    if (!chip) return;
    setForm(chip.dataset.query);
    refresh();
  });
  document.getElementById('save-view').addEventListener('click', async () => {
    const name = (prompt(t.tViewName) || '').trim();
    if (!name) return;
    try {
      const view = await api('POST', '/api/v1/views', { name, query: formQuery().toString() });
      viewsList.append(viewChip(view));
      markView();
      toast(t.tViewSaved);
    } catch (err) { showError(err); }
  });

  async function loadChoices() {
    const [agents, tags] = await Promise.all([
      api('GET', '/api/v1/agents').catch(() => ({ agents: [] })),
      api('GET', '/api/v1/tags').catch(() => ({ tags: [] })),
    ]);
    const who = form.elements.assignee;
    for (const a of agents.agents) {
      if (a.disabled || String(a.id) === t.agentId) continue;
      const o = el('option', '', a.display_name);
      o.value = String(a.id);
      who.append(o);
    }
    for (const tag of tags.tags) {
      const o = el('option', '', tag.name);
      o.value = tag.name;
      form.elements.tag.append(o);
    }
  }

  let typing;
  form.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(refresh, 0); });
  form.addEventListener('submit', (e) => { e.preventDefault(); refresh(); });
  form.addEventListener('reset', () => setTimeout(refresh, 0));
  more.dataset.label = more.textContent;
  more.addEventListener('click', () => load(false));
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && before && !more.disabled) load(false);
  }).observe(more);

  loadChoices().then(() => {
    setForm(location.search);
    refresh();
    loadViews();
  });
})();
