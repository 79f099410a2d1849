// What a message shows inside its bubble, shared by the visitor chat and the agent
// workspace: text with safe links, image thumbnails with a full-size viewer, file cards and
// product cards, rich cards, and the merchant's rich text (welcome and offline messages). Everything is
// built as DOM nodes; rich text, already sanitized by the server, is parsed inertly and
// rebuilt from an allowlist, so nothing from a message is ever inserted as HTML.
(() => {
  'use strict';

  const { el } = window.KefuDom;

  const LINK = /\bhttps?:\/\/[^\s<>"'\u3000-\u303f\uff01-\uff5e]+/gi;

  // `u` if it is an absolute http(s) URL, else '' — the only URLs a page turns into a link or
  // an image (a visitor may supply `javascript:` or `data:` ones).
  function webUrl(u) {
    if (typeof u !== 'string') return '';
    try { const url = new URL(u); return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : ''; } catch (_) { return ''; }
  }

  // Text with http(s) links made clickable (trailing punctuation stays text).
  function linkify(text) {
    const frag = document.createDocumentFragment();
    let last = 0;
    for (const match of text.matchAll(LINK)) {
      let url = match[0];
      const trail = url.match(/[.,;:!?)\]]+$/);
      if (trail) url = url.slice(0, -trail[0].length);
      frag.append(text.slice(last, match.index));
      const a = el('a', 'link', url);
      a.href = url;
      a.target = '_blank';
      a.rel = 'noopener noreferrer nofollow';
      frag.append(a);
      last = match.index + url.length;
    }
    frag.append(text.slice(last));
    return frag;
  }

  // The elements rich text may use (merchant::rich_text on the server keeps the same set).
  const RICH = new Set(['P', 'BR', 'STRONG', 'B', 'EM', 'I', 'U', 'S', 'A', 'UL', 'OL', 'LI']);
  const SAFE_HREF = /^(https?:|mailto:|tel:)/i;

  // Sanitized HTML rebuilt node by node: allowed elements with no attributes but a safe
  // link, text as text, everything else reduced to its text.
  function rich(html) {
    const doc = new DOMParser().parseFromString(`<body>${html}</body>`, 'text/html');
    const copy = (from, to) => {
      for (const node of from.childNodes) {
        if (node.nodeType === Node.TEXT_NODE) { to.append(node.textContent); continue; }
        if (node.nodeType !== Node.ELEMENT_NODE) continue;
        if (!RICH.has(node.tagName)) { copy(node, to); continue; }
        const e = document.createElement(node.tagName.toLowerCase());
        if (node.tagName === 'A') {
          const href = node.getAttribute('href') || '';
          if (SAFE_HREF.test(href)) { e.href = href; e.target = '_blank'; e.rel = 'noopener noreferrer nofollow'; e.className = 'link'; }
        }
        copy(node, e);
        to.append(e);
      }
      return to;
    };
    return copy(doc.body, el('div', 'rich'));
  }

  function size(bytes) {
    if (!Number.isFinite(bytes)) return '';
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10240 ? 1 : 0)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  function fileIcon(mime, name) {
    const ext = (name.split('.').pop() || '').toLowerCase();
    if (mime === 'application/pdf') return 'PDF';
    if (/word|opendocument\.text/.test(mime)) return 'DOC';
    if (/excel|spreadsheet/.test(mime) || ext === 'csv') return 'XLS';
    if (/powerpoint|presentation/.test(mime)) return 'PPT';
    if (mime === 'application/zip') return 'ZIP';
    return 'TXT';
  }

  // A full-size view of an image over the page; Escape, a click or the button closes it.
  function view(src, alt) {
    const overlay = el('div', 'viewer');
    overlay.setAttribute('role', 'dialog');
    overlay.setAttribute('aria-modal', 'true');
    overlay.setAttribute('aria-label', alt);
    const img = el('img');
    img.src = src;
    img.alt = alt;
    const close = el('button', 'viewer-close', '×');
    close.type = 'button';
    close.setAttribute('aria-label', 'Close');
    overlay.append(img, close);
    const back = document.activeElement;
    const done = () => { overlay.remove(); document.removeEventListener('keydown', onKey); if (back) back.focus(); };
    const onKey = (e) => { if (e.key === 'Escape') done(); };
    overlay.addEventListener('click', done);
    document.addEventListener('keydown', onKey);
    document.body.append(overlay);
    close.focus();
  }

  function attachment(a, kind) {
    if (kind === 'image') {
      const button = el('button', 'image');
      button.type = 'button';
      button.setAttribute('aria-label', a.name);
      const img = el('img');
      img.src = a.thumb_url || a.url;
      img.alt = a.name;
      img.loading = 'lazy';
      if (a.width && a.height) {
        const scale = Math.min(1, 240 / a.width, 240 / a.height);
        img.width = Math.round(a.width * scale);
        img.height = Math.round(a.height * scale);
      }
      button.append(img);
      button.addEventListener('click', () => view(a.url, a.name));
      return button;
    }
    const card = el('a', 'file-card');
    card.href = a.url;
    card.download = a.name;
    card.rel = 'noopener';
    const icon = el('span', 'file-icon', fileIcon(a.mime || '', a.name || ''));
    const info = el('span', 'file-info');
    info.append(el('span', 'file-name', a.name), el('span', 'file-size', size(a.size)));
    card.append(icon, info);
    return card;
  }

  // A picture from elsewhere: kefu's signed copy (`/img/…`) when the server made one, else
  // the link itself where the page may load it (the visitor page; the workspace's policy
  // allows only its own server's pictures).
  const ownPictures = () => document.body.classList.contains('page-app');
  function picture(signed, raw) {
    if (typeof signed === 'string' && signed.startsWith('/img/')) return signed;
    return ownPictures() ? '' : webUrl(raw);
  }

  function product(p) {
    const href = webUrl(p.url);
    const src = picture(p.img_src, p.img);
    const card = el(href ? 'a' : 'div', 'product');
    if (href) { card.href = href; card.target = '_blank'; card.rel = 'noopener noreferrer'; }
    if (src) { const img = el('img'); img.src = src; img.alt = ''; img.loading = 'lazy'; card.append(img); }
    const info = el('span', 'product-info');
    info.append(el('strong', '', p.title), el('span', 'price', p.price || ''));
    card.append(info);
    return card;
  }

  // A rich card from the merchant's system: image, title, text, label/value rows, buttons.
  function card(c) {
    const box = el('div', 'card-msg');
    const image = picture(c.image_src, c.image);
    if (image) { const img = el('img', 'card-image'); img.src = image; img.alt = ''; img.loading = 'lazy'; box.append(img); }
    const inner = el('div', 'card-body');
    inner.append(el('strong', 'card-title', c.title || ''));
    if (c.text) { const text = el('p', 'card-text'); text.append(linkify(c.text)); inner.append(text); }
    if (Array.isArray(c.fields) && c.fields.length) {
      const dl = el('dl', 'card-fields');
      for (const f of c.fields) dl.append(el('dt', '', f.label || ''), el('dd', '', f.value || ''));
      inner.append(dl);
    }
    box.append(inner);
    if (Array.isArray(c.buttons) && c.buttons.length) {
      const actions = el('div', 'card-actions');
      for (const b of c.buttons) {
        const href = webUrl(b.url);
        if (!href) continue;
        const a = el('a', 'card-button', b.label || href);
        a.href = href;
        a.target = '_blank';
        a.rel = 'noopener noreferrer nofollow';
        actions.append(a);
      }
      box.append(actions);
    }
    return box;
  }

  // Fills `bubble` with what `msg` shows.
  function fill(bubble, msg) {
    const payload = msg.payload || {};
    if ((msg.kind === 'image' || msg.kind === 'file') && payload.attachment) {
      bubble.classList.add(`has-${msg.kind}`);
      bubble.append(attachment(payload.attachment, msg.kind));
      if (msg.body) { const caption = el('div', 'caption'); caption.append(linkify(msg.body)); bubble.append(caption); }
    } else if (msg.kind === 'product' && payload.product) {
      bubble.classList.add('has-product');
      bubble.append(product(payload.product));
    } else if (msg.kind === 'card' && payload.card) {
      bubble.classList.add('has-card');
      bubble.append(card(payload.card));
    } else if (typeof payload.html === 'string' && payload.html) {
      bubble.append(rich(payload.html));
    } else {
      bubble.append(linkify(msg.body || ''));
    }
    return bubble;
  }

  // A small emoji picker: a grid of buttons under `button`, inserting into `input` at the
  // cursor; Escape closes it and gives focus back.
  const EMOJI = ['😀', '😂', '😊', '😍', '🥰', '😘', '😉', '😎', '🤔', '😅', '😢', '😭', '😡', '😱', '🙏', '👍', '👎', '👌', '👏', '🙌', '💪', '🤝', '👋', '❤️', '💔', '🎉', '🔥', '✨', '⭐', '✅', '❌', '❓', '📦', '🚚', '💰', '🎁', '☕', '🌹', '🌞', '🌙'];
  function emojiPicker(button, panel, input) {
    const close = () => { panel.hidden = true; button.setAttribute('aria-expanded', 'false'); };
    for (const e of EMOJI) {
      const b = el('button', 'emoji-item', e);
      b.type = 'button';
      b.addEventListener('click', () => {
        const at = input.selectionStart ?? input.value.length;
        input.setRangeText(e, at, input.selectionEnd ?? at, 'end');
        close();
        input.focus();
      });
      panel.append(b);
    }
    button.addEventListener('click', () => {
      const open = panel.hidden;
      panel.hidden = !open;
      button.setAttribute('aria-expanded', String(open));
      if (open) panel.querySelector('button').focus();
    });
    panel.addEventListener('keydown', (e) => { if (e.key === 'Escape') { close(); button.focus(); } });
    return { close };
  }

  window.KefuContent = { fill, rich, size, linkify, emojiPicker, webUrl };
})();
