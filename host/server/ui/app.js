// runhook dashboard: one page that talks to runhook's HTTP API only.
//
// Routes are paths under /ui/ (history API). Every value from the server
// is put in the page as text (textContent), never parsed as HTML, so a run
// named "<script>" is shown, not run. Requests carry the session cookie
// (HttpOnly: this script never sees it) and, for changes, the session's
// CSRF token in x-csrf-token. The server's 400s name the field that is
// wrong; forms show them next to that field.
'use strict';

const session = { csrf: null };

// ---------------------------------------------------------------- helpers

/** An element: h('a', {href: '/x', class: 'y'}, 'text', child, ...). */
function h(tag, attrs, ...children) {
  const el = tag === 'svg' || tag === 'rect' || tag === 'polyline' || tag === 'line' || tag === 'title'
    ? document.createElementNS('http://www.w3.org/2000/svg', tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function link(href, text, attrs) { return h('a', { href, ...attrs }, text); }

function when(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  return isNaN(d) ? String(ts) : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

function timeCell(ts) { return h('td', {}, ts ? h('time', { datetime: ts }, when(ts)) : '—'); }

function ago(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function pretty(v) { return JSON.stringify(v, null, 2); }

function announce(text) { document.getElementById('status').textContent = text; }

function pill(text, kind) { return h('span', { class: `pill ${kind || ''}` }, text); }

function statusPill(status) {
  return pill(status, status === 'delivered' || status === 'success' ? 'ok'
    : status === 'failed' || status === 'error' ? 'bad' : 'warn');
}

/** A field: label, control, hint and the place its error goes. */
function field(id, label, control, hint) {
  control.id = id;
  const errId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  control.setAttribute('aria-describedby', [hintId, errId].filter(Boolean).join(' '));
  return h('div', { class: 'field', 'data-field': id },
    h('label', { for: id }, label), control,
    hint ? h('div', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'error', id: errId, 'aria-live': 'polite' }));
}

function checkbox(id, label, checked, hint) {
  const box = h('input', { type: 'checkbox', id, checked: !!checked });
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) box.setAttribute('aria-describedby', hintId);
  return h('div', { class: 'field', 'data-field': id },
    h('div', { class: 'field inline' }, box, h('label', { for: id }, label)),
    hint ? h('div', { class: 'hint', id: hintId }, hint) : null);
}

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; this.detail = detail; }
}

/** Calls the API; throws ApiError with the server's `detail` on a 4xx/5xx. */
async function api(method, path, body, raw) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (raw !== undefined) headers['content-type'] = 'application/octet-stream';
  if (method !== 'GET' && session.csrf) headers['x-csrf-token'] = session.csrf;
  const resp = await fetch(path.startsWith('/ui/') ? path : `/api/v1${path}`, {
    method, headers, credentials: 'same-origin', body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 401 && !path.startsWith('/ui/session')) {
    session.csrf = null;
    signIn('Your session ended; sign in again.');
    throw new ApiError(401, 'signed out');
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!resp.ok) throw new ApiError(resp.status, (data && data.detail) || `${resp.status} ${resp.statusText}`);
  return data;
}

// ------------------------------------------------------------- the frame

const main = () => document.getElementById('main');

function show(title, ...nodes) {
  document.title = `${title} · runhook`;
  main().replaceChildren(h('h1', {}, title), ...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

function go(path) {
  history.pushState(null, '', path);
  route();
}

document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href^="/ui/"]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  if (a.getAttribute('href').startsWith('/ui/assets/')) return;
  e.preventDefault();
  go(a.getAttribute('href'));
});
window.addEventListener('popstate', () => route());

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

// ------------------------------------------------------------------ rules

async function rulesPage() {
  const rules = await api('GET', '/runs/rules');
  const rows = rules.map((r) => {
    const d = r.last_24h || {};
    const last = r.last_cycle;
    return h('tr', {},
      h('td', {}, link(`/ui/rules/${r.id}`, r.display_name)),
      h('td', {}, r.is_enabled ? pill('enabled', 'ok') : pill('disabled', 'muted')),
      h('td', {}, r.session_name || r.session_id),
      h('td', { class: 'num' }, `${r.interval_seconds} s`),
      h('td', {}, last ? h('span', {}, when(last.end_time), last.error ? h('span', { class: 'bad' }, ' failed') : null) : 'not yet'),
      h('td', { class: 'num' }, d.runs_seen), h('td', { class: 'num' }, d.runs_matched),
      h('td', { class: 'num' }, d.deliveries_delivered),
      h('td', { class: `num ${d.deliveries_failed ? 'bad' : ''}` }, d.deliveries_failed),
      h('td', {}, r.is_enabled ? when(r.next_cycle_by) : '—'));
  });
  show('Rules',
    h('div', { class: 'toolbar' }, link('/ui/rules/new', 'New rule', { class: 'button' })),
    rules.length === 0 ? h('p', { class: 'muted' }, 'No rules yet. A rule watches a project\'s runs and acts on those its filter selects.')
      : h('table', {},
        h('caption', { class: 'visually-hidden' }, 'Rules, with what they did in the last 24 hours'),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Rule'), h('th', { scope: 'col' }, 'State'), h('th', { scope: 'col' }, 'Project'),
          h('th', { scope: 'col', class: 'num' }, 'Interval'), h('th', { scope: 'col' }, 'Last cycle'),
          h('th', { scope: 'col', class: 'num' }, 'Seen 24 h'), h('th', { scope: 'col', class: 'num' }, 'Matched 24 h'),
          h('th', { scope: 'col', class: 'num' }, 'Delivered 24 h'), h('th', { scope: 'col', class: 'num' }, 'Failed 24 h'),
          h('th', { scope: 'col' }, 'Next cycle by'))),
        h('tbody', {}, rows)));
}

async function plugins() {
  try { return await api('GET', '/plugins'); } catch (e) { if (e.status === 401) throw e; return []; }
}

function pluginLabel(ref, known) {
  if (!ref) return null;
  if (ref.path) return `${ref.path} (file)`;
  const p = known.find((k) => k.sha256 === ref.sha256);
  return p ? `${p.name} (${p.sha256.slice(0, 12)}…)` : `${String(ref.sha256).slice(0, 12)}…`;
}

async function rulePage(id) {
  const [rule, cycles, logs, known] = await Promise.all([
    api('GET', `/runs/rules/${id}`), api('GET', `/runs/rules/${id}/cycles?limit=20`),
    api('GET', `/runs/rules/${id}/logs?limit=50`), plugins()]);
  const notice = h('div', { role: 'status' });
  const act = (label, fn, cls) => h('button', { type: 'button', class: cls || 'secondary', onclick: async () => {
    try { await fn(); } catch (e) { notice.replaceChildren(h('p', { class: 'notice bad' }, e.detail || String(e))); }
  } }, label);
  const toggle = act(rule.is_enabled ? 'Disable' : 'Enable', async () => {
    await api('PATCH', `/runs/rules/${id}`, { is_enabled: !rule.is_enabled });
    announce(rule.is_enabled ? 'Rule disabled.' : 'Rule enabled.');
    await rulePage(id); main().focus();
  });
  const trigger = act('Run a cycle now', async () => {
    await api('POST', `/runs/rules/${id}/trigger`);
    notice.replaceChildren(h('p', { class: 'notice' }, 'Triggered: the rule runs a cycle now.'));
  });
  const dialog = h('dialog', { 'aria-labelledby': 'delete-title' },
    h('h2', { id: 'delete-title' }, `Delete “${rule.display_name}”?`),
    h('p', {}, 'Its log and pending deliveries go with it. This cannot be undone.'),
    h('form', { method: 'dialog', class: 'toolbar' },
      h('button', { value: 'cancel', class: 'secondary' }, 'Keep it'),
      h('button', { value: 'delete', class: 'danger' }, 'Delete')));
  dialog.addEventListener('close', async () => {
    if (dialog.returnValue !== 'delete') return;
    await api('DELETE', `/runs/rules/${id}`);
    announce('Rule deleted.');
    go('/ui/rules');
  });
  const hooks = rule.webhooks.length === 0 ? h('dd', {}, 'none') : h('dd', {}, h('ul', {}, rule.webhooks.map((w) =>
    h('li', {}, h('code', {}, w.url), Object.keys(w.headers || {}).length
      ? h('span', { class: 'muted' }, ` — headers: ${Object.keys(w.headers).join(', ')} (values are never shown)`) : null))));
  const caps = [['match', 'Match'], ['transform', 'Transform'], ['evaluate', 'Evaluate']];
  const used = caps.filter(([c]) => rule.plugins && rule.plugins[c]);
  show(rule.display_name,
    h('div', { class: 'toolbar' }, link(`/ui/rules/${id}/edit`, 'Edit', { class: 'button' }), toggle, trigger,
      link(`/ui/deliveries?rule_id=${id}`, 'Deliveries', { class: 'button secondary' }),
      h('button', { type: 'button', class: 'danger', onclick: () => dialog.showModal() }, 'Delete')),
    notice, dialog,
    h('dl', { class: 'facts' },
      h('dt', {}, 'State'), h('dd', {}, rule.is_enabled ? pill('enabled', 'ok') : pill('disabled')),
      h('dt', {}, 'Project'), h('dd', {}, link(`/ui/runs?project=${rule.session_id}`, rule.session_name || rule.session_id)),
      h('dt', {}, 'Filter'), h('dd', {}, h('code', {}, rule.filter || '(every run)')),
      rule.trace_filter ? [h('dt', {}, 'Trace filter'), h('dd', {}, h('code', {}, rule.trace_filter))] : null,
      rule.tree_filter ? [h('dt', {}, 'Tree filter'), h('dd', {}, h('code', {}, rule.tree_filter))] : null,
      h('dt', {}, 'Sampling'), h('dd', {}, `${Math.round(rule.sampling_rate * 100)} %`),
      h('dt', {}, 'Timing'), h('dd', {}, `${rule.wake_on_ingest ? `woken by new runs, after ${rule.batch_ms} ms` : 'polling'}; at least every ${rule.interval_seconds} s`),
      h('dt', {}, 'Webhooks'), hooks,
      h('dt', {}, 'Signing secret'), h('dd', {}, rule.has_signing_secret ? 'set (never shown again)' : 'none: deliveries are not signed'),
      h('dt', {}, 'Plugins'), h('dd', {}, used.length === 0 ? 'none' : h('ul', {}, used.map(([c, label]) =>
        h('li', {}, `${label}: ${pluginLabel(rule.plugins[c], known)}`)))),
      h('dt', {}, 'Last 24 hours'), h('dd', {}, rule.last_24h
        ? `${rule.last_24h.cycles} cycles (${rule.last_24h.failed_cycles} failed), ${rule.last_24h.runs_seen} runs seen, ${rule.last_24h.runs_matched} matched, ${rule.last_24h.deliveries_delivered} delivered, ${rule.last_24h.deliveries_failed} failed, ${rule.last_24h.deliveries_pending} pending` : '—')),
    h('h2', {}, 'Cycles'),
    cycles.length === 0 ? h('p', { class: 'muted' }, 'No cycle yet.') : h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Window end'), h('th', { scope: 'col', class: 'num' }, 'Runs seen'),
        h('th', { scope: 'col', class: 'num' }, 'Acted on'), h('th', { scope: 'col' }, 'Error'))),
      h('tbody', {}, cycles.map((c) => h('tr', {}, timeCell(c.end_time), h('td', { class: 'num' }, c.candidates),
        h('td', { class: 'num' }, c.actioned), h('td', { class: c.error ? 'bad' : 'muted' }, c.error || '—'))))),
    h('h2', {}, 'Log'),
    logs.length === 0 ? h('p', { class: 'muted' }, 'The rule has not acted on any run yet.') : h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Run'), h('th', { scope: 'col' }, 'Applied'),
        h('th', { scope: 'col' }, 'Webhook'), h('th', { scope: 'col' }, 'Evaluator'))),
      h('tbody', {}, logs.map((l) => h('tr', {},
        h('td', {}, link(`/ui/runs/${l.run_id}`, `${l.run_name} (${l.run_type})`)), timeCell(l.application_time),
        h('td', {}, outcome(l.webhooks)), h('td', {}, outcome(l.evaluators)))))));
}

function outcome(o) {
  if (!o) return '—';
  const detail = o.payload && (o.payload.error || (o.payload.delivery_ids && o.payload.delivery_ids.length
    ? null : (o.payload.feedback_keys ? o.payload.feedback_keys.join(', ') : null)));
  return h('span', {}, statusPill(o.outcome), detail ? h('span', { class: 'muted' }, ` ${detail}`) : null,
    o.payload && o.payload.delivery_ids ? o.payload.delivery_ids.map((d) => [' ', link(`/ui/deliveries/${d}`, 'delivery')]) : null);
}

// ------------------------------------------------------------- rule form

/** Which form field a 400's message is about: the API names it first. */
function fieldOf(detail) {
  const m = /^invalid rule at ([\w.[\]]+)/.exec(detail) || /^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+)?)/.exec(detail);
  if (!m) return null;
  const name = m[1];
  if (/^webhooks\[\d+\]\.headers/.test(name)) return 'webhook_headers';
  if (/^webhooks/.test(name)) return 'webhook_url';
  if (/^plugins\.(match|transform|evaluate)/.test(name)) return `plugin_${/^plugins\.(\w+)/.exec(name)[1]}`;
  if (/^session_(id|name)|^project/.test(name)) return 'session_name';
  if (/^a rule needs an action/.test(detail)) return 'webhook_url';
  return name.replace(/\..*$/, '');
}

function secretValue() {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return `whsec_${btoa(String.fromCharCode(...bytes))}`;
}

async function ruleForm(id) {
  const [rule, known, projects] = await Promise.all([
    id ? api('GET', `/runs/rules/${id}`) : null, plugins(), api('GET', '/sessions?limit=1000')]);
  const r = rule || { sampling_rate: 1, interval_seconds: 60, batch_ms: 100, wake_on_ingest: true, is_enabled: true,
    max_runs_per_payload: 100, webhooks: [], plugins: {} };
  const input = (value, attrs) => h('input', { value: value === null || value === undefined ? '' : value, ...attrs });
  const area = (value, rows) => h('textarea', { rows: rows || 2, spellcheck: 'false' }, value || '');
  const c = {
    display_name: input(r.display_name, { required: true, autocomplete: 'off' }),
    session_name: input(r.session_name, { list: 'projects', required: true, autocomplete: 'off' }),
    filter: area(r.filter), trace_filter: area(r.trace_filter), tree_filter: area(r.tree_filter),
    sampling_rate: input(r.sampling_rate, { type: 'number', min: 0, max: 1, step: 'any' }),
    interval_seconds: input(r.interval_seconds, { type: 'number', min: 1, max: 86400 }),
    batch_ms: input(r.batch_ms, { type: 'number', min: 0, max: 60000 }),
    max_runs_per_payload: input(r.max_runs_per_payload, { type: 'number', min: 1, max: 10000 }),
    webhook_url: input('', { type: 'url', placeholder: 'https://hooks.example.com/runs', autocomplete: 'off' }),
    webhook_headers: area('', 3),
    hours: input(24, { type: 'number', min: 1, max: 720 }),
  };
  const datalist = h('datalist', { id: 'projects' }, projects.map((p) => h('option', { value: p.name })));
  const pluginFields = [['match', 'Match plugin', 'Decides, per run, whether the rule acts on it (after the filters).'],
    ['transform', 'Transform plugin', 'Rewrites each webhook payload before it is queued.'],
    ['evaluate', 'Evaluator plugin', 'Writes feedback on each run the rule acts on.']].map(([cap, label, hint]) => {
    const current = r.plugins && r.plugins[cap];
    const select = h('select', {}, h('option', { value: '' }, 'none'),
      known.filter((p) => (p.capabilities || []).includes(cap)).map((p) =>
        h('option', { value: `sha256:${p.sha256}`, selected: current && current.sha256 === p.sha256 },
          `${p.name} (${(p.capabilities || []).join(', ')})`)),
      current && current.path ? h('option', { value: `path:${current.path}`, selected: true }, `${current.path} (file)`) : null);
    const config = area(current && current.config !== null && current.config !== undefined ? pretty(current.config) : '', 2);
    c[`plugin_${cap}`] = select;
    c[`plugin_${cap}_config`] = config;
    return h('fieldset', {}, h('legend', {}, label),
      field(`plugin_${cap}`, 'Plugin', select, hint),
      field(`plugin_${cap}_config`, 'Config (JSON, optional)', config));
  });
  const replaceHooks = id ? h('input', { type: 'checkbox', id: 'replace_webhooks' }) : null;
  const hookInputs = h('div', { class: 'stack', hidden: !!id },
    field('webhook_url', 'Webhook URL', c.webhook_url, 'Runs the rule acts on are POSTed here as LangSmith\'s webhook payload.'),
    field('webhook_headers', 'Headers (one "Name: value" per line, optional)', c.webhook_headers,
      'Values are write-only: once saved, they are never shown again.'));
  if (replaceHooks) replaceHooks.addEventListener('change', () => { hookInputs.hidden = !replaceHooks.checked; });
  const sign = h('input', { type: 'checkbox', id: 'new_secret', checked: !id });
  const formError = h('div', { role: 'alert' });
  const trialOut = h('section', { 'aria-live': 'polite', 'aria-label': 'Trial results' });

  const body = () => {
    const b = {
      display_name: c.display_name.value, session_name: c.session_name.value,
      filter: c.filter.value.trim() || null, trace_filter: c.trace_filter.value.trim() || null,
      tree_filter: c.tree_filter.value.trim() || null,
      sampling_rate: Number(c.sampling_rate.value), interval_seconds: Number(c.interval_seconds.value),
      batch_ms: Number(c.batch_ms.value), max_runs_per_payload: Number(c.max_runs_per_payload.value),
      wake_on_ingest: document.getElementById('wake_on_ingest').checked,
      is_enabled: document.getElementById('is_enabled').checked,
    };
    if (!id || replaceHooks.checked) {
      const headers = {};
      for (const line of c.webhook_headers.value.split('\n').map((l) => l.trim()).filter(Boolean)) {
        const at = line.indexOf(':');
        if (at < 1) throw new FormError('webhook_headers', `webhooks[0].headers: "${line}" is not "Name: value"`);
        headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      }
      b.webhooks = c.webhook_url.value.trim() ? [{ url: c.webhook_url.value.trim(), headers }] : [];
    }
    b.plugins = {};
    for (const cap of ['match', 'transform', 'evaluate']) {
      const v = c[`plugin_${cap}`].value;
      if (!v) continue;
      let config = null;
      const text = c[`plugin_${cap}_config`].value.trim();
      if (text) {
        try { config = JSON.parse(text); } catch (e) { throw new FormError(`plugin_${cap}_config`, `plugins.${cap}.config: not JSON: ${e.message}`); }
      }
      const old = r.plugins && r.plugins[cap];
      const ref = v.startsWith('sha256:') ? { sha256: v.slice(7) } : { path: v.slice(5) };
      const same = old && (old.sha256 === ref.sha256 && old.path === ref.path);
      b.plugins[cap] = { ...ref, config, deadline_ms: same ? old.deadline_ms : null, memory_mib: same ? old.memory_mib : null };
    }
    return b;
  };

  const clearErrors = () => {
    formError.replaceChildren();
    for (const el of document.querySelectorAll('[aria-invalid="true"]')) el.removeAttribute('aria-invalid');
    for (const el of document.querySelectorAll('.field .error')) el.textContent = '';
  };
  const showError = (fieldId, detail) => {
    const control = fieldId && document.getElementById(fieldId);
    const slot = fieldId && document.getElementById(`${fieldId}-error`);
    if (control && slot && !control.closest('[hidden]')) {
      control.setAttribute('aria-invalid', 'true');
      slot.textContent = detail;
      control.focus();
    } else {
      formError.replaceChildren(h('p', { class: 'notice bad error' }, detail));
      formError.focus();
    }
    announce(detail.split('\n')[0]);
  };
  const handle = (e) => {
    if (e instanceof FormError) showError(e.field, e.message);
    else if (e instanceof ApiError) showError(fieldOf(e.detail), e.detail);
    else showError(null, String(e));
  };

  const tryIt = async () => {
    clearErrors();
    try {
      const req = { rule: body(), hours: Number(c.hours.value) || 24 };
      if (id) req.rule_id = id;
      trialOut.replaceChildren(h('p', { class: 'muted' }, 'Trying…'));
      const t = await api('POST', '/runs/rules/validate', req);
      renderTrial(trialOut, t);
      trialOut.scrollIntoView({ block: 'start' });
      announce(`Trial: ${t.matched} runs selected.`);
    } catch (e) { trialOut.replaceChildren(); handle(e); }
  };

  const form = h('form', { class: 'stack', novalidate: true },
    formError, datalist,
    field('display_name', 'Name', c.display_name),
    field('session_name', 'Project', c.session_name, 'The project (LangSmith session) whose runs the rule watches.'),
    field('filter', 'Filter', c.filter, 'LangSmith\'s filter language, e.g. and(eq(run_type, "llm"), eq(status, "error")). Empty: every run.'),
    field('trace_filter', 'Trace filter (on the trace\'s root run)', c.trace_filter),
    field('tree_filter', 'Tree filter (on any run of the trace)', c.tree_filter),
    h('fieldset', {}, h('legend', {}, 'Webhooks'),
      id ? h('div', {}, r.webhooks.length ? h('ul', {}, r.webhooks.map((w) => h('li', {}, h('code', {}, w.url),
        Object.keys(w.headers || {}).length ? ` — headers ${Object.keys(w.headers).join(', ')} (values hidden)` : ''))) : h('p', { class: 'muted' }, 'none'),
      h('div', { class: 'field inline' }, replaceHooks, h('label', { for: 'replace_webhooks' }, 'Replace the webhooks (header values must be entered again)'))) : null,
      hookInputs,
      h('div', { class: 'field inline' }, sign, h('label', { for: 'new_secret' },
        id ? 'Replace the signing secret (the old one keeps signing for a while)' : 'Sign deliveries (Standard Webhooks); the secret is shown once, after saving'))),
    pluginFields,
    h('fieldset', {}, h('legend', {}, 'Timing and limits'),
      checkbox('is_enabled', 'Enabled', r.is_enabled),
      checkbox('wake_on_ingest', 'Woken by new runs', r.wake_on_ingest, 'Off: a cycle every interval, as LangSmith polls.'),
      field('batch_ms', 'Batch (ms)', c.batch_ms, 'How long a woken rule collects runs before its cycle.'),
      field('interval_seconds', 'Interval (s)', c.interval_seconds, 'The longest a run waits.'),
      field('sampling_rate', 'Sampling rate (0 to 1)', c.sampling_rate),
      field('max_runs_per_payload', 'Runs per payload', c.max_runs_per_payload)),
    h('fieldset', {}, h('legend', {}, 'Try it before saving'),
      field('hours', 'Over the stored runs of the last … hours', c.hours),
      h('div', {}, h('button', { type: 'button', class: 'secondary', id: 'try', onclick: tryIt }, 'Try it on stored runs')),
      h('p', { class: 'hint' }, 'Shows the runs the rule would select, the payload it would send and the feedback its evaluator would write. Nothing is sent or stored.')),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', id: 'save' }, id ? 'Save changes' : 'Create rule'),
      link(id ? `/ui/rules/${id}` : '/ui/rules', 'Cancel', { class: 'button secondary' })));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors();
    try {
      const b = body();
      const secret = sign.checked ? secretValue() : null;
      if (secret) b.signing_secret = secret;
      const saved = id ? await api('PATCH', `/runs/rules/${id}`, b) : await api('POST', '/runs/rules', b);
      announce('Rule saved.');
      if (secret) {
        show(`Saved “${saved.display_name}”`,
          h('div', { class: 'notice secret', role: 'alert' },
            h('p', {}, 'The signing secret, shown this once: copy it to your receiver now.'),
            h('p', {}, h('code', { id: 'signing-secret', tabindex: '0' }, secret))),
          link(`/ui/rules/${saved.id}`, 'Go to the rule', { class: 'button' }));
        history.pushState(null, '', `/ui/rules/${saved.id}`);
        main().focus();
      } else {
        go(`/ui/rules/${saved.id}`);
      }
    } catch (err) { handle(err); }
  });
  formError.tabIndex = -1;
  show(id ? `Edit “${r.display_name}”` : 'New rule', form, trialOut);
}

class FormError extends Error {
  constructor(field, message) { super(message); this.field = field; }
}

function runsTable(runs, caption) {
  return h('table', {}, h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Run'), h('th', { scope: 'col' }, 'Type'),
      h('th', { scope: 'col' }, 'Started'), h('th', { scope: 'col', class: 'num' }, 'Latency'), h('th', { scope: 'col' }, 'Status'))),
    h('tbody', {}, runs.map((run) => {
      const latency = run.end_time && run.start_time ? (new Date(run.end_time) - new Date(run.start_time)) / 1000 : null;
      return h('tr', {}, h('td', {}, link(`/ui/runs/${run.id}`, run.name)), h('td', {}, run.run_type),
        timeCell(run.start_time), h('td', { class: 'num' }, latency === null ? '—' : `${latency.toFixed(2)} s`),
        h('td', {}, run.error ? h('span', { class: 'bad' }, 'error: ', run.error.split('\n')[0].slice(0, 120)) : statusPill(run.status || 'success')));
    })));
}

function renderTrial(out, t) {
  const parts = [h('h2', {}, 'What the rule would have done'),
    h('p', { id: 'trial-summary' }, `Read ${t.scanned} finished runs since ${when(t.window.since)}${t.complete ? '' : ' (stopped at the limit; older runs were not read)'}: `,
      `${t.filtered} passed the filters, ${t.matched} would be acted on.`,
      t.sampling_rate < 1 ? ` Sampling (${t.sampling_rate}) would keep about ${Math.round(t.matched * t.sampling_rate)} of them.` : '')];
  if (t.runs.length) parts.push(runsTable(t.runs, 'Runs the rule would act on'));
  if (t.match_errors.length) {
    parts.push(h('h3', {}, 'Match plugin errors'),
      h('ul', {}, t.match_errors.map((e) => h('li', {}, link(`/ui/runs/${e.run_id}`, e.run_id), ': ', h('span', { class: 'bad' }, e.error)))));
  }
  t.payloads.forEach((p, i) => parts.push(h('details', { open: i === 0 },
    h('summary', {}, `Payload ${i + 1} of ${t.payloads.length} (${p.run_ids.length} runs), sent to each of ${t.webhooks} webhook(s)`),
    p.error ? h('p', { class: 'bad' }, `Transform plugin failed: ${p.error}`)
      : h('pre', { class: 'json' }, typeof p.body === 'string' ? p.body : pretty(p.body)))));
  if (t.feedback.length) {
    parts.push(h('h3', {}, 'Feedback the evaluator would write'), h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Run'), h('th', { scope: 'col' }, 'Key'),
        h('th', { scope: 'col', class: 'num' }, 'Score'), h('th', { scope: 'col' }, 'Comment'))),
      h('tbody', {}, t.feedback.flatMap((f) => f.error
        ? [h('tr', {}, h('td', {}, f.run_id), h('td', { colspan: 3, class: 'bad' }, f.error))]
        : f.feedback.map((fb) => h('tr', {}, h('td', {}, link(`/ui/runs/${f.run_id}`, f.run_id.slice(0, 8))),
          h('td', {}, fb.key), h('td', { class: 'num' }, fb.score ?? '—'), h('td', {}, fb.comment || '')))))));
  }
  out.replaceChildren(...parts);
}

// ------------------------------------------------------------- deliveries

function toLocalInput(date) {
  const d = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

async function deliveriesPage(params) {
  const rules = await api('GET', '/runs/rules');
  const q = new URLSearchParams();
  for (const k of ['status', 'rule_id', 'since', 'until']) if (params.get(k)) q.set(k, params.get(k));
  q.set('limit', '100');
  const list = await api('GET', `/deliveries?${q}`);
  const names = Object.fromEntries(rules.map((r) => [r.id, r.display_name]));
  const status = h('select', {}, ['', 'pending', 'delivered', 'failed'].map((s) =>
    h('option', { value: s, selected: params.get('status') === s }, s || 'any')));
  const rule = h('select', {}, h('option', { value: '' }, 'any'), rules.map((r) =>
    h('option', { value: r.id, selected: params.get('rule_id') === r.id }, r.display_name)));
  const since = h('input', { type: 'datetime-local', value: params.get('since') ? toLocalInput(new Date(params.get('since'))) : '' });
  const until = h('input', { type: 'datetime-local', value: params.get('until') ? toLocalInput(new Date(params.get('until'))) : '' });
  const filters = h('form', { class: 'toolbar', role: 'search' },
    field('f-status', 'Status', status), field('f-rule', 'Rule', rule),
    field('f-since', 'Queued since', since), field('f-until', 'Queued before', until),
    h('div', {}, h('button', { type: 'submit' }, 'Apply')));
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    if (status.value) p.set('status', status.value);
    if (rule.value) p.set('rule_id', rule.value);
    if (since.value) p.set('since', new Date(since.value).toISOString());
    if (until.value) p.set('until', new Date(until.value).toISOString());
    go(`/ui/deliveries${p.toString() ? `?${p}` : ''}`);
  });

  // Bulk redelivery after an outage: count first, then confirm.
  const bSince = h('input', { type: 'datetime-local', value: toLocalInput(new Date(Date.now() - 3600e3)) });
  const bUntil = h('input', { type: 'datetime-local', value: toLocalInput(new Date(Date.now() + 60e3)) });
  const bRule = h('select', {}, h('option', { value: '' }, 'every rule'), rules.map((r) => h('option', { value: r.id }, r.display_name)));
  const bOut = h('div', { 'aria-live': 'polite' });
  const bulkBody = () => ({ since: new Date(bSince.value).toISOString(), until: new Date(bUntil.value).toISOString(),
    rule_id: bRule.value || null, status: 'failed' });
  const bulk = h('form', { class: 'toolbar' }, field('b-rule', 'Rule', bRule), field('b-since', 'Failed deliveries queued since', bSince),
    field('b-until', 'and before', bUntil), h('div', {}, h('button', { type: 'submit', class: 'secondary' }, 'Count them')));
  bulk.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const { would_redeliver: n } = await api('POST', '/deliveries/redeliver', { ...bulkBody(), dry_run: true });
      if (n === 0) { bOut.replaceChildren(h('p', { class: 'notice' }, 'No failed delivery in that window.')); return; }
      const confirm = h('button', { type: 'button', onclick: async () => {
        const { redelivered } = await api('POST', '/deliveries/redeliver', bulkBody());
        bOut.replaceChildren(h('p', { class: 'notice', role: 'status' }, `${redelivered} deliveries queued again.`));
      } }, `Redeliver ${n} failed deliveries`);
      bOut.replaceChildren(h('p', { class: 'notice' }, `${n} failed deliveries match. `, confirm));
      confirm.focus();
    } catch (err) { bOut.replaceChildren(h('p', { class: 'notice bad', role: 'alert' }, err.detail || String(err))); }
  });

  show('Deliveries', filters,
    list.length === 0 ? h('p', { class: 'muted' }, 'No delivery matches.') : h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Deliveries, newest first'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Queued'), h('th', { scope: 'col' }, 'Rule'),
        h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col', class: 'num' }, 'Attempts'),
        h('th', { scope: 'col', class: 'num' }, 'Runs'), h('th', { scope: 'col' }, 'Last error'), h('th', { scope: 'col' }, 'Details'))),
      h('tbody', {}, list.map((d) => h('tr', { 'data-delivery': d.id }, timeCell(d.created_at),
        h('td', {}, names[d.rule_id] ? link(`/ui/rules/${d.rule_id}`, names[d.rule_id]) : d.rule_id),
        h('td', {}, statusPill(d.status)), h('td', { class: 'num' }, d.attempts), h('td', { class: 'num' }, d.run_ids.length),
        h('td', { class: 'muted' }, d.last_error || '—'),
        h('td', {}, link(`/ui/deliveries/${d.id}`, 'Attempts', { 'aria-label': `Attempts of the delivery queued ${when(d.created_at)}` })))))),
    h('h2', {}, 'Redeliver after an outage'), bulk, bOut);
}

async function deliveryPage(id) {
  const d = await api('GET', `/deliveries/${id}`);
  let rule = null;
  try { rule = await api('GET', `/runs/rules/${d.rule_id}`); } catch (e) { if (e.status === 401) throw e; }
  const longest = Math.max(1, ...d.history.map((a) => a.duration_ms || 0));
  const notice = h('div', { 'aria-live': 'polite' });
  const redeliver = h('button', { type: 'button', id: 'redeliver', disabled: d.status === 'pending', onclick: async () => {
    try {
      await api('POST', `/deliveries/${id}/redeliver`);
      announce('Queued again.');
      await deliveryPage(id);
      document.getElementById('redeliver-notice').replaceChildren(h('p', { class: 'notice' }, 'Queued again; its next attempt shows below when it is made.'));
    } catch (e) { notice.replaceChildren(h('p', { class: 'notice bad' }, e.detail)); }
  } }, 'Redeliver');
  notice.id = 'redeliver-notice';
  show('Delivery',
    h('dl', { class: 'facts' },
      h('dt', {}, 'Status'), h('dd', {}, statusPill(d.status)),
      h('dt', {}, 'Rule'), h('dd', {}, rule ? link(`/ui/rules/${d.rule_id}`, rule.display_name) : d.rule_id),
      h('dt', {}, 'To'), h('dd', {}, h('code', {}, d.url)),
      h('dt', {}, 'Queued'), h('dd', {}, when(d.created_at)),
      h('dt', {}, 'Next attempt'), h('dd', {}, when(d.next_attempt_at)),
      h('dt', {}, 'Runs'), h('dd', {}, d.run_ids.map((r, i) => [i ? ', ' : '', link(`/ui/runs/${r}`, r.slice(0, 8))]))),
    h('div', { class: 'toolbar' }, redeliver,
      h('button', { type: 'button', class: 'secondary', onclick: () => deliveryPage(id) }, 'Refresh')),
    notice,
    h('h2', {}, 'Attempts'),
    d.history.length === 0 ? h('p', { class: 'muted' }, 'No attempt yet.') : h('ol', { class: 'timeline', id: 'timeline' },
      d.history.map((a) => {
        const good = a.class === 'success';
        const bar = h('div', { class: 'bar', 'aria-hidden': 'true' });
        bar.style.width = `${Math.max(1, (a.duration_ms / longest) * 100)}%`;
        return h('li', { class: good ? 'succeeded' : 'failed' },
          h('strong', {}, `Attempt ${a.attempt}`), ' · ', h('time', { datetime: a.started_at }, when(a.started_at)),
          ` · ${a.duration_ms} ms · `, pill(a.class, good ? 'ok' : 'bad'),
          a.status_code ? ` · HTTP ${a.status_code}` : '', a.error ? h('div', { class: 'muted' }, a.error) : null, bar);
      })));
}

// ------------------------------------------------------------------- runs

async function runsPage(params) {
  const projects = await api('GET', '/sessions?limit=1000');
  const chosen = params.get('project') || (projects[0] && projects[0].id) || '';
  const project = h('select', {}, projects.map((p) => h('option', { value: p.id, selected: p.id === chosen }, p.name)));
  const filter = h('textarea', { rows: 1, spellcheck: 'false' }, params.get('filter') || '');
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'toolbar', role: 'search' }, field('r-project', 'Project', project),
    field('filter', 'Filter', filter, 'e.g. eq(status, "error") or gt(latency, 5)'), h('div', {}, h('button', { type: 'submit' }, 'Search')));
  const search = async () => {
    filter.removeAttribute('aria-invalid');
    document.getElementById('filter-error').textContent = '';
    if (!project.value) { out.replaceChildren(h('p', { class: 'muted' }, 'No project yet: runs appear once the SDK traces some.')); return; }
    try {
      const res = await api('POST', '/runs/query', { session: [project.value], filter: filter.value.trim() || null, limit: 50,
        select: ['name', 'run_type', 'start_time', 'end_time', 'status', 'error'] });
      out.replaceChildren(res.runs.length ? runsTable(res.runs, 'Runs, newest first') : h('p', { class: 'muted' }, 'No run matches.'));
    } catch (e) {
      if (e.status !== 400) throw e;
      filter.setAttribute('aria-invalid', 'true');
      document.getElementById('filter-error').textContent = e.detail;
      out.replaceChildren();
      filter.focus();
    }
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const p = new URLSearchParams({ project: project.value });
    if (filter.value.trim()) p.set('filter', filter.value.trim());
    history.replaceState(null, '', `/ui/runs?${p}`);
    search();
  });
  show('Runs', form, out);
  await search();
}

async function runPage(id) {
  const run = await api('GET', `/runs/${id}`);
  const [tree, feedback, rules] = await Promise.all([
    api('POST', '/runs/query', { trace: run.trace_id, limit: 100, select: ['name', 'run_type', 'parent_run_id', 'start_time', 'end_time', 'error', 'status'] }),
    api('GET', `/feedback?run=${id}`), api('GET', `/runs/${id}/rules`)]);
  const children = {};
  for (const r of tree.runs) (children[r.parent_run_id || 'root'] = children[r.parent_run_id || 'root'] || []).push(r);
  for (const k of Object.keys(children)) children[k].sort((a, b) => (a.dotted_order || a.start_time).localeCompare(b.dotted_order || b.start_time));
  const branch = (parent, depth) => {
    const kids = children[parent] || [];
    if (!kids.length || depth > 50) return null;
    return h('ul', { class: depth ? 'tree' : 'tree root' }, kids.map((k) => h('li', {},
      k.id === id ? h('strong', { 'aria-current': 'true' }, `${k.name} (${k.run_type})`) : link(`/ui/runs/${k.id}`, `${k.name} (${k.run_type})`),
      k.error ? h('span', { class: 'bad' }, ' error') : null, branch(k.id, depth + 1))));
  };
  const meta = run.extra && run.extra.metadata;
  show(run.name,
    h('dl', { class: 'facts' },
      h('dt', {}, 'Type'), h('dd', {}, run.run_type),
      h('dt', {}, 'Status'), h('dd', {}, statusPill(run.status || (run.error ? 'error' : 'success'))),
      h('dt', {}, 'Started'), h('dd', {}, when(run.start_time)),
      h('dt', {}, 'Ended'), h('dd', {}, when(run.end_time)),
      h('dt', {}, 'Tags'), h('dd', {}, (run.tags || []).join(', ') || '—'),
      h('dt', {}, 'Rules that acted on it'), h('dd', {}, rules.length ? rules.map((r, i) => [i ? ', ' : '', link(`/ui/rules/${r.rule_id}`, r.display_name)]) : 'none')),
    run.error ? [h('h2', {}, 'Error'), h('pre', { class: 'json bad' }, run.error)] : null,
    h('h2', {}, 'Inputs'), h('pre', { class: 'json' }, pretty(run.inputs)),
    h('h2', {}, 'Outputs'), h('pre', { class: 'json' }, pretty(run.outputs)),
    meta ? [h('h2', {}, 'Metadata'), h('pre', { class: 'json' }, pretty(meta))] : null,
    h('h2', {}, 'Feedback'),
    feedback.length === 0 ? h('p', { class: 'muted' }, 'None.') : h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Key'), h('th', { scope: 'col', class: 'num' }, 'Score'),
        h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col' }, 'Comment'), h('th', { scope: 'col' }, 'Source'))),
      h('tbody', {}, feedback.map((f) => h('tr', {}, h('td', {}, f.key), h('td', { class: 'num' }, f.score ?? '—'),
        h('td', {}, f.value === null || f.value === undefined ? '—' : JSON.stringify(f.value)), h('td', {}, f.comment || ''),
        h('td', { class: 'muted' }, (f.feedback_source && f.feedback_source.type) || ''))))),
    h('h2', {}, 'Trace'), branch('root', 0) || h('p', { class: 'muted' }, 'Only this run.'));
}

// ---------------------------------------------------------------- plugins

async function pluginsPage() {
  const [list, rules] = await Promise.all([plugins(), api('GET', '/runs/rules')]);
  const names = Object.fromEntries(rules.map((r) => [r.id, r.display_name]));
  const file = h('input', { type: 'file', accept: '.wasm,application/wasm' });
  const name = h('input', { type: 'text', autocomplete: 'off', placeholder: 'llm-errors' });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'toolbar' },
    field('p-file', 'Component (.wasm)', file, 'A WebAssembly component exporting runhook\'s match, transform or evaluate.'),
    field('p-name', 'Name', name), h('div', {}, h('button', { type: 'submit' }, 'Upload')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!file.files.length) { out.replaceChildren(h('p', { class: 'notice bad', role: 'alert' }, 'Choose a component file first.')); file.focus(); return; }
    try {
      const label = name.value.trim() || file.files[0].name.replace(/\.wasm$/, '');
      const p = await api('POST', `/plugins?name=${encodeURIComponent(label)}`, undefined, file.files[0]);
      announce(`Uploaded ${p.name}.`);
      await pluginsPage();
      main().focus();
    } catch (err) {
      if (err.status === 401) throw err;
      out.replaceChildren(h('p', { class: 'notice bad error', role: 'alert' }, err.detail));
    }
  });
  show('Plugins',
    h('p', { class: 'muted' }, 'Components uploaded here are stored in the database, so every replica can load them; a rule names one by its digest.'),
    list.length === 0 ? h('p', { class: 'muted' }, 'No plugin uploaded yet.') : h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Uploaded plugins'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Capabilities'),
        h('th', { scope: 'col' }, 'SHA-256'), h('th', { scope: 'col', class: 'num' }, 'Size'), h('th', { scope: 'col' }, 'Uploaded'),
        h('th', { scope: 'col' }, 'Used by'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
      h('tbody', {}, list.map((p) => h('tr', {}, h('td', {}, p.name), h('td', {}, (p.capabilities || []).join(', ')),
        h('td', {}, h('code', { title: p.sha256 }, `${p.sha256.slice(0, 16)}…`)), h('td', { class: 'num' }, `${Math.round(p.size / 1024)} KiB`),
        timeCell(p.created_at),
        h('td', {}, (p.rules || []).length ? p.rules.map((r, i) => [i ? ', ' : '', link(`/ui/rules/${r}`, names[r] || r)]) : 'no rule'),
        h('td', {}, h('button', { type: 'button', class: 'secondary', disabled: (p.rules || []).length > 0,
          'aria-label': `Delete ${p.name}`, onclick: async () => {
            try { await api('DELETE', `/plugins/${p.sha256}`); announce(`Deleted ${p.name}.`); await pluginsPage(); main().focus(); }
            catch (err) { out.replaceChildren(h('p', { class: 'notice bad', role: 'alert' }, err.detail)); }
          } }, 'Delete')))))),
    h('h2', {}, 'Upload a plugin'), form, out);
}

// ----------------------------------------------------------------- health

/** A small bar chart of `values` (one bar per sample), with a text alternative. */
function bars(values, label, kind) {
  const w = 200, hgt = 40, max = Math.max(1, ...values);
  const step = values.length ? w / values.length : w;
  const svg = h('svg', { width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, role: 'img', 'aria-label': label },
    h('title', {}, label),
    h('line', { x1: 0, y1: hgt - 0.5, x2: w, y2: hgt - 0.5, stroke: '#d8dee6' }),
    values.map((v, i) => v > 0 ? h('rect', { x: i * step, y: hgt - (v / max) * hgt, width: Math.max(1, step - 0.5),
      height: (v / max) * hgt, fill: kind === 'bad' ? '#a3262a' : '#1f4e8c' }) : null));
  return svg;
}

function card(title, value, chart, kind) {
  return h('div', { class: 'card' }, h('div', { class: 'muted' }, title),
    h('div', { class: `value ${kind || ''}` }, value), chart);
}

async function healthPage() {
  const s = await api('GET', '/health/series');
  const pts = s.points;
  const series = (f) => pts.map(f);
  const sum = (m) => Object.values(m || {}).reduce((a, b) => a + b, 0);
  const minutes = Math.max(1, Math.round((Date.now() - new Date(s.since)) / 60000));
  const t = s.totals;
  const p99 = s.plugin_p99 ? (s.plugin_p99.seconds !== undefined ? `≤ ${s.plugin_p99.seconds * 1000} ms` : `> ${s.plugin_p99.over_seconds} s`) : '—';
  const failedDeliveries = (t.deliveries && t.deliveries.failed) || 0;
  const pluginErrors = sum(t.plugin_calls) - ((t.plugin_calls && t.plugin_calls.ok) || 0);
  show('Health',
    h('p', { class: 'muted' }, `The last ${minutes} min of this server (one sample every ${s.sample_seconds} s). Outbox figures are the store's, for every replica.`),
    h('div', { class: 'cards' },
      card('Outbox depth', s.outbox.depth, bars(series((p) => p.outbox_depth), 'Outbox depth over time')),
      card('Oldest pending delivery', ago(s.outbox.oldest_age_seconds), bars(series((p) => p.outbox_oldest_age_seconds), 'Oldest pending age over time'),
        s.outbox.oldest_age_seconds > 300 ? 'bad' : ''),
      card('Delivered', (t.deliveries && t.deliveries.delivered) || 0, bars(series((p) => p.deliveries.delivered || 0), 'Deliveries delivered per sample')),
      card('Failed deliveries', failedDeliveries, bars(series((p) => p.deliveries.failed || 0), 'Deliveries failed per sample', 'bad'), failedDeliveries ? 'bad' : ''),
      card('Rule cycle failures', (t.cycles && t.cycles.error) || 0, bars(series((p) => p.cycle_failures), 'Rule cycle failures per sample', 'bad'),
        (t.cycles && t.cycles.error) ? 'bad' : ''),
      card('Rule cycles', sum(t.cycles), null),
      card('Plugin calls', sum(t.plugin_calls), bars(series((p) => sum(p.plugin_calls)), 'Plugin calls per sample')),
      card('Plugin errors', pluginErrors, bars(series((p) => sum(p.plugin_calls) - (p.plugin_calls.ok || 0)), 'Plugin errors per sample', 'bad'), pluginErrors ? 'bad' : ''),
      card('Plugin p99 duration', p99, null),
      card('Runs ingested', t.runs_ingested, bars(series((p) => p.runs_ingested), 'Runs ingested per sample'))),
    h('h2', {}, 'Plugin calls by outcome'),
    Object.keys(t.plugin_calls || {}).length === 0 ? h('p', { class: 'muted' }, 'No plugin call in this span.')
      : h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Outcome'), h('th', { scope: 'col', class: 'num' }, 'Calls'))),
        h('tbody', {}, Object.entries(t.plugin_calls).map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', { class: 'num' }, v))))),
    h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'secondary', onclick: () => healthPage() }, 'Refresh')));
}

route();
