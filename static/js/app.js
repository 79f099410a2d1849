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
  async function api(method, url, body) {
    const init = { method, headers: { 'x-csrf-token': csrf() } };
    if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
    const res = await fetch(url, init);
    const data = res.status === 204 ? {} : await res.json().catch(() => ({}));
    if (!res.ok) {
      const err = new Error((data.error && data.error.message) || res.statusText);
      err.fields = (data.error && data.error.fields) || {};
      throw err;
    }
    return data;
  }
  function toast(text, action) {
    const stack = document.getElementById('toasts');
    if (!stack) return;
    const node = document.createElement(action ? 'button' : 'div');
    node.className = 'toast';
    node.textContent = text;
    if (action) { node.type = 'button'; node.addEventListener('click', () => { node.remove(); action(); }); }
    stack.append(node);
    setTimeout(() => node.remove(), 6000);
  }
  return { api, toast };
})();
