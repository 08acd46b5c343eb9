// Idempotent ingest: remembers the newest event ids per app. An id is durable-seen only after its append is durable,
// so a failed append never turns the client's retry into a silent drop (seed 000's trap).
//
// Hot path (one lookup per event): open-addressing tables over typed arrays, keyed by (app, 64-bit hash of the id),
// no per-event allocation. Two generations: lookups check both; a full `current` becomes `previous`. Two ids of one
// app that share both 32-bit hashes would be taken for each other (about 1 in 10^12 at 4 M remembered ids).

// One slot = 4 consecutive uint32 (meta, h1, h2, request seq): a probe touches one cache line.
type Table = { s: Uint32Array; count: number; mask: number };

const EMPTY = 0;
const TOMBSTONE = 0xffffffff;
const PENDING = 0x80000000; // meta = app index + 1, with this bit while the append is in flight

export type Claim = 'new' | 'seen' | 'same-request' | Promise<boolean>;

function newTable(capacity: number): Table {
  return { s: new Uint32Array(capacity * 4), count: 0, mask: capacity - 1 };
}

let h1 = 0;
let h2 = 0;
/** Two 32-bit hashes of a string in one pass (FNV-1a and a multiply-xorshift mix); results in h1, h2. */
function hashId(s: string): void {
  let a = 0x811c9dc5;
  let b = 0x9e3779b9 ^ s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  h1 = a >>> 0;
  h2 = (b ^ (b >>> 13)) >>> 0;
}

export class EventIdDedupe {
  private current: Table;
  private previous: Table;
  private readonly apps = new Map<string, number>();
  private readonly inFlight = new Map<number, { settled: Promise<boolean>; tables: Table[]; slots: number[] }>();
  private lastApp = '';
  private lastAppIndex = 0;
  private nextSeq = 1;

  constructor(private readonly generationSize: number) {
    let cap = 1024;
    while (cap < generationSize * 2) cap *= 2;
    this.current = newTable(cap);
    this.previous = newTable(cap);
  }

  private appIndex(appId: string): number {
    if (appId === this.lastApp) return this.lastAppIndex; // a request's events nearly always share their app
    let i = this.apps.get(appId);
    if (i === undefined) {
      i = this.apps.size + 1;
      this.apps.set(appId, i);
    }
    this.lastApp = appId;
    this.lastAppIndex = i;
    return i;
  }

  /** Slot of the key in `t`, or -1 (uses h1/h2 of the last hashId). */
  private find(t: Table, app: number): number {
    const s = t.s;
    for (let i = h1 & t.mask; ; i = (i + 1) & t.mask) {
      const m = s[i * 4]!;
      if (m === EMPTY) return -1;
      if (m !== TOMBSTONE && (m & ~PENDING) === app && s[i * 4 + 1] === h1 && s[i * 4 + 2] === h2) return i;
    }
  }

  private insert(app: number, meta: number, seq: number): number {
    if (this.current.count >= this.generationSize) {
      this.previous = this.current;
      this.current = newTable(this.previous.mask + 1);
    }
    const t = this.current;
    const s = t.s;
    let i = h1 & t.mask;
    while (s[i * 4] !== EMPTY && s[i * 4] !== TOMBSTONE) i = (i + 1) & t.mask;
    s[i * 4] = meta;
    s[i * 4 + 1] = h1;
    s[i * 4 + 2] = h2;
    s[i * 4 + 3] = seq;
    t.count++;
    return i;
  }

  /** Starts a request's claims; settle it with `settle(seq, durable)` once its append is done. */
  startRequest(settled: Promise<boolean>): number {
    const seq = this.nextSeq++;
    this.inFlight.set(seq, { settled, tables: [], slots: [] });
    return seq;
  }

  /**
   * Claims an event id for request `seq`: 'new' (now in flight for this request), 'seen' (stored before),
   * 'same-request' (repeated inside this request), or the outcome of another request that has it in flight.
   */
  claim(appId: string, eventId: string, seq: number): Claim {
    const app = this.appIndex(appId);
    hashId(eventId);
    let t = this.current;
    let i = this.find(t, app);
    if (i < 0) {
      t = this.previous;
      i = this.find(t, app);
    }
    if (i >= 0) {
      if ((t.s[i * 4]! & PENDING) === 0) return 'seen';
      const owner = t.s[i * 4 + 3]!;
      if (owner === seq) return 'same-request';
      return this.inFlight.get(owner)?.settled ?? 'seen';
    }
    const req = this.inFlight.get(seq)!;
    req.slots.push(this.insert(app, app | PENDING, seq));
    req.tables.push(this.current);
    return 'new';
  }

  /** Ends request `seq`: its ids become seen when durable, or are forgotten so a retry is accepted. */
  settle(seq: number, durable: boolean): void {
    const req = this.inFlight.get(seq);
    if (!req) return;
    this.inFlight.delete(seq);
    for (let k = 0; k < req.slots.length; k++) {
      const t = req.tables[k]!;
      const i = req.slots[k]!;
      const m = t.s[i * 4]!;
      if (t.s[i * 4 + 3] !== seq || (m & PENDING) === 0) continue;
      t.s[i * 4] = durable ? m & ~PENDING : TOMBSTONE;
    }
  }

  /** Marks an id as stored (warm-up from the log). */
  remember(appId: string, eventId: string): void {
    const app = this.appIndex(appId);
    hashId(eventId);
    if (this.find(this.current, app) >= 0) return;
    this.insert(app, app, 0);
  }
}
