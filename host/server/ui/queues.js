// Annotation queues: the queues, and a reviewer's way through one: the
// next run to review, feedback on it (a score, a comment, a correction),
// then done; or skip it, or take it out of the queue.

import { api } from './api.js';
import { actionForm, announce, field, h, link, main, plural, pretty, show, statusPill, timeCell } from './lib.js';

export async function queuesPage() {
  const queues = await api('GET', '/annotation-queues');
  const name = h('input', { type: 'text', autocomplete: 'off', required: true });
  const description = h('input', { type: 'text', autocomplete: 'off' });
  const [form, out] = actionForm([field('q-name', 'Name', name), field('q-description', 'Description', description)],
    'Create queue', async () => {
      await api('POST', '/annotation-queues', { name: name.value, description: description.value || null });
      return 'Queue created.';
    }, queuesPage);
  show('Annotation queues',
    h('p', { class: 'muted' }, 'Runs set aside for a person to review: by a rule (add_to_annotation_queue_id) or through the API.'),
    queues.length === 0 ? h('p', { class: 'muted' }, 'No queue yet.') : h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Annotation queues'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Queue'), h('th', { scope: 'col' }, 'Description'), h('th', { scope: 'col' }, 'Created'))),
      h('tbody', {}, queues.map((q) => h('tr', {}, h('td', {}, link(`/ui/queues/${q.id}`, q.name)),
        h('td', {}, q.description || ''), timeCell(q.created_at))))),
    h('h2', {}, 'New queue'), form, out);
}

export async function reviewPage(id, skip) {
  const [queue, todo] = await Promise.all([api('GET', `/annotation-queues/${id}`),
    api('GET', `/annotation-queues/${id}/runs?status=needs_my_review&limit=1000`)]);
  const index = Math.min(skip, Math.max(0, todo.length - 1));
  const run = todo[index];
  const notice = h('div', { 'aria-live': 'polite', id: 'review-notice' });
  if (!run) {
    show(queue.name, h('p', { id: 'queue-empty' }, 'Nothing left to review in this queue.'), link('/ui/queues', 'All queues'));
    return;
  }
  const key = h('input', { type: 'text', value: 'correctness', autocomplete: 'off' });
  const score = h('input', { type: 'number', step: 'any', min: 0, max: 1 });
  const comment = h('textarea', { rows: 2 });
  const correction = h('textarea', { rows: 2, spellcheck: 'false' });
  const form = h('form', { class: 'stack' },
    field('r-key', 'Feedback key', key), field('r-score', 'Score (optional)', score, 'For example 1 for right, 0 for wrong.'),
    field('r-comment', 'Comment (optional)', comment),
    field('r-correction', 'Correction (optional)', correction, 'What the output should have been: text, or JSON.'),
    h('div', { class: 'toolbar' }, h('button', { type: 'submit', id: 'done' }, 'Save and mark done'),
      h('button', { type: 'button', class: 'secondary', onclick: () => reviewPage(id, index + 1).then(() => main().focus()) }, 'Skip'),
      h('button', { type: 'button', class: 'secondary', onclick: async () => {
        await api('DELETE', `/annotation-queues/${id}/runs/${run.id}`);
        announce('Taken out of the queue.');
        await reviewPage(id, index);
        main().focus();
      } }, 'Take out of the queue')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = correction.value.trim();
    let fix = null;
    if (text) { try { fix = JSON.parse(text); } catch (_) { fix = text; } }
    try {
      if (score.value !== '' || comment.value.trim() || fix !== null) {
        await api('POST', '/feedback', { run_id: run.id, key: key.value.trim() || 'correctness',
          score: score.value === '' ? null : Number(score.value), comment: comment.value.trim() || null, correction: fix });
      }
      await api('PATCH', `/annotation-queues/${id}/runs/${run.id}`, { done: true });
      announce('Reviewed.');
      await reviewPage(id, index);
      main().focus();
    } catch (err) {
      if (err.status === 401) throw err;
      notice.replaceChildren(h('p', { class: 'notice bad error', role: 'alert' }, err.detail));
    }
  });
  show(queue.name,
    h('p', { id: 'review-position' }, `Run ${index + 1} of ${plural(todo.length, 'run', 'runs')} to review.`),
    queue.rubric_instructions ? h('p', { class: 'notice' }, queue.rubric_instructions) : null,
    h('h2', {}, link(`/ui/runs/${run.id}`, run.name), ' ', statusPill(run.status || (run.error ? 'error' : 'success'))),
    run.error ? h('pre', { class: 'json bad' }, run.error) : null,
    h('h3', {}, 'Inputs'), h('pre', { class: 'json' }, pretty(run.inputs)),
    h('h3', {}, 'Outputs'), h('pre', { class: 'json' }, pretty(run.outputs)),
    form, notice);
}
