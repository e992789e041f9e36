// Health at a glance: this server's last hour from /health/series, as
// figures and small bar charts (each with a text alternative).

import { api } from './api.js';
import { ago, h, show } from './lib.js';

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

export async function healthPage() {
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
