// The rules list and a rule's page: settings, cycles, log, and enable,
// disable, trigger, edit and delete.

import { api, listPlugins } from './api.js';
import { announce, go, h, link, main, pill, show, statusPill, timeCell, when } from './lib.js';

export async function rulesPage() {
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

function pluginLabel(ref, known) {
  if (!ref) return null;
  if (ref.path) return `${ref.path} (file)`;
  const p = known.find((k) => k.sha256 === ref.sha256);
  return p ? `${p.name} (${p.sha256.slice(0, 12)}…)` : `${String(ref.sha256).slice(0, 12)}…`;
}

export async function rulePage(id) {
  const [rule, cycles, logs, known] = await Promise.all([
    api('GET', `/runs/rules/${id}`), api('GET', `/runs/rules/${id}/cycles?limit=20`),
    api('GET', `/runs/rules/${id}/logs?limit=50`), listPlugins()]);
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
      rule.group_by ? [h('dt', {}, 'Acts on'), h('dd', {}, `threads, once idle for ${rule.thread_idle_seconds} s`)] : null,
      rule.add_to_annotation_queue_id ? [h('dt', {}, 'Annotation queue'), h('dd', {},
        link(`/ui/queues/${rule.add_to_annotation_queue_id}`, rule.add_to_annotation_queue_name || rule.add_to_annotation_queue_id))] : null,
      rule.add_to_dataset_id ? [h('dt', {}, 'Dataset'), h('dd', {},
        link(`/ui/datasets/${rule.add_to_dataset_id}`, rule.add_to_dataset_name || rule.add_to_dataset_id),
        rule.add_to_dataset_prefer_correction ? ' (a correction, when there is one, as the outputs)' : '')] : null,
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
