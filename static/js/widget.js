/*! kefu chat widget loader. Include it on any site:
 *
 *   <script src="https://chat.example.com/static/js/widget.js" async></script>
 *   <script>
 *     window.KefuQueue = window.KefuQueue || [];   // optional: calls made before it loads
 *     Kefu.init({ entId: "…", color: "#4f46e5", position: "right", buttonText: "Chat with us" });
 *   </script>
 *
 * It adds a floating button; the chat itself (/chatIndex) opens in an iframe the first time
 * the visitor asks for it (or right away for a visitor who has chatted before, so replies
 * raise the unread badge). Messages between the page and the iframe name each other's
 * origin explicitly, never "*". The loader never throws into the host page.
 *
 * API: Kefu.init(options), open(), close(), toggle(), identify({id, hash | token, name, avatar}),
 * logout(), setAttributes({...}), on('ready'|'open'|'close'|'message'|'unread', fn).
 * A user's proof (`hash`, HMAC of the id by the merchant's server, or a signed `token`)
 * travels to the chat in the iframe URL's fragment, which is never sent to any server.
 * GOFLY's snippet works unchanged: GOFLY.init({GOFLY_URL, GOFLY_KEFU_ID, GOFLY_ENT,
 * GOFLY_BTN_TEXT, GOFLY_EXTRA}).
 */
(function (w, d) {
  'use strict';
  if (w.Kefu && w.Kefu.version) return;

  var script = d.currentScript;
  var opts = null;
  var base = '';
  var root = null, button = null, badge = null, panel = null, frame = null;
  var isOpen = false, ready = false, unread = 0;
  var outbox = [];
  var handlers = {};
  var FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "PingFang SC", "Microsoft YaHei", sans-serif';
  var blink = null, savedTitle = '';
  var identity = null, attributes = {};

  function safe(fn) {
    return function () {
      try { return fn.apply(null, arguments); } catch (e) { if (w.console) w.console.warn('[kefu]', e); }
    };
  }

  function emit(name, data) {
    var list = handlers[name] || [];
    for (var i = 0; i < list.length; i++) {
      try { list[i](data); } catch (e) { if (w.console) w.console.warn('[kefu] handler failed', e); }
    }
  }

  function originOf(url) {
    var a = d.createElement('a');
    a.href = url;
    return a.protocol + '//' + a.host;
  }

  function storeKey() { return 'kefu:widget:' + opts.entId; }

  // The pages of this browsing session (sessionStorage), reported to the chat once it is
  // loaded; agents see where the visitor is and has been.
  function pagesKey() { return 'kefu:pages:' + opts.entId; }
  function readPages() {
    try { return JSON.parse(w.sessionStorage.getItem(pagesKey()) || '[]'); } catch (e) { return []; }
  }
  function writePages(pages) {
    try { w.sessionStorage.setItem(pagesKey(), JSON.stringify(pages.slice(-20))); } catch (e) { /* storage off */ }
  }
  function recordPage() {
    var pages = readPages();
    pages.push({ url: w.location.href, title: d.title, referrer: d.referrer || null, at: new Date().toISOString(), sent: false });
    writePages(pages);
  }
  function flushPages() {
    var pages = readPages();
    var views = [];
    for (var i = 0; i < pages.length; i++) {
      if (!pages[i].sent) {
        views.push({ url: pages[i].url, title: pages[i].title, referrer: pages[i].referrer, at: pages[i].at });
        pages[i].sent = true;
      }
    }
    if (views.length) { post({ type: 'pages', views: views }); writePages(pages); }
  }
  function remember() { try { w.localStorage.setItem(storeKey(), '1'); } catch (e) { /* storage off */ } }
  function returning() { try { return w.localStorage.getItem(storeKey()) === '1'; } catch (e) { return false; } }

  function toBase64(value) {
    var json = typeof value === 'string' ? value : JSON.stringify(value);
    var bytes = new TextEncoder().encode(json), bin = '';
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return w.btoa(bin);
  }

  function css(el, rules) { for (var k in rules) el.style[k] = rules[k]; }

  function build() {
    var side = opts.position === 'left' ? 'left' : 'right';
    root = d.createElement('div');
    root.setAttribute('data-kefu-widget', '');
    css(root, { position: 'fixed', zIndex: '2147483000', bottom: '20px' });
    root.style[side] = '20px';

    button = d.createElement('button');
    button.type = 'button';
    button.setAttribute('aria-haspopup', 'dialog');
    button.setAttribute('aria-expanded', 'false');
    button.textContent = opts.buttonText;
    css(button, {
      display: 'flex', alignItems: 'center', gap: '8px', border: '0', cursor: 'pointer',
      padding: '12px 18px', borderRadius: '999px', background: opts.color, color: '#fff',
      font: '600 15px/1.2 ' + FONT, boxShadow: '0 8px 24px rgba(15, 23, 42, .25)', position: 'relative'
    });
    button.addEventListener('click', safe(toggle));

    badge = d.createElement('span');
    badge.setAttribute('aria-live', 'polite');
    css(badge, {
      position: 'absolute', top: '-6px', right: '-6px', minWidth: '20px', height: '20px', padding: '0 6px',
      borderRadius: '10px', background: '#dc2626', color: '#fff', font: '700 12px/20px ' + FONT,
      textAlign: 'center', display: 'none', boxSizing: 'border-box'
    });
    button.appendChild(badge);

    panel = d.createElement('div');
    panel.setAttribute('role', 'dialog');
    panel.setAttribute('aria-label', opts.buttonText);
    css(panel, {
      position: 'fixed', bottom: '84px', width: '380px', height: '600px', maxHeight: 'calc(100vh - 104px)',
      borderRadius: '16px', overflow: 'hidden', background: '#fff', display: 'none',
      boxShadow: '0 16px 48px rgba(15, 23, 42, .28)'
    });
    panel.style[side] = '20px';
    fitPanel();
    w.addEventListener('resize', safe(fitPanel));

    root.appendChild(panel);
    root.appendChild(button);
    d.body.appendChild(root);
  }

  // Phones: the panel takes the whole screen (and the button, which would cover the chat's
  // composer, steps aside while it is open; the chat has its own close button).
  function fitPanel() {
    var phone = w.innerWidth < 640;
    button.style.display = phone && isOpen ? 'none' : 'flex';
    css(panel, phone
      ? { top: '0', left: '0', right: '0', bottom: '0', width: '100%', height: '100%', maxHeight: 'none', borderRadius: '0' }
      : { top: '', width: '380px', height: '600px', maxHeight: 'calc(100vh - 104px)', borderRadius: '16px', bottom: '84px' });
    if (!phone) {
      var side = opts.position === 'left' ? 'left' : 'right';
      panel.style.left = side === 'left' ? '20px' : '';
      panel.style.right = side === 'right' ? '20px' : '';
    }
  }

  function chatUrl() {
    var q = ['ent_id=' + encodeURIComponent(opts.entId), 'embed=1', 'host=' + encodeURIComponent(w.location.origin)];
    if (opts.kefuId) q.push('kefu_id=' + encodeURIComponent(opts.kefuId));
    if (opts.lang) q.push('lang=' + encodeURIComponent(opts.lang));
    if (identity && identity.name) q.push('visitor_name=' + encodeURIComponent(identity.name));
    if (identity && identity.avatar) q.push('avatar=' + encodeURIComponent(identity.avatar));
    // Where the visitor came to this site from, and the page they are on.
    if (d.referrer) q.push('refer=' + encodeURIComponent(d.referrer));
    q.push('landing=' + encodeURIComponent(w.location.href));
    var extra = {};
    var k;
    for (k in opts.extra) extra[k] = opts.extra[k];
    for (k in attributes) extra[k] = attributes[k];
    if (identity && identity.name) extra.visitorName = identity.name;
    if (identity && identity.avatar) extra.visitorAvatar = identity.avatar;
    extra.pageUrl = w.location.href;
    extra.pageTitle = d.title;
    q.push('extra=' + encodeURIComponent(toBase64(extra)));
    var proof = proofOf(identity);
    return base + '/chatIndex?' + q.join('&') + (proof ? '#identity=' + encodeURIComponent(toBase64(proof)) : '');
  }

  // What the chat sends to prove who the user is (nothing for anonymous visitors).
  function proofOf(user) {
    if (!user || !(user.id || user.token)) return null;
    return {
      user_id: user.id ? String(user.id) : null,
      user_hash: user.hash ? String(user.hash) : null,
      identity_token: user.token ? String(user.token) : null
    };
  }

  function load() {
    if (frame) return;
    frame = d.createElement('iframe');
    frame.title = opts.buttonText;
    frame.src = chatUrl();
    frame.setAttribute('allow', 'clipboard-write');
    css(frame, { border: '0', width: '100%', height: '100%', display: 'block' });
    panel.appendChild(frame);
  }

  function post(message) {
    if (!frame) return;
    if (!ready) { outbox.push(message); return; }
    message.source = 'kefu-host';
    frame.contentWindow.postMessage(message, base);
  }

  function setUnread(n) {
    unread = n;
    badge.textContent = n > 99 ? '99+' : String(n);
    badge.style.display = n > 0 ? 'block' : 'none';
    emit('unread', n);
    if (n > 0 && !isOpen) startBlink(); else stopBlink();
  }

  function startBlink() {
    if (blink) return;
    savedTitle = d.title;
    var on = false;
    blink = w.setInterval(function () {
      on = !on;
      d.title = on ? '(' + unread + ') ' + opts.newMessageText : savedTitle;
    }, 1200);
  }

  function stopBlink() {
    if (!blink) return;
    w.clearInterval(blink);
    blink = null;
    d.title = savedTitle;
  }

  function onMessage(e) {
    if (!frame || e.source !== frame.contentWindow || e.origin !== base) return;
    var m = e.data;
    if (!m || m.source !== 'kefu-chat') return;
    if (m.type === 'ready') {
      ready = true;
      var queued = outbox;
      outbox = [];
      for (var i = 0; i < queued.length; i++) post(queued[i]);
      post({ type: isOpen ? 'open' : 'close' });
      flushPages();
      emit('ready');
    } else if (m.type === 'message') {
      remember();
      if (!isOpen) setUnread(unread + 1);
      emit('message', m.message);
    } else if (m.type === 'sent') {
      remember();
    } else if (m.type === 'close') {
      close();
    }
  }

  function open() {
    if (!opts) return;
    load();
    isOpen = true;
    panel.style.display = 'block';
    fitPanel();
    button.setAttribute('aria-expanded', 'true');
    setUnread(0);
    post({ type: 'open' });
    emit('open');
  }

  function close() {
    if (!opts || !isOpen) return;
    isOpen = false;
    panel.style.display = 'none';
    fitPanel();
    button.setAttribute('aria-expanded', 'false');
    post({ type: 'close' });
    button.focus();
    emit('close');
  }

  function toggle() { if (isOpen) close(); else open(); }

  function init(options) {
    if (opts) return;
    options = options || {};
    if (!options.entId) throw new Error('Kefu.init needs entId');
    base = options.url ? originOf(options.url) : (script && script.src ? originOf(script.src) : '');
    if (!base) throw new Error('Kefu.init needs url');
    var zh = String(options.lang || d.documentElement.lang || w.navigator.language || '').toLowerCase().indexOf('zh') === 0;
    opts = {
      entId: String(options.entId),
      kefuId: options.kefuId ? String(options.kefuId) : '',
      lang: options.lang || '',
      color: /^#[0-9a-fA-F]{3,8}$/.test(options.color || '') ? options.color : '#4f46e5',
      position: options.position === 'left' ? 'left' : 'right',
      buttonText: options.buttonText || (zh ? '在线咨询' : 'Chat with us'),
      newMessageText: zh ? '新消息' : 'New message',
      extra: options.extra && typeof options.extra === 'object' ? options.extra : {}
    };
    if (options.user) identity = options.user;
    w.addEventListener('message', safe(onMessage));
    var start = safe(function () {
      build();
      recordPage();
      // Someone who has chatted here before gets the chat loaded (hidden), so an agent's
      // reply raises the badge; new visitors load nothing until they open it.
      if (returning()) {
        var idle = w.requestIdleCallback || function (f) { return w.setTimeout(f, 1500); };
        idle(safe(load));
      }
    });
    if (d.body) start(); else d.addEventListener('DOMContentLoaded', start);
  }

  function identify(user) {
    identity = user || null;
    if (identity) post({ type: 'identify', user: proofOf(identity), name: identity.name || null, avatar: identity.avatar || null });
  }

  // The user logged out of the site: the chat forgets them and goes on as a new anonymous
  // visitor (their history stays theirs).
  function logout() {
    identity = null;
    post({ type: 'logout' });
  }

  function setAttributes(attrs) {
    if (!attrs || typeof attrs !== 'object') return;
    for (var k in attrs) attributes[k] = attrs[k];
    post({ type: 'attributes', attributes: attrs });
  }

  function on(name, fn) {
    if (typeof fn !== 'function') return;
    (handlers[name] = handlers[name] || []).push(fn);
  }

  w.Kefu = {
    version: 1,
    init: safe(init),
    open: safe(open),
    close: safe(close),
    toggle: safe(toggle),
    identify: safe(identify),
    logout: safe(logout),
    setAttributes: safe(setAttributes),
    on: safe(on)
  };

  // GOFLY's embed code, unchanged.
  w.GOFLY = {
    init: safe(function (o) {
      o = o || {};
      init({
        url: o.GOFLY_URL,
        entId: o.GOFLY_ENT,
        kefuId: o.GOFLY_KEFU_ID,
        buttonText: o.GOFLY_BTN_TEXT,
        extra: o.GOFLY_EXTRA
      });
    })
  };

  // Calls queued before the script loaded: window.KefuQueue = [['init', {...}], ['open']].
  var queued = w.KefuQueue;
  if (queued && queued.length) {
    for (var i = 0; i < queued.length; i++) {
      var call = queued[i];
      if (call && w.Kefu[call[0]]) w.Kefu[call[0]].apply(null, call.slice(1));
    }
  }
})(window, document);
