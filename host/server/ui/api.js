// Calls to runhook's HTTP API with the session: the cookie goes by
// itself (HttpOnly: no script reads it), changes carry the session's CSRF
// token. A 401 means the session ended: announced as an event that
// app.js answers with the sign-in form.

/** The session's CSRF token, once signed in. */
export const session = { csrf: null };

export class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; this.detail = detail; }
}

/** Calls the API; throws ApiError with the server's `detail` on a 4xx/5xx. */
export async function api(method, path, body, raw) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (raw !== undefined) headers['content-type'] = 'application/octet-stream';
  if (method !== 'GET' && session.csrf) headers['x-csrf-token'] = session.csrf;
  const resp = await fetch(path.startsWith('/ui/') ? path : `/api/v1${path}`, {
    method, headers, credentials: 'same-origin', body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body),
  });
  if (resp.status === 401 && !path.startsWith('/ui/session')) {
    session.csrf = null;
    window.dispatchEvent(new CustomEvent('runhook:signed-out', { detail: 'Your session ended; sign in again.' }));
    throw new ApiError(401, 'signed out');
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!resp.ok) throw new ApiError(resp.status, (data && data.detail) || `${resp.status} ${resp.statusText}`);
  return data;
}


/** The uploaded plugins (none when the list cannot be read). */
export async function listPlugins() {
  try { return await api('GET', '/plugins'); } catch (e) { if (e.status === 401) throw e; return []; }
}
