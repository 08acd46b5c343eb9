// What CLI client commands share: where the server is and which key to use.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import YAML from 'yaml';

export interface ClientOptions {
  url?: string;
  key?: string;
  dataDir?: string;
}

/** --url > CAUSALITY_URL > http://127.0.0.1:$PORT. */
export function serverUrl(o: ClientOptions): string {
  return (o.url ?? process.env.CAUSALITY_URL ?? `http://127.0.0.1:${process.env.PORT ?? 8080}`).replace(/\/$/, '');
}

/** --key > CAUSALITY_KEY > CAUSALITY_ADMIN_KEY > the admin key of the local dev config (first run writes it). */
export function apiKey(o: ClientOptions): string {
  const k = o.key ?? process.env.CAUSALITY_KEY ?? process.env.CAUSALITY_ADMIN_KEY;
  if (k) return k;
  const dataDir = resolve(o.dataDir ?? process.env.CAUSALITY_DATA_DIR ?? './data');
  const path = process.env.CAUSALITY_CONFIG ?? join(dataDir, 'config.yaml');
  if (existsSync(path)) {
    const doc = YAML.parse(readFileSync(path, 'utf8')) as { adminKey?: string } | null;
    if (doc?.adminKey) return doc.adminKey;
  }
  throw new Error('no API key: pass --key, set CAUSALITY_KEY, or run `causality up` once to create a dev config');
}

export async function postJson(url: string, key: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': key },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.status, body: parsed };
}
