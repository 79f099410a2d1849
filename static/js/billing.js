// The billing page (owners): choosing a plan goes through Stripe Checkout (or, with a live
// subscription, changes it at once), payment methods, invoices and cancelling through
// Stripe's customer portal. The server decides; this page follows the URL it answers.
(() => {
  'use strict';
  const root = document.getElementById('billing');
  if (!root) return;
  const t = root.dataset;
  const { api } = window.KefuApp;
  const errorBox = document.getElementById('billing-error');

  async function go(button, call) {
    errorBox.hidden = true;
    const label = button.textContent;
    const buttons = root.querySelectorAll('button[data-plan], button[data-portal]');
    buttons.forEach((b) => { b.disabled = true; });
    button.textContent = t.tWorking;
    try {
      const { url } = await call();
      window.location.assign(url);
    } catch (err) {
      errorBox.textContent = Object.values(err.fields || {}).join(' · ') || err.message;
      errorBox.hidden = false;
      buttons.forEach((b) => { b.disabled = false; });
      button.textContent = label;
    }
  }

  root.addEventListener('click', (e) => {
    const choose = e.target.closest('button[data-plan]');
    if (choose) {
      if (choose.dataset.live === 'true' && !window.confirm(t.tConfirmChange)) return;
      go(choose, () => api('POST', '/api/v1/billing/checkout', { plan: choose.dataset.plan }));
      return;
    }
    const portal = e.target.closest('button[data-portal]');
    if (portal) {
      const body = portal.dataset.portal === 'cancel' ? { flow: 'cancel' } : {};
      go(portal, () => api('POST', '/api/v1/billing/portal', body));
    }
  });

  // Back from Checkout the subscription is activated by Stripe's webhook, a moment later:
  // look again until the page shows it (at most a minute).
  const params = new URLSearchParams(window.location.search);
  if (params.get('checkout') === 'success' && t.status !== 'active') {
    let tries = 0;
    const timer = setInterval(async () => {
      tries += 1;
      try {
        const view = await api('GET', '/api/v1/billing');
        if (view.status === 'active' || tries > 20) { clearInterval(timer); window.location.replace('/app/billing'); }
      } catch (_) { clearInterval(timer); }
    }, 3000);
  }
})();
