// Datasets: the list (and a new one), and a dataset's examples, the runs
// they came from (a rule's add_to_dataset_id, or the SDK's create_example),
// each to look at or delete.

import { api } from './api.js';
import { actionForm, announce, field, h, link, main, plural, pretty, show, timeCell } from './lib.js';

export async function datasetsPage() {
  const datasets = await api('GET', '/datasets?limit=1000');
  const name = h('input', { type: 'text', autocomplete: 'off', required: true });
  const description = h('input', { type: 'text', autocomplete: 'off' });
  const [form, out] = actionForm([field('d-name', 'Name', name), field('d-description', 'Description', description)],
    'Create dataset', async () => {
      await api('POST', '/datasets', { name: name.value, description: description.value || null });
      return 'Dataset created.';
    }, datasetsPage);
  show('Datasets',
    h('p', { class: 'muted' }, 'Examples kept for evaluation: added by a rule (add_to_dataset_id) or through the SDK.'),
    datasets.length === 0 ? h('p', { class: 'muted' }, 'No dataset yet.') : h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Datasets'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Dataset'), h('th', { scope: 'col', class: 'num' }, 'Examples'),
        h('th', { scope: 'col' }, 'Description'), h('th', { scope: 'col' }, 'Created'))),
      h('tbody', {}, datasets.map((d) => h('tr', {}, h('td', {}, link(`/ui/datasets/${d.id}`, d.name)),
        h('td', { class: 'num' }, d.example_count), h('td', {}, d.description || ''), timeCell(d.created_at))))),
    h('h2', {}, 'New dataset'), form, out);
}

export async function datasetPage(id) {
  const [dataset, examples] = await Promise.all([api('GET', `/datasets/${id}`),
    api('GET', `/examples?dataset=${encodeURIComponent(id)}&limit=1000`)]);
  const notice = h('div', { 'aria-live': 'polite' });
  const remove = async (example) => {
    try {
      await api('DELETE', `/examples/${example.id}`);
      announce('Example deleted.');
      await datasetPage(id);
      main().focus();
    } catch (err) {
      if (err.status === 401) throw err;
      notice.replaceChildren(h('p', { class: 'notice bad error', role: 'alert' }, err.detail));
    }
  };
  const splits = (e) => ((e.metadata && e.metadata.dataset_split) || []).join(', ');
  show(dataset.name,
    dataset.description ? h('p', {}, dataset.description) : null,
    h('p', { id: 'dataset-count' }, plural(examples.length, 'example', 'examples'), '. ', link('/ui/datasets', 'All datasets')),
    notice,
    examples.length === 0 ? h('p', { class: 'muted' }, 'No example yet.') : h('table', {},
      h('caption', { class: 'visually-hidden' }, `Examples of ${dataset.name}`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Inputs'), h('th', { scope: 'col' }, 'Outputs'),
        h('th', { scope: 'col' }, 'Split'), h('th', { scope: 'col' }, 'From run'), h('th', { scope: 'col' }, 'Created'),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
      h('tbody', {}, examples.map((e) => h('tr', {},
        h('td', {}, h('pre', { class: 'json' }, pretty(e.inputs))),
        h('td', {}, h('pre', { class: 'json' }, pretty(e.outputs))),
        h('td', {}, splits(e)),
        h('td', {}, e.source_run_id ? link(`/ui/runs/${e.source_run_id}`, e.source_run_id.slice(0, 8)) : '—'),
        timeCell(e.created_at),
        h('td', {}, h('button', { type: 'button', class: 'secondary', 'aria-label': `Delete example ${e.id.slice(0, 8)}`,
          onclick: () => remove(e) }, 'Delete')))))));
}
