// The admin API client: same-origin fetch with the session cookie; mutations carry the
// session's CSRF token. A 401 sends the user back to the login page.

let csrf = '';
let onUnauthorized: () => void = () => {};

export function setCsrf(token: string) { csrf = token; }
export function setOnUnauthorized(f: () => void) { onUnauthorized = f; }

export class ApiError extends Error {
  constructor(public status: number, message: string) { super(message); }
}

async function errorOf(r: Response): Promise<ApiError> {
  let msg = `${r.status} ${r.statusText}`;
  try {
    const j = await r.json();
    if (j?.error?.message) msg = j.error.message;
  } catch { /* not JSON */ }
  return new ApiError(r.status, msg);
}

/** A body sent as it is (a file's text), not JSON-encoded. */
export class Raw { constructor(public text: string) {} }

export async function request(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET') headers['x-aihub-csrf'] = csrf;
  const r = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : body instanceof Raw ? body.text : JSON.stringify(body),
  });
  if (!r.ok) {
    const e = await errorOf(r);
    if (r.status === 401 && !path.startsWith('/api/console/login')) onUnauthorized();
    throw e;
  }
  return r;
}

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const r = await request(method, path, body);
  if (r.status === 204) return undefined as T;
  return r.json() as Promise<T>;
}

export const get = <T = any>(path: string) => api<T>('GET', path);

export interface Session { logged_in: boolean; csrf_token?: string; billing?: boolean }
