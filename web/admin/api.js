// The dashboard's calls to the HTTP API (docs/protocol.md §11): every call
// carries the API key, when there is one, as `Authorization: Bearer`, and a
// refusal becomes an ApiError with the server's status, code and message.

const KEY_ITEM = 'chat-admin-key';

/** The key kept for this tab (sessionStorage: gone when the tab closes). */
export const apiKey = {
  get() {
    try {
      return sessionStorage.getItem(KEY_ITEM) || '';
    } catch {
      return '';
    }
  },
  set(key) {
    try {
      if (key) sessionStorage.setItem(KEY_ITEM, key);
      else sessionStorage.removeItem(KEY_ITEM);
    } catch {
      // Storage refused (private mode): the key lasts until reload.
    }
    memory = key;
  },
  current() {
    return this.get() || memory;
  },
};
let memory = '';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Percent-encodes one path segment (room names may hold any character). */
export const seg = (value) => encodeURIComponent(String(value));

async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  const key = apiKey.current();
  if (key) headers.Authorization = `Bearer ${key}`;
  // Every POST says JSON, as the API requires (a form cannot).
  if (body !== undefined || method === 'POST') headers['Content-Type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached.');
  }
  if (response.status === 204) return null;
  let json = null;
  try {
    json = await response.json();
  } catch {
    // A body that is not JSON (a proxy's error page): the status speaks.
  }
  if (!response.ok) {
    throw new ApiError(
      response.status,
      json?.code || 'http_' + response.status,
      json?.message || `The server answered ${response.status}.`,
    );
  }
  return json;
}

export const api = {
  get: (path) => call('GET', path),
  post: (path, body) => call('POST', path, body),
  put: (path, body) => call('PUT', path, body),
  del: (path) => call('DELETE', path),
};
