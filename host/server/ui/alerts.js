// Alerts on aggregates: the saved alerts with where their evaluations left
// them (to edit, pause or delete), and a form that backtests an alert over
// the stored runs (POST /alerts/backtest), drawing the metric against its
// thresholds with when it would have fired and resolved, then saves it
// (POST /alerts, or PATCH when editing one), in a message format if chosen.

import { api } from './api.js';
import { formatFieldOf, formatPicker } from './formats.js';
import { announce, field, h, main, pill, show, timeCell, when } from './lib.js';

const METRICS = [['error_rate', 'Error rate'], ['error_count', 'Errors'], ['run_count', 'Runs'],
  ['latency_p50', 'Latency p50 (s)'], ['latency_p95', 'Latency p95 (s)'], ['latency_p99', 'Latency p99 (s)'],
  ['total_tokens', 'Total tokens'], ['total_cost', 'Total cost'],
  ['feedback_avg', 'Feedback average (a key)'], ['feedback_count', 'Feedback count (a key)']];

/** The field a 400 is about: the API names it first ("invalid alert at metric.kind: ..." too). */
function fieldOf(detail) {
  const format = formatFieldOf(detail);
  if (format) return format;
  const m = /^invalid alert at ([a-z_]+)/.exec(detail) || /^([a-z_]+)/.exec(detail);
  if (!m) return null;
  if (/^critical \(/.test(detail)) return 'critical';
  if (/^a threshold/.test(detail)) return 'warning';
  return { session_id: 'session_name', key: 'feedback_key', webhooks: 'webhook_url' }[m[1]] || m[1];
}

/** The series as a line against the thresholds (SVG attributes only: the CSP allows no inline style). */
function chart(points, warning, critical) {
  const w = 760, hgt = 180, pad = 4;
  const values = points.map((p) => p.value).filter((v) => v !== null);
  const max = Math.max(1e-9, ...values, warning ?? 0, critical ?? 0) * 1.1;
  const x = (i) => pad + (i / Math.max(1, points.length - 1)) * (w - 2 * pad);
  const y = (v) => hgt - pad - (v / max) * (hgt - 2 * pad);
  const line = points.map((p, i) => (p.value === null ? null : `${x(i).toFixed(1)},${y(p.value).toFixed(1)}`)).filter(Boolean).join(' ');
  const rule = (v, colour) => (v === null || v === undefined ? null
    : h('line', { x1: pad, x2: w - pad, y1: y(v), y2: y(v), stroke: colour, 'stroke-dasharray': '4 3' }));
  const bad = points.map((p, i) => (p.level === 'ok' ? null
    : h('rect', { x: x(i) - 1, y: hgt - pad - 3, width: 2, height: 3, fill: p.level === 'critical' ? '#a3262a' : '#8a5a00' })));
  const label = `The metric over ${points.length} evaluations, peaking at ${values.length ? Math.max(...values) : 'no data'}`;
  return h('svg', { width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, role: 'img', 'aria-label': label, id: 'backtest-chart' },
    h('title', {}, label), h('line', { x1: 0, y1: hgt - 0.5, x2: w, y2: hgt - 0.5, stroke: '#d8dee6' }),
    rule(warning, '#8a5a00'), rule(critical, '#a3262a'),
    h('polyline', { points: line, fill: 'none', stroke: '#1f4e8c', 'stroke-width': 1.5 }), bad);
}

const levelPill = (level) => pill(level, level === 'ok' ? 'ok' : level === 'critical' ? 'bad' : 'warn');

/** The saved alerts: each one's level, value and last evaluation, to edit, pause or delete. */
function savedTable(alerts, edit) {
  if (alerts.length === 0) return h('p', { class: 'muted' }, 'No alert saved yet.');
  return h('table', { id: 'saved-alerts' }, h('caption', { class: 'visually-hidden' }, 'Saved alerts'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Alert'), h('th', { scope: 'col' }, 'Project'),
      h('th', { scope: 'col' }, 'Metric'), h('th', { scope: 'col' }, 'Level'), h('th', { scope: 'col', class: 'num' }, 'Value'),
      h('th', { scope: 'col' }, 'Evaluated'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
    h('tbody', {}, alerts.map((a) => h('tr', {}, h('td', {}, a.display_name), h('td', {}, a.session_name || a.session_id),
      h('td', {}, `${a.metric.kind}${a.metric.key ? ` (${a.metric.key})` : ''} over ${a.window_minutes} min`),
      h('td', {}, a.is_enabled ? levelPill(a.state.level) : pill('disabled')),
      h('td', { class: 'num' }, a.state.value === null ? '—' : Number(a.state.value.toPrecision(4))),
      timeCell(a.state.evaluated_at),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', 'aria-label': `Edit alert ${a.display_name}`, onclick: () => edit(a) }, 'Edit'),
        h('button', { type: 'button', class: 'secondary', 'aria-label': `${a.is_enabled ? 'Pause' : 'Resume'} alert ${a.display_name}`,
          onclick: async () => {
            await api('PATCH', `/alerts/${a.id}`, { is_enabled: !a.is_enabled });
            announce(`${a.is_enabled ? 'Paused' : 'Resumed'} ${a.display_name}.`);
            await alertsPage();
            main().focus();
          } }, a.is_enabled ? 'Pause' : 'Resume'),
        h('button', { type: 'button', class: 'secondary', 'aria-label': `Delete alert ${a.display_name}`, onclick: async () => {
          await api('DELETE', `/alerts/${a.id}`);
          announce(`Deleted ${a.display_name}.`);
          await alertsPage();
          main().focus();
        } }, 'Delete'))))));
}

export async function alertsPage() {
  const [projects, saved] = await Promise.all([api('GET', '/sessions?limit=1000'), api('GET', '/alerts')]);
  const input = (attrs) => h('input', { autocomplete: 'off', ...attrs });
  const c = {
    display_name: input({ type: 'text', value: 'Error rate' }),
    session_name: input({ type: 'text', list: 'alert-projects' }),
    filter: h('textarea', { rows: 2, spellcheck: 'false' }),
    metric: h('select', {}, METRICS.map(([v, label]) => h('option', { value: v }, label))),
    feedback_key: input({ type: 'text' }),
    window_minutes: input({ type: 'number', min: 1, max: 60, value: 10 }),
    condition: h('select', {}, h('option', { value: 'above' }, 'above'), h('option', { value: 'below' }, 'below')),
    warning: input({ type: 'number', step: 'any' }),
    critical: input({ type: 'number', step: 'any' }),
    no_data: h('select', {}, h('option', { value: 'ignore' }, 'ok (ignore)'), h('option', { value: 'alert' }, 'critical (alert)'),
      h('option', { value: 'keep' }, 'as it was (keep)')),
    hours: input({ type: 'number', min: 1, max: 168, value: 24 }),
    webhook_url: input({ type: 'url', placeholder: 'https://hooks.example.com/alerts' }),
    reminder_minutes: input({ type: 'number', min: 0, max: 1440, value: 60 }),
  };
  const picker = formatPicker();
  const keyField = field('feedback_key', 'Feedback key', c.feedback_key);
  keyField.hidden = true;
  c.metric.addEventListener('change', () => { keyField.hidden = !c.metric.value.startsWith('feedback_'); });
  const out = h('section', { 'aria-live': 'polite', 'aria-label': 'Backtest results' });
  const formError = h('div', { role: 'alert', tabindex: '-1' });
  const num = (el) => (el.value.trim() === '' ? null : Number(el.value));
  const definition = () => {
    formError.replaceChildren();
    for (const el of document.querySelectorAll('[aria-invalid="true"]')) el.removeAttribute('aria-invalid');
    for (const el of document.querySelectorAll('.field .error')) el.textContent = '';
    const metric = { kind: c.metric.value };
    if (metric.kind.startsWith('feedback_')) metric.key = c.feedback_key.value.trim();
    return { display_name: c.display_name.value, session_name: c.session_name.value, filter: c.filter.value.trim() || null,
      metric, window_minutes: num(c.window_minutes), condition: c.condition.value, warning: num(c.warning),
      critical: num(c.critical), no_data: c.no_data.value };
  };
  // Editing a saved alert: its fields in the form, saved with a PATCH
  // that keeps its webhooks unless a new URL is given.
  let editing = null;
  const saveButton = h('button', { type: 'button', class: 'secondary', id: 'save-alert' }, 'Save alert');
  const edit = (a) => {
    editing = a;
    const set = (el, v) => { el.value = v === null || v === undefined ? '' : String(v); };
    set(c.display_name, a.display_name); set(c.session_name, a.session_name); set(c.filter, a.filter);
    set(c.metric, a.metric.kind); set(c.feedback_key, a.metric.key); set(c.window_minutes, a.window_minutes);
    set(c.condition, a.condition); set(c.warning, a.warning); set(c.critical, a.critical); set(c.no_data, a.no_data);
    set(c.reminder_minutes, a.reminder_minutes); set(c.webhook_url, '');
    keyField.hidden = !a.metric.kind.startsWith('feedback_');
    c.webhook_url.placeholder = 'unchanged: leave empty to keep its webhooks';
    saveButton.textContent = `Save changes to ${a.display_name}`;
    announce(`Editing ${a.display_name}.`);
    c.display_name.focus();
  };
  const save = async () => {
    const hook = c.webhook_url.value.trim() ? [{ url: c.webhook_url.value.trim(), format: picker.value() }] : [];
    const alert = { ...definition(), reminder_minutes: num(c.reminder_minutes), webhooks: hook };
    if (editing && hook.length === 0) delete alert.webhooks;
    try {
      const a = editing ? await api('PATCH', `/alerts/${editing.id}`, alert) : await api('POST', '/alerts', alert);
      announce(`Saved ${a.display_name}.`);
      await alertsPage();
      main().focus();
    } catch (err) { failed(err); }
  };
  const run = async (e) => {
    e.preventDefault();
    const alert = definition();
    try {
      out.replaceChildren(h('p', { class: 'muted' }, 'Evaluating…'));
      const t = await api('POST', '/alerts/backtest', { alert, hours: num(c.hours) || 24 });
      renderBacktest(out, t, alert);
      announce(`Backtest: ${t.events.length} notifications.`);
    } catch (err) {
      out.replaceChildren();
      failed(err);
    }
  };
  const failed = (err) => {
    if (err.status === 401) throw err;
    const id = fieldOf(err.detail || '');
    const control = id && document.getElementById(id);
    const slot = id && document.getElementById(`${id}-error`);
    if (control && slot && !control.closest('[hidden]')) {
      control.setAttribute('aria-invalid', 'true');
      slot.textContent = err.detail;
      control.focus();
    } else {
      formError.replaceChildren(h('p', { class: 'notice bad error' }, err.detail || String(err)));
      formError.focus();
    }
    announce(err.detail || String(err));
  };
  const form = h('form', { class: 'stack', novalidate: true, onsubmit: run }, formError,
    h('datalist', { id: 'alert-projects' }, projects.map((p) => h('option', { value: p.name }))),
    field('display_name', 'Name', c.display_name), field('session_name', 'Project', c.session_name),
    field('filter', 'Filter (optional)', c.filter, 'Only the runs this selects, e.g. eq(run_type, "llm").'),
    field('metric', 'Metric', c.metric), keyField,
    field('window_minutes', 'Window (minutes)', c.window_minutes, 'Over the runs that started in the last 1 to 60 minutes.'),
    field('condition', 'Bad when the value is', c.condition),
    field('warning', 'Warning threshold', c.warning), field('critical', 'Critical threshold', c.critical),
    field('no_data', 'A window with nothing to measure is', c.no_data),
    field('hours', 'Backtest over the last … hours', c.hours),
    field('webhook_url', 'Webhook URL (to save)', c.webhook_url, 'Notifications are POSTed here, signed when the alert has a secret (API).'),
    ...picker.fields,
    field('reminder_minutes', 'Reminder while it stays bad (minutes, 0: none)', c.reminder_minutes),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', id: 'backtest' }, 'Backtest on stored runs'),
      saveButton));
  saveButton.addEventListener('click', save);
  show('Alerts',
    h('p', { class: 'muted' }, 'An alert watches a metric over a project\'s recent runs and notifies its webhook when it crosses a threshold, while it stays bad, and when it recovers.'),
    h('h2', {}, 'Saved alerts'), savedTable(saved, edit),
    h('h2', {}, 'New alert'), h('p', { class: 'muted' }, 'Backtest it on the stored runs, then save it.'),
    form, out);
}

function renderBacktest(out, t, alert) {
  const label = (e) => (e.event === 'resolved' ? 'resolved' : `${e.event}: ${e.to}`);
  out.replaceChildren(h('h2', {}, 'Backtest'),
    h('p', { id: 'backtest-summary' }, `${t.points.length} evaluations every ${t.step_seconds} s since ${when(t.window.since)}, over ${t.selected} runs`,
      t.complete ? '' : ' (stopped at max_runs: older runs were not read)', `: ${t.events.length} notifications.`),
    chart(t.points, alert.warning, alert.critical),
    t.events.length === 0 ? h('p', { class: 'muted' }, 'It would not have fired.') : h('table', { id: 'backtest-events' },
      h('caption', { class: 'visually-hidden' }, 'When it would have fired and resolved'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Time'), h('th', { scope: 'col' }, 'Notification'),
        h('th', { scope: 'col', class: 'num' }, 'Value'), h('th', { scope: 'col', class: 'num' }, 'Threshold'))),
      h('tbody', {}, t.events.map((e) => h('tr', {}, h('td', {}, when(e.time)),
        h('td', {}, pill(label(e), e.to === 'ok' ? 'ok' : e.to === 'critical' ? 'bad' : 'warn')),
        h('td', { class: 'num' }, e.value === null ? 'no data' : Number(e.value.toPrecision(4))),
        h('td', { class: 'num' }, e.threshold ?? '—'))))));
}
