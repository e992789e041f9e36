// The dashboard's building blocks: elements (every server value goes in
// as text, never parsed as HTML), formatting, labelled form fields, the
// frame a page is shown in, and navigation (announced as an event that
// app.js routes, so pages need not import the router).

/** An element: h('a', {href: '/x', class: 'y'}, 'text', child, ...). */
export function h(tag, attrs, ...children) {
  const el = tag === 'svg' || tag === 'rect' || tag === 'polyline' || tag === 'line' || tag === 'title'
    ? document.createElementNS('http://www.w3.org/2000/svg', tag)
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function link(href, text, attrs) { return h('a', { href, ...attrs }, text); }

export function when(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  return isNaN(d) ? String(ts) : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

export function timeCell(ts) { return h('td', {}, ts ? h('time', { datetime: ts }, when(ts)) : '—'); }

export function ago(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** `n` and the noun that goes with it: 1 delivery, 2 deliveries. */
export function plural(n, one, many) { return `${n} ${n === 1 ? one : many}`; }

export function pretty(v) { return JSON.stringify(v, null, 2); }

export function announce(text) { document.getElementById('status').textContent = text; }

export function pill(text, kind) { return h('span', { class: `pill ${kind || ''}` }, text); }

export function statusPill(status) {
  return pill(status, status === 'delivered' || status === 'success' ? 'ok'
    : status === 'failed' || status === 'error' ? 'bad' : 'warn');
}

/** A field: label, control, hint and the place its error goes. */
export function field(id, label, control, hint) {
  control.id = id;
  const errId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  control.setAttribute('aria-describedby', [hintId, errId].filter(Boolean).join(' '));
  return h('div', { class: 'field', 'data-field': id },
    h('label', { for: id }, label), control,
    hint ? h('div', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'error', id: errId, 'aria-live': 'polite' }));
}

export function checkbox(id, label, checked, hint) {
  const box = h('input', { type: 'checkbox', id, checked: !!checked });
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) box.setAttribute('aria-describedby', hintId);
  return h('div', { class: 'field', 'data-field': id },
    h('div', { class: 'field inline' }, box, h('label', { for: id }, label)),
    hint ? h('div', { class: 'hint', id: hintId }, hint) : null);
}

export const main = () => document.getElementById('main');

/** Shows a page: its title (also the document's) and its content. */
export function show(title, ...nodes) {
  document.title = `${title} · runhook`;
  main().replaceChildren(h('h1', {}, title), ...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

/** Goes to a dashboard path, as a link would. */
export function go(path) {
  history.pushState(null, '', path);
  window.dispatchEvent(new Event('runhook:navigate'));
}

export function runsTable(runs, caption) {
  return h('table', {}, h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Run'), h('th', { scope: 'col' }, 'Type'),
      h('th', { scope: 'col' }, 'Started'), h('th', { scope: 'col', class: 'num' }, 'Latency'), h('th', { scope: 'col' }, 'Status'))),
    h('tbody', {}, runs.map((run) => {
      const latency = run.end_time && run.start_time ? (new Date(run.end_time) - new Date(run.start_time)) / 1000 : null;
      return h('tr', {}, h('td', {}, link(`/ui/runs/${run.id}`, run.name)), h('td', {}, run.run_type),
        timeCell(run.start_time), h('td', { class: 'num' }, latency === null ? '—' : `${latency.toFixed(2)} s`),
        h('td', {}, run.error ? h('span', { class: 'bad' }, 'error: ', run.error.split('\n')[0].slice(0, 120)) : statusPill(run.status || 'success')));
    })));
}

/**
 * A form that makes something: on submit, `act()` (API calls, answering
 * what to announce), then `done()` (the page again) with focus back on it.
 * Its error (the API's detail, or a thrown Error's message) is shown under
 * the form; a 401 goes on to sign-in. Returns the form and that slot.
 */
export function actionForm(controls, button, act, done) {
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'toolbar' }, controls, h('div', {}, h('button', { type: 'submit' }, button)));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      announce(await act());
      await done();
      main().focus();
    } catch (err) {
      if (err.status === 401) throw err;
      out.replaceChildren(h('p', { class: 'notice bad error', role: 'alert' }, err.detail || err.message));
    }
  });
  return [form, out];
}
