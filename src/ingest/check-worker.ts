// Worker-thread entry: parses and checks large request bodies off the ingest event loop, which keeps only the
// cheap, ordered part of a request (dedupe, append, answer). Uses 2 cores where the loop alone would use one.
import { parentPort } from 'node:worker_threads';
import type { RequestFacts } from '../event/envelope.js';
import type { IngestRoute } from '../event/ingest-record.js';
import { HttpError } from '../http/errors.js';
import { checkBody, parseJsonBody, type CheckedBody } from './check-body.js';

export interface CheckRequest {
  id: number;
  route: IngestRoute;
  /** Moved here (transferred), not copied, when it owns its memory: then it travels back in the reply. */
  body: Uint8Array;
  transferred: boolean;
  facts: RequestFacts;
  maxEvents: number;
  partitions: number;
}

export type CheckReply =
  | { id: 0; ready: true }
  | { id: number; ok: true; body: CheckedBody; raw: Uint8Array | null }
  | { id: number; ok: false; status: number; code: string; message: string; field?: string };

parentPort!.postMessage({ id: 0, ready: true } satisfies CheckReply);

parentPort!.on('message', (m: CheckRequest) => {
  let reply: CheckReply;
  try {
    const body = Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength);
    reply = { id: m.id, ok: true, body: checkBody(m.route, parseJsonBody(body), m.facts, m.maxEvents, m.partitions), raw: m.transferred ? m.body : null };
  } catch (err) {
    const e = err instanceof HttpError ? err : new HttpError(400, 'invalid_body', (err as Error).message);
    reply = { id: m.id, ok: false, status: e.status, code: e.code, message: e.message, ...(e.field ? { field: e.field } : {}) };
  }
  const moved = reply.ok ? [reply.body.hashes.buffer, reply.body.ids.buffer, ...(reply.raw ? [reply.raw.buffer] : [])] as ArrayBuffer[] : [];
  parentPort!.postMessage(reply, moved);
});
