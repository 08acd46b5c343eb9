// The event loop's side of the check worker(s): send a body, get its per-event checks back, in any order.
import { Worker } from 'node:worker_threads';
import type { RequestFacts } from '../event/envelope.js';
import type { IngestRoute } from '../event/ingest-record.js';
import { HttpError } from '../http/errors.js';
import type { CheckedBody } from './check-body.js';
import type { CheckReply, CheckRequest } from './check-worker.js';

export interface CheckResult {
  checked: CheckedBody;
  /** The body's bytes when they were moved to the worker (the caller's Buffer is then detached); null when copied. */
  raw: Buffer | null;
}

/** Buffers arrive from a worker as plain Uint8Arrays: the same memory as a Buffer again. */
const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

export class CheckPool {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<number, { resolve: (v: CheckResult) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private turn = 0;
  private reported = 0;
  private onAllReported: (() => void) | null = null;
  /** Resolves once every worker has started. */
  readonly ready: Promise<void> = new Promise((r) => (this.onAllReported = r));

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(new URL('./check-worker.js', import.meta.url));
      w.on('message', (r: CheckReply) => {
        if ('ready' in r) {
          if (++this.reported === size) this.onAllReported?.();
          return;
        }
        const p = this.waiting.get(r.id);
        if (!p) return;
        this.waiting.delete(r.id);
        if (r.ok) p.resolve({ checked: { ...r.body, ids: asBuffer(r.body.ids) }, raw: r.raw ? asBuffer(r.raw) : null });
        else p.reject(new HttpError(r.status, r.code, r.message, r.field));
      });
      w.on('error', (err) => {
        // Fail what was in flight (clients get 503 and retry); a dead worker is replaced by none: stay correct, go slower.
        for (const p of this.waiting.values()) p.reject(new HttpError(503, 'check_worker_failed', err.message, undefined, { 'retry-after': '1' }));
        this.waiting.clear();
        this.workers.splice(this.workers.indexOf(w), 1);
      });
      w.unref();
      this.workers.push(w);
    }
  }

  get available(): boolean {
    return this.workers.length > 0;
  }

  /**
   * Checks `body` in a worker. A body that owns its memory (large ones do) is moved there and back rather than copied
   * twice: `body` is then unusable (detached) and `raw` of the result holds the same bytes.
   */
  check(route: IngestRoute, body: Buffer, facts: RequestFacts, maxEvents: number, partitions = 1): Promise<CheckResult> {
    const id = this.nextId++;
    const w = this.workers[this.turn++ % this.workers.length]!;
    const buffer = body.buffer;
    const transferred = buffer instanceof ArrayBuffer && body.byteOffset === 0 && body.byteLength === buffer.byteLength;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.postMessage({ id, route, body, transferred, facts, maxEvents, partitions } satisfies CheckRequest, transferred ? [buffer] : []);
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((w) => w.terminate()));
  }
}
