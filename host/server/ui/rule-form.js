// Creating and editing a rule, and trying it before saving: every error
// the API answers is shown next to the field it names.

import { ApiError, api, listPlugins } from './api.js';
import { formatFieldOf, formatPicker } from './formats.js';
import { announce, checkbox, field, go, h, link, main, show } from './lib.js';
import { renderTrial } from './trial.js';


/** Which form field a 400's message is about: the API names it first. */
function fieldOf(detail) {
  const format = formatFieldOf(detail);
  if (format) return format;
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

export async function ruleForm(id) {
  const [rule, known, projects, queues, datasets] = await Promise.all([
    id ? api('GET', `/runs/rules/${id}`) : null, listPlugins(), api('GET', '/sessions?limit=1000'),
    api('GET', '/annotation-queues?limit=1000'), api('GET', '/datasets?limit=1000')]);
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
    add_to_annotation_queue_id: h('select', {}, h('option', { value: '' }, 'none'), queues.map((q) =>
      h('option', { value: q.id, selected: q.id === r.add_to_annotation_queue_id }, q.name))),
    add_to_dataset_id: h('select', {}, h('option', { value: '' }, 'none'), datasets.map((d) =>
      h('option', { value: d.id, selected: d.id === r.add_to_dataset_id }, d.name))),
    group_by: h('select', {}, h('option', { value: '' }, 'each run'),
      h('option', { value: 'thread_id', selected: r.group_by === 'thread_id' }, 'threads (by thread_id)')),
    thread_idle_seconds: input(r.thread_idle_seconds || 600, { type: 'number', min: 60, max: 86400 }),
  };
  const idleField = field('thread_idle_seconds', 'Thread idle time (s)', c.thread_idle_seconds,
    'A thread is acted on once no run of it has ended for this long (60 to 86400).');
  idleField.hidden = !r.group_by;
  c.group_by.addEventListener('change', () => { idleField.hidden = !c.group_by.value; });
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
  const picker = formatPicker();
  const hookInputs = h('div', { class: 'stack', hidden: !!id },
    field('webhook_url', 'Webhook URL', c.webhook_url, 'Runs the rule acts on are POSTed here as LangSmith\'s webhook payload.'),
    field('webhook_headers', 'Headers (one "Name: value" per line, optional)', c.webhook_headers,
      'Values are write-only: once saved, they are never shown again.'),
    ...picker.fields);
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
      add_to_annotation_queue_id: c.add_to_annotation_queue_id.value || null,
      add_to_dataset_id: c.add_to_dataset_id.value || null,
      add_to_dataset_prefer_correction: document.getElementById('add_to_dataset_prefer_correction').checked,
      group_by: c.group_by.value || null,
    };
    if (b.group_by) b.thread_idle_seconds = Number(c.thread_idle_seconds.value);
    if (!id || replaceHooks.checked) {
      const headers = {};
      for (const line of c.webhook_headers.value.split('\n').map((l) => l.trim()).filter(Boolean)) {
        const at = line.indexOf(':');
        if (at < 1) throw new FormError('webhook_headers', `webhooks[0].headers: "${line}" is not "Name: value"`);
        headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      }
      b.webhooks = c.webhook_url.value.trim() ? [{ url: c.webhook_url.value.trim(), headers, format: picker.value() }] : [];
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
    h('fieldset', {}, h('legend', {}, 'Queue, dataset and threads'),
      field('add_to_annotation_queue_id', 'Annotation queue', c.add_to_annotation_queue_id,
        'Each run acted on is added to this queue for a person to review (before the webhook).'),
      field('add_to_dataset_id', 'Dataset', c.add_to_dataset_id, 'Each run acted on becomes an example of this dataset.'),
      checkbox('add_to_dataset_prefer_correction', 'Use a feedback correction as the example\'s outputs, when the run has one',
        r.add_to_dataset_prefer_correction),
      field('group_by', 'Act on', c.group_by,
        'Threads: the runs sharing a thread_id are acted on together once the thread is idle (annotation queue and webhook only).'),
      idleField),
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
      h('p', { class: 'hint' }, 'Shows the runs the rule would select, what it would add to its queue and dataset, the payload it would send and the feedback its evaluator would write. Nothing is sent or stored.')),
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
