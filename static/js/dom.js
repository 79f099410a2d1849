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

  window.KefuDom = { el };
})();
