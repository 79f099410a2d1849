// The DOM helpers every page script shares (loaded before them). Everything a page shows
// from data is built as nodes with text content, never as HTML.
(() => {
  'use strict';

  /** An element of `tag`, with class names `cls` and text `text` (both optional). */
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Times are shown in the viewer's time zone (the browser's) and in the page's language.
  const lang = document.documentElement.lang || undefined;
  const relatives = {
    long: new Intl.RelativeTimeFormat(lang, { numeric: 'auto' }),
    short: new Intl.RelativeTimeFormat(lang, { numeric: 'auto', style: 'short' }),
  };
  const upper = (s) => s.charAt(0).toLocaleUpperCase(lang) + s.slice(1);
  const dateOf = (t) => (t instanceof Date ? t : new Date(t || Date.now()));
  const startOfDay = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();

  /** "14:05": the time of day of `t`. */
  function clock(t) {
    return dateOf(t).toLocaleTimeString(lang, { hour: 'numeric', minute: '2-digit' });
  }

  /** The whole date and time of `t`, for a tooltip. */
  function full(t) {
    return dateOf(t).toLocaleString(lang, { dateStyle: 'full', timeStyle: 'short' });
  }

  /** A short date and time of `t` ("12/7/26, 9:38 PM"), for tables and panels. */
  function when(t) {
    return dateOf(t).toLocaleString(lang, { dateStyle: 'short', timeStyle: 'short' });
  }

  /** A `<time>` showing the time of day of `t` (now when absent), the full date on hover. */
  function timeEl(t, cls = 'msg-time') {
    const d = dateOf(t);
    const e = el('time', cls, clock(d));
    e.dateTime = d.toISOString();
    e.title = full(d);
    return e;
  }

  /** "Today", "Yesterday", else the date (with the weekday), for a day separator. */
  function dayLabel(t) {
    const d = dateOf(t);
    const days = Math.round((startOfDay(new Date()) - startOfDay(d)) / 86_400_000);
    if (days === 0 || days === 1) return upper(relatives.long.format(-days, 'day'));
    const withYear = d.getFullYear() !== new Date().getFullYear();
    return d.toLocaleDateString(lang, { weekday: 'long', month: 'long', day: 'numeric', ...(withYear ? { year: 'numeric' } : {}) });
  }

  /** How far `t` is from now, in words ("3 minutes ago", "in 2 days"). */
  function ago(t, style = 'long') {
    const seconds = (dateOf(t).getTime() - Date.now()) / 1000;
    const steps = [[60, 'second'], [3600, 'minute'], [86_400, 'hour'], [Infinity, 'day']];
    let unit = 1;
    for (const [limit, name] of steps) {
      if (Math.abs(seconds) < limit) return relatives[style].format(Math.round(seconds / unit), name);
      unit = limit;
    }
    return '';
  }

  /** For lists, briefly: how long ago within a day ("3 min. ago"), else the weekday or date. */
  function since(t) {
    const d = dateOf(t);
    const seconds = (Date.now() - d.getTime()) / 1000;
    if (seconds < 86_400) return ago(d, 'short');
    if (seconds < 6 * 86_400) return d.toLocaleDateString(lang, { weekday: 'short' });
    return d.toLocaleDateString(lang, { month: 'short', day: 'numeric' });
  }

  function daySeparator(t) {
    const sep = el('div', 'day-sep');
    sep.setAttribute('role', 'separator');
    sep.append(el('span', '', dayLabel(t)));
    return sep;
  }

  /**
   * Puts a day separator before the first message of each day in `container`: its children
   * with a `data-at` time. For whole pages (a thread opened, older messages loaded): it
   * redoes the whole container.
   */
  function markDays(container) {
    for (const old of container.querySelectorAll(':scope > .day-sep')) old.remove();
    let last = null;
    for (const node of [...container.children]) {
      if (!node.dataset.at) continue;
      const day = startOfDay(dateOf(node.dataset.at));
      if (day !== last) {
        container.insertBefore(daySeparator(node.dataset.at), node);
        last = day;
      }
    }
  }

  /** For one message just appended (`node`): a separator before it if it starts a day. */
  function markDay(node) {
    let before = node.previousElementSibling;
    while (before && !before.dataset.at) before = before.previousElementSibling;
    const day = (n) => startOfDay(dateOf(n.dataset.at));
    if (!before || day(before) !== day(node)) node.before(daySeparator(node.dataset.at));
  }

  window.KefuDom = { el, clock, full, when, timeEl, dayLabel, ago, since, markDays, markDay };
})();
