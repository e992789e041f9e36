// runhook dashboard: one page that talks to runhook's HTTP API only.
//
// Routes are paths under /ui/ (history API), each a page of its own module.
// Every value from the server is put in the page as text, never parsed as
// HTML, so a run named "<script>" is shown, not run. Requests carry the
// session cookie (HttpOnly: no script sees it) and, for changes, the
// session's CSRF token. This module routes, signs in and out.

import { ApiError, api, session } from './api.js';
import { deliveriesPage, deliveryPage } from './deliveries.js';
import { healthPage } from './health.js';
import { field, h, link, main, show } from './lib.js';
import { pluginsPage } from './plugins.js';
import { alertsPage } from './alerts.js';
import { datasetPage, datasetsPage } from './datasets.js';
import { queuesPage, reviewPage } from './queues.js';
import { ruleForm } from './rule-form.js';
import { rulePage, rulesPage } from './rules.js';
import { runPage, runsPage } from './runs.js';

document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href^="/ui/"]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.getAttribute('href').startsWith('/ui/assets/')) return;
  e.preventDefault();
  history.pushState(null, '', a.getAttribute('href'));
  route();
});
window.addEventListener('popstate', () => route());
window.addEventListener('runhook:navigate', () => route());
window.addEventListener('runhook:signed-out', (e) => signIn(e.detail));

async function route() {
  const path = location.pathname.replace(/\/+$/, '') || '/';
  if (!session.csrf) {
    try {
      session.csrf = (await api('GET', '/ui/session')).csrf;
    } catch (_) {
      return signIn();
    }
  }
  document.getElementById('nav').hidden = false;
  const parts = path.split('/').filter(Boolean); // ['ui', section, id, action]
  const section = parts[1] || 'rules';
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.section === section) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const params = new URLSearchParams(location.search);
  try {
    if (section === 'rules' && !parts[2]) await rulesPage();
    else if (section === 'rules' && parts[2] === 'new') await ruleForm(null);
    else if (section === 'rules' && parts[3] === 'edit') await ruleForm(parts[2]);
    else if (section === 'rules') await rulePage(parts[2]);
    else if (section === 'deliveries' && parts[2]) await deliveryPage(parts[2]);
    else if (section === 'deliveries') await deliveriesPage(params);
    else if (section === 'runs' && parts[2]) await runPage(parts[2]);
    else if (section === 'runs') await runsPage(params);
    else if (section === 'plugins') await pluginsPage();
    else if (section === 'queues' && parts[2]) await reviewPage(parts[2], 0);
    else if (section === 'queues') await queuesPage();
    else if (section === 'datasets' && parts[2]) await datasetPage(parts[2]);
    else if (section === 'datasets') await datasetsPage();
    else if (section === 'alerts') await alertsPage();
    else if (section === 'health') await healthPage();
    else show('Not found', h('p', {}, 'There is no such page. ', link('/ui/rules', 'Go to the rules.')));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    show('Something went wrong', h('p', { class: 'notice bad', role: 'alert' }, e.detail || String(e)));
  }
  main().focus();
}

function signIn(message) {
  document.getElementById('nav').hidden = true;
  const key = h('input', { type: 'password', name: 'api_key', autocomplete: 'current-password', required: true });
  const form = h('form', { class: 'stack signin', novalidate: true },
    h('p', {}, 'Sign in with this server\'s API key (the one the SDK uses as LANGSMITH_API_KEY).'),
    field('api_key', 'API key', key), h('div', {}, h('button', { type: 'submit' }, 'Sign in')));
  const error = form.querySelector('#api_key-error');
  error.setAttribute('role', 'alert');
  error.textContent = message || '';
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const resp = await api('POST', '/ui/session', { api_key: key.value });
      session.csrf = resp.csrf;
      if (!location.pathname.startsWith('/ui/')) history.replaceState(null, '', '/ui/rules');
      route();
    } catch (err) {
      key.setAttribute('aria-invalid', 'true');
      error.textContent = err.status === 401 ? 'That is not this server\'s API key.' : err.detail;
      key.focus();
    }
  });
  show('Sign in', form);
  key.focus();
}

document.getElementById('signout').addEventListener('click', async () => {
  try { await api('DELETE', '/ui/session'); } catch (_) { /* signed out either way */ }
  session.csrf = null;
  history.pushState(null, '', '/ui/rules');
  signIn('Signed out.');
});

route();
