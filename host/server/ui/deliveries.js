// Deliveries: the list with its filters, bulk redelivery after an
// outage (counted before confirming), and a delivery's attempts as a
// timeline with redelivery.

import { api } from './api.js';
import { announce, field, go, h, link, pill, plural, show, statusPill, timeCell, when } from './lib.js';

function toLocalInput(date) {
  const d = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

/** Where deliveries come from: the rules, then the alerts (their notifications), by id. */
async function sources() {
  const [rules, alerts] = await Promise.all([api('GET', '/runs/rules'), api('GET', '/alerts')]);
  return [...rules.map((r) => ({ id: r.id, display_name: r.display_name, href: `/ui/rules/${r.id}` })),
    ...alerts.map((a) => ({ id: a.id, display_name: `alert: ${a.display_name}`, href: '/ui/alerts' }))];
}

export async function deliveriesPage(params) {
  const rules = await sources();
  const q = new URLSearchParams();
  for (const k of ['status', 'rule_id', 'since', 'until']) if (params.get(k)) q.set(k, params.get(k));
  q.set('limit', '100');
  const list = await api('GET', `/deliveries?${q}`);
  const byId = Object.fromEntries(rules.map((r) => [r.id, r]));
  const status = h('select', {}, ['', 'pending', 'delivered', 'failed'].map((s) =>
    h('option', { value: s, selected: params.get('status') === s }, s || 'any')));
  const rule = h('select', {}, h('option', { value: '' }, 'any'), rules.map((r) =>
    h('option', { value: r.id, selected: params.get('rule_id') === r.id }, r.display_name)));
  const since = h('input', { type: 'datetime-local', value: params.get('since') ? toLocalInput(new Date(params.get('since'))) : '' });
  const until = h('input', { type: 'datetime-local', value: params.get('until') ? toLocalInput(new Date(params.get('until'))) : '' });
  const filters = h('form', { class: 'toolbar', role: 'search' },
    field('f-status', 'Status', status), field('f-rule', 'Rule or alert', rule),
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
  const bRule = h('select', {}, h('option', { value: '' }, 'every rule and alert'), rules.map((r) => h('option', { value: r.id }, r.display_name)));
  const bOut = h('div', { 'aria-live': 'polite' });
  const bulkBody = () => ({ since: new Date(bSince.value).toISOString(), until: new Date(bUntil.value).toISOString(),
    rule_id: bRule.value || null, status: 'failed' });
  const bulk = h('form', { class: 'toolbar' }, field('b-rule', 'Rule or alert', bRule), field('b-since', 'Failed deliveries queued since', bSince),
    field('b-until', 'and before', bUntil), h('div', {}, h('button', { type: 'submit', class: 'secondary' }, 'Count them')));
  bulk.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const { would_redeliver: n } = await api('POST', '/deliveries/redeliver', { ...bulkBody(), dry_run: true });
      if (n === 0) { bOut.replaceChildren(h('p', { class: 'notice' }, 'No failed delivery in that window.')); return; }
      const confirm = h('button', { type: 'button', onclick: async () => {
        const { redelivered } = await api('POST', '/deliveries/redeliver', bulkBody());
        bOut.replaceChildren(h('p', { class: 'notice', role: 'status' }, `${plural(redelivered, 'delivery', 'deliveries')} queued again.`));
      } }, `Redeliver ${plural(n, 'failed delivery', 'failed deliveries')}`);
      bOut.replaceChildren(h('p', { class: 'notice' }, `${plural(n, 'failed delivery matches', 'failed deliveries match')}. `, confirm));
      confirm.focus();
    } catch (err) { bOut.replaceChildren(h('p', { class: 'notice bad', role: 'alert' }, err.detail || String(err))); }
  });

  show('Deliveries', filters,
    list.length === 0 ? h('p', { class: 'muted' }, 'No delivery matches.') : h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Deliveries, newest first'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Queued'), h('th', { scope: 'col' }, 'Rule or alert'),
        h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col', class: 'num' }, 'Attempts'),
        h('th', { scope: 'col', class: 'num' }, 'Runs'), h('th', { scope: 'col' }, 'Last error'), h('th', { scope: 'col' }, 'Details'))),
      h('tbody', {}, list.map((d) => h('tr', { 'data-delivery': d.id }, timeCell(d.created_at),
        h('td', {}, byId[d.rule_id] ? link(byId[d.rule_id].href, byId[d.rule_id].display_name) : d.rule_id),
        h('td', {}, statusPill(d.status)), h('td', { class: 'num' }, d.attempts), h('td', { class: 'num' }, d.run_ids.length),
        h('td', { class: 'muted' }, d.last_error || '—'),
        h('td', {}, link(`/ui/deliveries/${d.id}`, 'Attempts', { 'aria-label': `Attempts of the delivery queued ${when(d.created_at)}` })))))),
    h('h2', {}, 'Redeliver after an outage'), bulk, bOut);
}

export async function deliveryPage(id) {
  const d = await api('GET', `/deliveries/${id}`);
  const source = (await sources()).find((s) => s.id === d.rule_id);
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
      h('dt', {}, 'From'), h('dd', {}, source ? link(source.href, source.display_name) : d.rule_id),
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
