// Contacts (/app/contacts): the merchant's visitors as a list with filters, sort, paging and
// bulk actions, and one visitor in full (/app/contacts/{id}). Everything goes through the
// JSON API (docs/api.md, "Visitors"); what is shown from data is built as text nodes.
(() => {
  'use strict';

  const { el, when, since, full } = window.KefuDom;
  const { api, toast } = window.KefuApp;
  const fill = (template, values) => template.replace(/\{(\w+)\}/g, (_, k) => (k in values ? values[k] : `{${k}}`));
  const place = (v) => [v.city, v.region, v.country].filter(Boolean).join(', ');
  const device = (v) => [v.device, v.os, v.browser].filter(Boolean).join(' · ');

  function showError(box, err) {
    box.textContent = err ? err.message : '';
    box.hidden = !err;
  }

  // Tag names for filters and suggestions.
  async function loadTags(select) {
    try {
      const { tags } = await api('GET', '/api/v1/tags');
      const list = document.getElementById('tag-suggestions');
      list.replaceChildren(...tags.map((t) => { const o = el('option'); o.value = t.name; return o; }));
      if (select) {
        const chosen = select.value;
        select.replaceChildren(select.options[0], ...tags.map((t) => { const o = el('option', '', t.name); o.value = t.name; return o; }));
        select.value = chosen;
      }
    } catch (_) { /* suggestions are a convenience */ }
  }

  function badge(text, cls) { return el('span', `badge ${cls}`, text); }

  // ---- The list ----
  function list(root) {
    const t = root.dataset;
    const form = document.getElementById('contacts-filters');
    const rows = document.getElementById('contacts-rows');
    const empty = document.getElementById('contacts-empty');
    const more = document.getElementById('contacts-more');
    const count = document.getElementById('contacts-count');
    const errorBox = document.getElementById('contacts-error');
    const bar = document.getElementById('bulk-bar');
    const all = document.getElementById('select-all');
    const exportLink = document.getElementById('contacts-export');
    const picked = new Set();
    // Column names, shown beside the numbers when the table is cards (phones).
    const heads = [...root.querySelectorAll('.contacts-table th')].map((th) => th.textContent.trim());
    let cursor = null;
    let shown = 0;
    let generation = 0;

    // The filters as a query (empty ones left out), also kept in the address bar so a
    // reload or the back button keeps them.
    function params() {
      const p = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) p.set(k, v);
      if (p.get('sort') === 'newest') p.delete('sort');
      return p;
    }
    function restore() {
      const p = new URLSearchParams(location.search);
      for (const field of form.elements) {
        if (!field.name || !p.has(field.name)) continue;
        if (field.type === 'checkbox') field.checked = p.get(field.name) === 'true';
        else field.value = p.get(field.name);
      }
    }

    function row(v) {
      const tr = el('tr');
      tr.dataset.id = v.id;
      const pick = el('input');
      pick.type = 'checkbox';
      pick.checked = picked.has(v.id);
      pick.setAttribute('aria-label', fill(t.tSelectOne, { name: v.name }));
      pick.addEventListener('change', () => { if (pick.checked) picked.add(v.id); else picked.delete(v.id); updateBar(); });
      const pickCell = el('td', 'pick');
      pickCell.append(pick);
      const nameCell = el('td', 'contact-name');
      const link = el('a', 'name-text', v.real_name || v.name);
      link.href = `/app/contacts/${encodeURIComponent(v.id)}`;
      nameCell.append(link);
      if (v.real_name && v.real_name !== v.name) nameCell.append(el('small', 'muted block name-text', v.name));
      const flags = el('span', 'contact-flags');
      if (v.online) flags.append(badge(t.tOnline, 'badge-active'));
      if (v.verified) flags.append(badge(t.tVerified, 'badge-verified'));
      if (v.blocked) flags.append(badge(t.tBlocked, 'badge-deleted'));
      if (flags.childElementCount) nameCell.append(flags);
      const contact = el('td', 'contact-reach');
      for (const value of [v.email, v.phone]) if (value) contact.append(el('span', 'block name-text', value));
      const tagCell = el('td');
      if (v.tags.length) {
        const ul = el('ul', 'tag-list');
        ul.append(...v.tags.map((name) => el('li', 'tag tag-static', name)));
        tagCell.append(ul);
      }
      const seen = el('td');
      const time = el('time', '', since(v.last_seen_at));
      time.dateTime = v.last_seen_at;
      time.title = full(v.last_seen_at);
      seen.append(time);
      const visits = el('td', 'num', String(v.visit_count));
      const chats = el('td', 'num', String(v.conversations));
      visits.dataset.label = heads[7];
      chats.dataset.label = heads[8];
      tr.append(pickCell, nameCell, contact, tagCell, el('td', 'name-text', place(v)), el('td', '', device(v)), seen, visits, chats);
      return tr;
    }

    async function load(reset) {
      const mine = reset ? ++generation : generation;
      if (reset) { cursor = null; shown = 0; }
      const p = params();
      if (cursor) p.set('cursor', cursor);
      p.set('limit', '50');
      more.disabled = true;
      more.textContent = t.tLoading;
      try {
        const page = await api('GET', `/api/v1/visitors?${p}`);
        if (mine !== generation) return;
        if (reset) rows.replaceChildren();
        rows.append(...page.visitors.map(row));
        shown += page.visitors.length;
        cursor = page.next_cursor || null;
        const filtered = [...params().keys()].some((k) => k !== 'sort');
        empty.textContent = filtered ? t.tEmpty : t.tNoneYet;
        empty.hidden = shown > 0;
        count.textContent = shown ? fill(t.tCount, { n: shown }) : '';
        more.hidden = !cursor;
        showError(errorBox, null);
      } catch (err) {
        showError(errorBox, err);
      } finally {
        more.disabled = false;
        more.textContent = more.dataset.label;
      }
    }

    function updateBar() {
      bar.hidden = picked.size === 0;
      document.getElementById('bulk-count').textContent = fill(t.tSelected, { n: picked.size });
      const boxes = rows.querySelectorAll('.pick input');
      all.checked = boxes.length > 0 && [...boxes].every((b) => b.checked);
    }

    function refresh() {
      const p = params();
      history.replaceState(null, '', p.toString() ? `?${p}` : location.pathname);
      if (exportLink) exportLink.href = `/api/v1/visitors/export${p.toString() ? `?${p}` : ''}`;
      picked.clear();
      updateBar();
      load(true);
    }

    let typing;
    form.addEventListener('input', (e) => {
      clearTimeout(typing);
      typing = setTimeout(refresh, e.target.name === 'q' ? 250 : 0);
    });
    form.addEventListener('submit', (e) => { e.preventDefault(); refresh(); });
    form.addEventListener('reset', () => setTimeout(refresh, 0));
    more.dataset.label = more.textContent;
    more.addEventListener('click', () => load(false));
    // The next page comes by itself when the end of the list scrolls into view.
    new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting) && cursor && !more.disabled) load(false);
    }).observe(more);
    all.addEventListener('change', () => {
      for (const box of rows.querySelectorAll('.pick input')) {
        box.checked = all.checked;
        const id = box.closest('tr').dataset.id;
        if (all.checked) picked.add(id); else picked.delete(id);
      }
      updateBar();
    });

    bar.addEventListener('click', async (e) => {
      const button = e.target.closest('[data-bulk]');
      if (!button) return;
      const action = button.dataset.bulk;
      const ids = [...picked];
      if (action === 'export') {
        location.href = `/api/v1/visitors/export?ids=${encodeURIComponent(ids.join(','))}`;
        return;
      }
      const tag = document.getElementById('bulk-tag').value.trim();
      if ((action === 'tag' || action === 'untag') && !tag) { document.getElementById('bulk-tag').focus(); return; }
      if (action === 'block' && !confirm(fill(t.tConfirmBlock, { n: ids.length }))) return;
      button.disabled = true;
      try {
        const done = await api('POST', '/api/v1/visitors/bulk', { ids, action, tag: tag || undefined });
        const message = { tag: t.tDoneTag, untag: t.tDoneUntag, block: t.tDoneBlock }[action];
        toast(fill(message, { n: done.changed }));
        picked.clear();
        updateBar();
        await load(true);
        await loadTags(form.elements.tag);
      } catch (err) {
        showError(errorBox, err);
      } finally {
        button.disabled = false;
      }
    });

    restore();
    loadTags(form.elements.tag).then(() => restore());
    refresh();
  }

  // ---- One contact ----
  function detail(root) {
    const t = root.dataset;
    const id = t.id;
    const base = `/api/v1/visitors/${encodeURIComponent(id)}`;
    const errorBox = document.getElementById('contact-error');
    const form = document.getElementById('contact-form');

    function facts(dl, pairs) {
      dl.replaceChildren();
      for (const [label, value, cls] of pairs) {
        if (value === null || value === undefined || value === '') continue;
        const row = el('div');
        row.append(el('dt', '', label));
        const dd = el('dd', cls || '');
        if (value instanceof Node) dd.append(value); else dd.textContent = String(value);
        row.append(dd);
        dl.append(row);
      }
    }

    function link(url) {
      const href = window.KefuContent.webUrl(url);
      if (!href) return url;
      const a = el('a', 'block name-text', url);
      a.href = href;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      return a;
    }

    function timeNode(at) {
      const node = el('time', '', when(at));
      node.dateTime = at;
      node.title = full(at);
      return node;
    }

    function render(v) {
      document.title = `${v.real_name || v.name} · ${document.title.split(' · ').slice(1).join(' · ')}`;
      document.getElementById('contact-name').textContent = v.real_name || v.name;
      const flags = document.getElementById('contact-badges');
      flags.replaceChildren(el('code', '', v.id));
      if (v.online) flags.append(' ', badge(t.tOnline, 'badge-active'));
      if (v.user_id) flags.append(' ', badge(t.tVerified, 'badge-verified'));
      if (v.blocked) flags.append(' ', badge(t.tBlocked, 'badge-deleted'));
      for (const name of ['name', 'real_name', 'email', 'phone']) form.elements[name].value = v[name] || '';
      const f = document.getElementById('contact-facts').dataset;
      facts(document.getElementById('contact-facts'), [
        [f.lUserId, v.user_id],
        [f.lClaimed, v.user_id ? null : v.claimed_user_id],
        [f.lFirstSeen, timeNode(v.first_seen_at)],
        [f.lLastSeen, timeNode(v.last_seen_at)],
        [f.lVisits, v.visit_count],
        [f.lLocation, place(v)],
        [f.lIp, v.ip],
        [f.lDevice, device(v)],
        [f.lReferrer, v.referrer ? link(v.referrer) : null],
        [f.lLanding, v.landing_url ? link(v.landing_url) : null],
      ]);
      renderTags(v.tags);
      const extra = document.getElementById('contact-extra');
      const entries = Object.entries(v.extra || {});
      facts(extra, entries.map(([k, value]) => [k, typeof value === 'string' ? value : JSON.stringify(value), 'mono-wrap']));
      if (!entries.length) extra.append(el('p', 'muted small', extra.dataset.empty));
      const answers = Array.isArray(v.prechat) ? v.prechat : [];
      document.getElementById('contact-prechat-card').hidden = !answers.length;
      facts(document.getElementById('contact-prechat'), answers.map((a) => [a.label || a.key, a.choice || (typeof a.value === 'string' ? a.value : JSON.stringify(a.value))]));
      const pages = document.getElementById('contact-pages');
      pages.replaceChildren(...v.pages.map((p) => {
        const li = el('li');
        const title = el('span', 'block name-text', p.title || p.url);
        li.append(title, link(p.url), timeNode(p.at));
        return li;
      }));
      if (!v.pages.length) pages.append(el('li', 'muted small', pages.dataset.empty));
      renderNotes(v.notes);
    }

    function renderTags(tags) {
      const ul = document.getElementById('contact-tags');
      ul.replaceChildren(...tags.map((name) => {
        const li = el('li', 'tag', name);
        const x = el('button', 'tag-remove', '×');
        x.type = 'button';
        x.setAttribute('aria-label', `${t.tRemoveTag}: ${name}`);
        x.addEventListener('click', async () => {
          try { renderTags((await api('DELETE', `${base}/tags/${encodeURIComponent(name)}`)).tags); } catch (err) { showError(errorBox, err); }
        });
        li.append(x);
        return li;
      }));
    }

    function renderNotes(notes) {
      const ul = document.getElementById('contact-notes');
      ul.replaceChildren(...notes.map((n) => {
        const li = el('li', 'note');
        li.append(el('p', 'note-body', n.body));
        const meta = el('p', 'muted small');
        meta.append(`${n.agent_name || ''} · `, timeNode(n.created_at));
        if (t.admin === 'true') {
          const del = el('button', 'btn btn-ghost btn-sm', t.tDelete);
          del.type = 'button';
          del.addEventListener('click', async () => {
            try { await api('DELETE', `${base}/notes/${n.id}`); li.remove(); } catch (err) { showError(errorBox, err); }
          });
          meta.append(' ', del);
        }
        li.append(meta);
        return li;
      }));
      if (!notes.length) ul.append(el('li', 'muted small', ul.dataset.empty));
    }

    async function transcript(conv, box, button) {
      if (!box.hidden) { box.hidden = true; button.textContent = t.tShow; button.setAttribute('aria-expanded', 'false'); return; }
      box.hidden = false;
      button.textContent = t.tHide;
      button.setAttribute('aria-expanded', 'true');
      if (box.dataset.loaded) return;
      try {
        const { messages } = await api('GET', `/api/v1/conversations/${conv.id}/messages?limit=200`);
        box.replaceChildren(...messages.filter((m) => m.kind !== 'activity').map((m) => {
          const row = el('div', `transcript-msg from-${m.sender.kind}`);
          const who = el('p', 'muted small');
          who.append(`${m.sender.name || (m.sender.kind === 'visitor' ? document.getElementById('contact-name').textContent : '')} · `, timeNode(m.created_at));
          row.append(who, window.KefuContent.fill(el('div', 'bubble'), m));
          return row;
        }));
        if (!messages.length) box.append(el('p', 'muted small', t.tTranscriptEmpty));
        box.dataset.loaded = '1';
      } catch (err) { showError(errorBox, err); }
    }

    async function loadConversations() {
      const ul = document.getElementById('contact-convs');
      try {
        const { conversations } = await api('GET', `/api/v1/conversations?view=all&status=any&limit=100&visitor=${encodeURIComponent(id)}`);
        ul.replaceChildren(...conversations.map((c) => {
          const li = el('li', 'contact-conv');
          const head = el('div', 'contact-conv-head');
          head.append(badge(t[`tStatus${c.status[0].toUpperCase()}${c.status.slice(1)}`] || c.status, `badge-status-${c.status}`));
          head.append(el('span', '', c.agent_name || t.tUnassigned));
          if (c.rating) head.append(el('span', 'muted', fill(t.tRating, { n: c.rating })));
          if (c.left_offline_at) head.append(badge(t.tLeft, 'badge-left'));
          head.append(timeNode(c.last_message_at || c.created_at));
          li.append(head);
          if (c.last_message) li.append(el('p', 'contact-conv-preview name-text', c.last_message));
          const actions = el('div', 'contact-conv-actions');
          const show = el('button', 'btn btn-ghost btn-sm', t.tShow);
          show.type = 'button';
          show.setAttribute('aria-expanded', 'false');
          const open = el('a', 'btn btn-ghost btn-sm', t.tOpen);
          open.href = `/app#c=${c.id}`;
          actions.append(show, open);
          const box = el('div', 'transcript');
          box.hidden = true;
          show.addEventListener('click', () => transcript(c, box, show));
          li.append(actions, box);
          return li;
        }));
        if (!conversations.length) ul.append(el('li', 'muted small', ul.dataset.empty));
      } catch (err) { showError(errorBox, err); }
    }

    async function load() {
      try {
        render(await api('GET', base));
      } catch (err) {
        showError(errorBox, err.message === 'Not Found' ? new Error(t.tNotFound) : err);
      }
    }

    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const box = document.getElementById('contact-form-error');
      const body = {};
      for (const name of ['name', 'real_name', 'email', 'phone']) body[name] = form.elements[name].value.trim();
      try {
        await api('PATCH', base, body);
        showError(box, null);
        toast(t.tSaved);
        load();
      } catch (err) { showError(box, err); }
    });
    document.getElementById('contact-tag-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const input = e.target.elements.tag;
      const name = input.value.trim();
      if (!name) return;
      try { renderTags((await api('POST', `${base}/tags`, { name })).tags); input.value = ''; showError(errorBox, null); } catch (err) { showError(errorBox, err); }
    });
    document.getElementById('contact-note-form').addEventListener('submit', async (e) => {
      e.preventDefault();
      const area = e.target.elements.body;
      const body = area.value.trim();
      if (!body) return;
      try { await api('POST', `${base}/notes`, { body }); area.value = ''; load(); } catch (err) { showError(errorBox, err); }
    });
    const merge = document.getElementById('contact-merge-form');
    if (merge) merge.addEventListener('submit', async (e) => {
      e.preventDefault();
      const box = document.getElementById('contact-merge-error');
      const from = merge.elements.from.value.trim();
      if (!from || !confirm(fill(t.tConfirmMerge, { from }))) return;
      try {
        const done = await api('POST', `${base}/merge`, { from });
        merge.reset();
        showError(box, null);
        toast(fill(t.tMerged, { n: done.conversations_moved }));
        render(done.visitor);
        loadConversations();
      } catch (err) { showError(box, err); }
    });

    loadTags(null);
    load();
    loadConversations();
  }

  const listRoot = document.getElementById('contacts');
  const detailRoot = document.getElementById('contact');
  if (detailRoot) detail(detailRoot);
  else if (listRoot) list(listRoot);
})();
