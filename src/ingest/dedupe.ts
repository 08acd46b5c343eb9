// Idempotent ingest: remembers the newest event ids (per app). An id is marked seen only after its append is
// durable, so a failed append never turns the client's retry into a silent drop (seed 000's trap).

export type DedupeVerdict = { kind: 'new' } | { kind: 'seen' } | { kind: 'pending'; settled: Promise<boolean> };

export class EventIdDedupe {
  // Two generations: lookups check both; when `current` is full it becomes `previous`.
  private current = new Set<string>();
  private previous = new Set<string>();
  private readonly pending = new Map<string, Promise<boolean>>();

  constructor(private readonly generationSize: number) {}

  static key(appId: string, eventId: string): string {
    return `${appId} ${eventId}`;
  }

  check(key: string): DedupeVerdict {
    if (this.current.has(key) || this.previous.has(key)) return { kind: 'seen' };
    const p = this.pending.get(key);
    return p ? { kind: 'pending', settled: p } : { kind: 'new' };
  }

  /** Marks keys as in flight; `settled` resolves true when durable, false when the append failed. */
  begin(keys: string[], settled: Promise<boolean>): void {
    for (const k of keys) this.pending.set(k, settled);
  }

  /** Called once the append settled. */
  end(keys: string[], durable: boolean): void {
    for (const k of keys) {
      this.pending.delete(k);
      if (durable) this.remember(k);
    }
  }

  remember(key: string): void {
    this.current.add(key);
    if (this.current.size >= this.generationSize) {
      this.previous = this.current;
      this.current = new Set();
    }
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }
}
