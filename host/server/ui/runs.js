// Runs: a project's runs through the filter language, and a run with its
// inputs, outputs, feedback, trace tree and the rules that acted on it.

import { api } from './api.js';
import { field, h, link, pretty, runsTable, show, statusPill, when } from './lib.js';

export async function runsPage(params) {
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

export async function runPage(id) {
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
