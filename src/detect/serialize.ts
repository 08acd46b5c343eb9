// Snapshot encoding of detector state: V8's structured serialisation (Maps, Sets, typed arrays, NaN and Infinity
// survive natively, several times faster than JSON with a replacer), gzipped at the fastest level. Snapshots are taken
// on the detector's thread between batches, so their cost is scoring latency.
import { deserialize, serialize } from 'node:v8';
import { promisify } from 'node:util';
import { constants, gunzipSync, gzip, gzipSync } from 'node:zlib';

const gzipAsync = promisify(gzip);

export function encodeState(state: unknown): Buffer {
  return gzipSync(serialize(state), { level: constants.Z_BEST_SPEED });
}

/** The same, with the compression in libuv's pool: only the structured serialisation holds the calling thread. */
export async function encodeStateAsync(state: unknown): Promise<Buffer> {
  return gzipAsync(serialize(state), { level: constants.Z_BEST_SPEED });
}

export function decodeState<T>(buf: Buffer | Uint8Array): T {
  return deserialize(gunzipSync(buf)) as T;
}
