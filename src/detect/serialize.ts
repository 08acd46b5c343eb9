// Snapshot encoding of detector state: JSON where Maps, Sets and typed arrays survive the round trip, gzipped.
import { gunzipSync, gzipSync } from 'node:zlib';

function replacer(this: unknown, _key: string, value: unknown): unknown {
  if (value instanceof Map) return { $m: [...value] };
  if (value instanceof Set) return { $s: [...value] };
  if (value instanceof Float64Array) return { $f: Array.from(value) };
  if (value instanceof Int32Array) return { $i: Array.from(value) };
  if (typeof value === 'number' && !Number.isFinite(value)) return { $n: String(value) };
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    if ('$m' in o) return new Map(o.$m as [unknown, unknown][]);
    if ('$s' in o) return new Set(o.$s as unknown[]);
    if ('$f' in o) return Float64Array.from(o.$f as number[]);
    if ('$i' in o) return Int32Array.from(o.$i as number[]);
    if ('$n' in o) return Number(o.$n);
  }
  return value;
}

export function encodeState(state: unknown): Buffer {
  return gzipSync(Buffer.from(JSON.stringify(state, replacer)), { level: 6 });
}

export function decodeState<T>(buf: Buffer | Uint8Array): T {
  return JSON.parse(gunzipSync(buf).toString('utf8'), reviver) as T;
}
