// The Bus across a thread boundary: consumers running in worker threads (the warehouse sink) use the process's one
// log through a MessagePort. Only consumer operations cross; appends stay with the owner.
import type { MessagePort } from 'node:worker_threads';
import type { Bus, BusRecord } from './bus.js';

type Op = 'read' | 'waitFor' | 'committed' | 'commit' | 'offsets';
interface Request {
  id: number;
  op: Op;
  args: number[] | [string] | [string, number];
}
interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
  end: number;
  start: number;
}

/** Owner side: answers consumer calls from a worker with the real bus. */
export function serveBus(bus: Bus, port: MessagePort, hooks: { onCommit?: (consumer: string, nextOffset: number) => void } = {}): void {
  port.on('message', async (req: Request) => {
    let reply: Reply;
    try {
      let value: unknown;
      switch (req.op) {
        case 'read': {
          const recs = await bus.read(req.args[0] as number, req.args[1] as number);
          value = recs.map((r) => [r.offset, r.payload]);
          break;
        }
        case 'waitFor':
          await bus.waitFor(req.args[0] as number, req.args[1] as number);
          break;
        case 'committed':
          value = await bus.committed(req.args[0] as string);
          break;
        case 'commit':
          await bus.commit(req.args[0] as string, req.args[1] as number);
          hooks.onCommit?.(req.args[0] as string, req.args[1] as number);
          break;
        case 'offsets':
          break;
      }
      reply = { id: req.id, ok: true, value, end: bus.endOffset(), start: bus.startOffset() };
    } catch (err) {
      reply = { id: req.id, ok: false, error: (err as Error).message, end: bus.endOffset(), start: bus.startOffset() };
    }
    port.postMessage(reply);
  });
}

/** Worker side: a Bus whose consumer calls go to the owner thread. */
export class RemoteBus implements Bus {
  private nextId = 1;
  private end = 0;
  private start = 0;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(private readonly port: MessagePort) {
    port.on('message', (r: Reply) => {
      this.end = r.end;
      this.start = r.start;
      const w = this.waiting.get(r.id);
      if (!w) return;
      this.waiting.delete(r.id);
      if (r.ok) w.resolve(r.value);
      else w.reject(new Error(r.error));
    });
  }

  static async connect(port: MessagePort): Promise<RemoteBus> {
    const bus = new RemoteBus(port);
    await bus.call('offsets', []);
    return bus;
  }

  private call(op: Op, args: Request['args']): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.port.postMessage({ id, op, args } satisfies Request);
    });
  }

  appendDurably(): Promise<number> {
    return Promise.reject(new Error('RemoteBus is read-only: append in the thread that owns the log'));
  }

  endOffset(): number {
    return this.end;
  }

  startOffset(): number {
    return this.start;
  }

  async read(fromOffset: number, maxRecords: number): Promise<BusRecord[]> {
    const rows = (await this.call('read', [fromOffset, maxRecords])) as Array<[number, Uint8Array]>;
    return rows.map(([offset, p]) => ({ offset, payload: Buffer.from(p.buffer, p.byteOffset, p.byteLength) }));
  }

  async waitFor(offset: number, timeoutMs: number): Promise<void> {
    await this.call('waitFor', [offset, timeoutMs]);
  }

  async committed(consumer: string): Promise<number> {
    return (await this.call('committed', [consumer])) as number;
  }

  async commit(consumer: string, nextOffset: number): Promise<void> {
    await this.call('commit', [consumer, nextOffset]);
  }

  async close(): Promise<void> {
    this.port.close();
  }
}
