// The platform console: actions on a merchant, the announcement editor and system settings.
// Every action goes through the JSON API (KefuApp.api adds the CSRF header); the page then
// reloads so what it shows always comes from the server.
(() => {
  const { api, toast } = window.KefuApp;

  function showError(id, err) {
    const node = document.getElementById(id);
    if (!node) { toast(err.message); return; }
    const fields = Object.entries(err.fields || {}).map(([k, v]) => `${k}: ${v}`);
    node.textContent = fields.length ? fields.join(' · ') : err.message;
    node.hidden = false;
  }

  // ---- One merchant -------------------------------------------------------------------
  const merchant = document.getElementById('merchant');
  if (merchant) {
    const base = `/api/platform/v1/merchants/${merchant.dataset.id}`;
    merchant.addEventListener('click', async (event) => {
      const button = event.target.closest('[data-action]');
      if (!button) return;
      if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
      button.disabled = true;
      try {
        const action = button.dataset.action;
        const result = await api('POST', `${base}/${action}`);
        if (action === 'impersonate') { window.location.href = result.redirect || '/app'; return; }
        window.location.reload();
      } catch (err) {
        button.disabled = false;
        showError('merchant-error', err);
      }
    });
    for (const form of document.querySelectorAll('[data-form="plan"], [data-form="trial"]')) {
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        const data = new FormData(form);
        const body = form.dataset.form === 'plan' ? { plan: data.get('plan') } : { days: Number(data.get('days')) };
        try {
          await api('POST', `${base}/${form.dataset.form}`, body);
          window.location.reload();
        } catch (err) { showError('merchant-error', err); }
      });
    }
    const dialog = document.getElementById('delete-dialog');
    document.querySelector('[data-open="delete-dialog"]').addEventListener('click', () => dialog.showModal());
    dialog.querySelector('form').addEventListener('submit', async (event) => {
      if (event.submitter && event.submitter.value === 'cancel') return;
      event.preventDefault();
      const data = new FormData(event.target);
      const hard = data.get('mode') === 'hard';
      try {
        await api('POST', `${base}/delete`, { hard, confirm: data.get('confirm') || null });
        if (hard) window.location.href = '/platform/merchants';
        else window.location.reload();
      } catch (err) { showError('delete-error', err); }
    });
  }

  // ---- Announcements --------------------------------------------------------------------
  const annForm = document.getElementById('announcement-form');
  if (annForm) {
    const section = document.getElementById('announcements');
    const heading = document.getElementById('compose-title');
    const cancel = document.getElementById('announcement-cancel');
    const plansChosen = () => [...annForm.querySelectorAll('input[name="plans"]:checked')].map((i) => i.value);
    function edit(item) {
      annForm.elements.id.value = item.dataset.id;
      annForm.elements.title.value = item.dataset.title;
      annForm.elements.body.value = item.dataset.body;
      const plans = item.dataset.plans ? item.dataset.plans.split(',') : [];
      annForm.querySelector(`input[name="audience"][value="${plans.length ? 'plans' : 'all'}"]`).checked = true;
      for (const box of annForm.querySelectorAll('input[name="plans"]')) box.checked = plans.includes(box.value);
      heading.textContent = heading.dataset.edit;
      cancel.hidden = false;
      annForm.elements.title.focus();
      annForm.scrollIntoView({ behavior: 'smooth', block: 'start' });
    }
    annForm.addEventListener('reset', () => {
      annForm.elements.id.value = '';
      heading.textContent = heading.dataset.new;
      cancel.hidden = true;
    });
    annForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const id = annForm.elements.id.value;
      const audience = annForm.querySelector('input[name="audience"]:checked').value;
      const body = {
        title: annForm.elements.title.value,
        body: annForm.elements.body.value,
        plans: audience === 'plans' ? plansChosen() : null,
      };
      const publish = event.submitter && event.submitter.value === '1';
      try {
        if (id) {
          await api('PATCH', `/api/platform/v1/announcements/${id}`, body);
          if (publish) await api('POST', `/api/platform/v1/announcements/${id}/publish`);
        } else {
          await api('POST', '/api/platform/v1/announcements', { ...body, publish });
        }
        window.location.reload();
      } catch (err) { showError('announcement-error', err); }
    });
    document.addEventListener('click', async (event) => {
      const button = event.target.closest('[data-act]');
      if (!button) return;
      const item = button.closest('.announcement-item');
      const url = `/api/platform/v1/announcements/${item.dataset.id}`;
      try {
        switch (button.dataset.act) {
          case 'edit': edit(item); return;
          case 'publish': await api('POST', `${url}/publish`); break;
          case 'unpublish': await api('POST', `${url}/unpublish`); break;
          case 'delete':
            if (!window.confirm(section.dataset.tConfirmDelete)) return;
            await api('DELETE', url);
            break;
          default: return;
        }
        window.location.reload();
      } catch (err) { toast(err.message); }
    });
  }

  // ---- System settings ------------------------------------------------------------------
  const systemForm = document.getElementById('system-form');
  if (systemForm) {
    systemForm.addEventListener('submit', async (event) => {
      event.preventDefault();
      const f = systemForm.elements;
      const password = f['smtp.password'].value;
      const body = {
        site_title: f.site_title.value,
        site_keywords: f.site_keywords.value,
        site_description: f.site_description.value,
        copyright: f.copyright.value,
        signup_open: f.signup_open.checked,
        default_lang: f.default_lang.value,
        smtp: {
          host: f['smtp.host'].value,
          port: Number(f['smtp.port'].value) || null,
          username: f['smtp.username'].value,
          from: f['smtp.from'].value,
          security: f['smtp.security'].value,
          // Left empty: keep the stored password.
          ...(password ? { password } : {}),
        },
      };
      document.getElementById('system-error').hidden = true;
      try {
        await api('PUT', '/api/platform/v1/settings', body);
        f['smtp.password'].value = '';
        toast(systemForm.dataset.tSaved);
      } catch (err) { showError('system-error', err); }
    });
    // A test email with the saved settings (save first: the server uses what is stored).
    const testButton = document.getElementById('test-email');
    const testResult = document.getElementById('test-email-result');
    testButton.addEventListener('click', async () => {
      testButton.disabled = true;
      testResult.textContent = systemForm.dataset.tSending;
      try {
        const to = document.getElementById('test-email-to').value.trim();
        const sent = await api('POST', '/api/platform/v1/settings/test_email', to ? { to } : {});
        testResult.textContent = `${systemForm.dataset.tSent} ${sent.to}`;
      } catch (err) { testResult.textContent = err.message; }
      testButton.disabled = false;
    });
  }

  // ---- Sign-in providers ----------------------------------------------------------------
  const providers = document.getElementById('providers');
  if (providers) {
    const dialog = document.getElementById('provider-dialog');
    const form = document.getElementById('provider-form');
    const f = form.elements;
    const callback = document.getElementById('provider-callback');
    let editing = null;
    const showCallback = () => {
      const slug = f.slug.value.trim() || f.name.value.trim().toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '');
      callback.textContent = slug ? `${providers.dataset.callbackBase}${slug}/callback` : '';
    };
    const showKind = () => {
      for (const hint of form.querySelectorAll('[data-kind-hint]')) hint.hidden = hint.dataset.kindHint !== f.kind.value;
      f.issuer.required = f.kind.value === 'oidc';
    };
    function open(provider) {
      editing = provider;
      form.reset();
      document.getElementById('provider-error').hidden = true;
      document.getElementById('provider-dialog-title').textContent = provider ? providers.dataset.tEdit : providers.dataset.tAdd;
      if (provider) {
        f.kind.value = provider.kind;
        f.name.value = provider.name;
        f.slug.value = provider.slug;
        f.issuer.value = provider.issuer;
        f.client_id.value = provider.client_id;
        f.enabled.checked = provider.enabled;
        f.client_secret.placeholder = providers.dataset.tSecretSet;
      } else {
        f.client_secret.placeholder = providers.dataset.tSecretRequired;
      }
      showKind();
      showCallback();
      dialog.showModal();
      f.name.focus();
    }
    f.kind.addEventListener('change', showKind);
    f.slug.addEventListener('input', showCallback);
    f.name.addEventListener('input', showCallback);
    document.getElementById('provider-add').addEventListener('click', () => open(null));
    providers.addEventListener('click', async (event) => {
      const button = event.target.closest('[data-action]');
      if (!button) return;
      const provider = JSON.parse(button.closest('tr').dataset.provider);
      if (button.dataset.action === 'edit') { open(provider); return; }
      if (!window.confirm(providers.dataset.tConfirmDelete.replace('{name}', provider.name))) return;
      try {
        await api('DELETE', `/api/platform/v1/identity_providers/${provider.id}`);
        window.location.reload();
      } catch (err) { showError('providers-error', err); }
    });
    form.addEventListener('submit', async (event) => {
      if (event.submitter && event.submitter.value === 'cancel') return;
      event.preventDefault();
      const body = {
        kind: f.kind.value,
        name: f.name.value,
        slug: f.slug.value.trim() || null,
        issuer: f.issuer.value.trim() || null,
        client_id: f.client_id.value,
        enabled: f.enabled.checked,
        // Left empty while editing: keep the stored secret.
        ...(f.client_secret.value || !editing ? { client_secret: f.client_secret.value } : {}),
      };
      try {
        if (editing) await api('PUT', `/api/platform/v1/identity_providers/${editing.id}`, body);
        else await api('POST', '/api/platform/v1/identity_providers', body);
        window.location.reload();
      } catch (err) { showError('provider-error', err); }
    });
  }
})();
