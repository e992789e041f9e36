// A trial's results (`POST /runs/rules/validate`): what the rule would
// have done over the stored runs, action by action in LangSmith's order.

import { h, link, pretty, runsTable, when } from './lib.js';

const runLink = (id) => link(`/ui/runs/${id}`, id.slice(0, 8));

export function renderTrial(out, t) {
  const parts = [h('h2', {}, 'What the rule would have done'),
    h('p', { id: 'trial-summary' }, `Read ${t.scanned} finished runs since ${when(t.window.since)}${t.complete ? '' : ' (stopped at the limit; older runs were not read)'}: `,
      `${t.filtered} passed the filters, ${t.matched} would be acted on.`,
      t.sampling_rate < 1 ? ` Sampling (${t.sampling_rate}) would keep about ${Math.round(t.matched * t.sampling_rate)} of them.` : '')];
  if (t.runs.length) parts.push(runsTable(t.runs, t.group_by ? 'Runs of threads the rule would hold' : 'Runs the rule would act on'));
  if (t.threads.length) {
    parts.push(h('h3', {}, 'Threads'), h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Thread'), h('th', { scope: 'col', class: 'num' }, 'Runs'),
        h('th', { scope: 'col' }, 'Last run ended'), h('th', { scope: 'col' }, 'Acted on'))),
      h('tbody', {}, t.threads.map((th) => h('tr', {}, h('td', {}, h('code', {}, th.thread_id)),
        h('td', { class: 'num' }, th.run_ids.length), h('td', {}, when(th.end_time)),
        h('td', {}, th.due ? 'at the next cycle (idle now)' : `once idle, at ${when(th.idle_at)}`))))));
  }
  if (t.annotation_queue) {
    parts.push(h('h3', {}, 'Annotation queue'), h('p', {}, `${t.annotation_queue.run_ids.length} runs would be added: `,
      t.annotation_queue.run_ids.slice(0, 20).flatMap((id, i) => [i ? ', ' : '', runLink(id)])));
  }
  if (t.examples.length) {
    parts.push(h('h3', {}, 'Examples the dataset would get'), h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Run'), h('th', { scope: 'col' }, 'Inputs'), h('th', { scope: 'col' }, 'Outputs'))),
      h('tbody', {}, t.examples.map((e) => h('tr', {}, h('td', {}, runLink(e.source_run_id)),
        h('td', {}, h('pre', { class: 'json' }, pretty(e.inputs))), h('td', {}, h('pre', { class: 'json' }, pretty(e.outputs))))))));
  }
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
