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
  const relative = new Intl.RelativeTimeFormat(lang, { numeric: 'auto', style: 'short' });
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
    if (days === 0 || days === 1) return upper(relative.format(-days, 'day'));
    const withYear = d.getFullYear() !== new Date().getFullYear();
    return d.toLocaleDateString(lang, { weekday: 'long', month: 'long', day: 'numeric', ...(withYear ? { year: 'numeric' } : {}) });
  }

  /** How long ago `t` was, briefly ("now", "3 min ago", "Mon", a date), for lists. */
  function ago(t) {
    const d = dateOf(t);
    const seconds = Math.max(0, (Date.now() - d.getTime()) / 1000);
    if (seconds < 60) return relative.format(0, 'second');
    if (seconds < 3600) return relative.format(-Math.floor(seconds / 60), 'minute');
    if (seconds < 86_400) return relative.format(-Math.floor(seconds / 3600), 'hour');
    if (seconds < 6 * 86_400) return d.toLocaleDateString(lang, { weekday: 'short' });
    return d.toLocaleDateString(lang, { month: 'short', day: 'numeric' });
  }

  /**
   * Puts a day separator before the first message of each day in `container`: its children
   * with a `data-at` time. Run after the messages change; it redoes the whole container.
   */
  function markDays(container) {
    for (const old of container.querySelectorAll(':scope > .day-sep')) old.remove();
    let last = null;
    for (const node of [...container.children]) {
      if (!node.dataset.at) continue;
      const day = startOfDay(dateOf(node.dataset.at));
      if (day !== last) {
        const sep = el('div', 'day-sep');
        sep.setAttribute('role', 'separator');
        sep.append(el('span', '', dayLabel(node.dataset.at)));
        container.insertBefore(sep, node);
        last = day;
      }
    }
  }

  window.KefuDom = { el, clock, full, timeEl, dayLabel, ago, markDays };
})();
