// Plugins: the uploaded components with their capabilities and the rules
// using them; upload and delete.

import { api, listPlugins } from './api.js';
import { actionForm, announce, field, h, link, main, show, timeCell } from './lib.js';

export async function pluginsPage() {
  const [list, rules] = await Promise.all([listPlugins(), api('GET', '/runs/rules')]);
  const names = Object.fromEntries(rules.map((r) => [r.id, r.display_name]));
  const file = h('input', { type: 'file', accept: '.wasm,application/wasm' });
  const name = h('input', { type: 'text', autocomplete: 'off', placeholder: 'llm-errors' });
  const [form, out] = actionForm([
    field('p-file', 'Component (.wasm)', file, 'A WebAssembly component exporting runhook\'s match, transform or evaluate.'),
    field('p-name', 'Name', name)], 'Upload', async () => {
    if (!file.files.length) { file.focus(); throw new Error('Choose a component file first.'); }
    const label = name.value.trim() || file.files[0].name.replace(/\.wasm$/, '');
    const p = await api('POST', `/plugins?name=${encodeURIComponent(label)}`, undefined, file.files[0]);
    return `Uploaded ${p.name}.`;
  }, pluginsPage);
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
