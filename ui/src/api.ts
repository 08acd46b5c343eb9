// The API as the UI uses it: the key from sign-in (sessionStorage) sent as X-API-Key; errors are the server's JSON
// ({error:{code,message,field}}) thrown as ApiError so a form can show the field.
const KEY = 'causality.key';
const APP = 'causality.app';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export const session = {
  key: () => sessionStorage.getItem(KEY),
  setKey: (k: string | null) => (k ? sessionStorage.setItem(KEY, k) : sessionStorage.removeItem(KEY)),
  /** The admin's chosen app ('' = all apps). */
  app: () => sessionStorage.getItem(APP) ?? '',
  setApp: (a: string) => sessionStorage.setItem(APP, a),
};

export async function api<T = any>(path: string, o: { method?: string; body?: unknown; text?: string; key?: string; signal?: AbortSignal; raw?: boolean } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const key = o.key ?? session.key();
  if (key) headers['x-api-key'] = key;
  let body: string | undefined;
  if (o.text !== undefined) {
    headers['content-type'] = 'application/yaml'; // rules files: the server takes YAML as text
    body = o.text;
  } else if (o.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(o.body);
  }
  const res = await fetch(path, { method: o.method ?? (body === undefined ? 'GET' : 'POST'), headers, body, signal: o.signal });
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let json: any = text;
  if (!o.raw || !res.ok) {
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      /* YAML or plain text */
    }
  }
  if (!res.ok) {
    const e = json?.error;
    throw new ApiError(res.status, e?.code ?? 'http_error', e?.message ?? `HTTP ${res.status}`, e?.field);
  }
  return json as T;
}

/** Query string from defined values only. */
export function qs(params: Record<string, string | number | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}

/** A SQL string literal. */
export const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;

export interface Who {
  role: 'admin' | 'app';
  appId: string | null;
  apps: Array<{ appId: string; key: string; signed: boolean }>;
}
