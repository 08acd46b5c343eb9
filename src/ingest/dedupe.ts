// Idempotent ingest: remembers the newest event ids per app. An id is durable-seen only after its append is durable,
// so a failed append never turns the client's retry into a silent drop (seed 000's trap).
//
// Hot path (one lookup per event): open-addressing tables over typed arrays, keyed by (app, 64-bit hash of the id),
// no per-event allocation. Two generations: lookups check both; a full `current` becomes `previous`. Two ids of one
// app that share both 32-bit hashes would be taken for each other (about 1 in 10^12 at 4 M remembered ids).

// One slot = 4 consecutive uint32 (meta, h1, h2, request seq). The two generations are interleaved: bucket i holds
// generation A's slot i and then generation B's, so a lookup that probes both walks the same cache lines (one memory
// miss per claim instead of two: the table is ~128 MB and the claim is the ingest loop's largest cost).
const SLOT = 4;
const BUCKET = 2 * SLOT;

// meta = app index + 1. A slot is in flight while the request that wrote it (its seq) is: settling a durable request
// then writes nothing to the table (a second memory miss per event, ~3% of the event loop, when it cleared a bit).
const EMPTY = 0;
const TOMBSTONE = 0xffffffff;

export type Claim = 'new' | 'seen' | 'same-request' | Promise<boolean>;

let h1 = 0;
let h2 = 0;
/** Two 32-bit hashes of bytes[start, start + length) in one pass (FNV-1a and a multiply-xorshift mix); results in h1, h2. */
function hashId(bytes: Uint8Array, start: number, length: number): void {
  let a = 0x811c9dc5;
  let b = 0x9e3779b9 ^ length;
  for (let i = start, end = start + length; i < end; i++) {
    const c = bytes[i]!;
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  h1 = a >>> 0;
  h2 = (b ^ (b >>> 13)) >>> 0;
}

/** The dedupe keys of `count` ASCII ids of `width` bytes back to back: [h1, h2] per id. */
export function hashEventIds(ids: Uint8Array, count: number, width: number): Uint32Array {
  const out = new Uint32Array(count * 2);
  for (let i = 0; i < count; i++) {
    hashId(ids, i * width, width);
    out[i * 2] = h1;
    out[i * 2 + 1] = h2;
  }
  return out;
}

/** Warm-up hashes millions of logged ids: through one buffer, not one per id. */
const ID_SCRATCH = Buffer.alloc(256);

export class EventIdDedupe {
  private readonly s: Uint32Array;
  private readonly mask: number;
  /** Word offset of the current generation's slot within a bucket (0 or SLOT); the other one is the previous. */
  private current = 0;
  private currentCount = 0;
  private touched = 0;
  private readonly apps = new Map<string, number>();
  /** Per request in flight: its settled promise and the word index of each slot it claimed. */
  private readonly inFlight = new Map<number, { settled: Promise<boolean>; slots: number[] }>();
  private lastApp = '';
  private lastAppIndex = 0;
  private nextSeq = 1;

  constructor(private readonly generationSize: number) {
    let cap = 1024;
    while (cap < generationSize * 2) cap *= 2;
    this.s = new Uint32Array(cap * BUCKET);
    this.mask = cap - 1;
    // Every page written once now: left to the first claims, faulting in the table's pages (one per 4 KiB, at random)
    // made the first second of ingest after a start several times slower (~0.5 s of faults for 128 MB on a VM).
    for (let w = 0; w < this.s.length; w += 1024) this.s[w] = EMPTY;
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

  /** Word index of the key's slot in generation `gen` (0 or SLOT), or -1 (the key: h1/h2 as last set). */
  private find(gen: number, app: number): number {
    const s = this.s;
    for (let i = h1 & this.mask; ; i = (i + 1) & this.mask) {
      const w = i * BUCKET + gen;
      const m = s[w]!;
      if (m === EMPTY) return -1;
      if (m === app && s[w + 1] === h1 && s[w + 2] === h2) return w;
    }
  }

  private insert(app: number, meta: number, seq: number): number {
    if (this.currentCount >= this.generationSize) this.roll();
    const s = this.s;
    const gen = this.current;
    let w = (h1 & this.mask) * BUCKET + gen;
    while (s[w] !== EMPTY && s[w] !== TOMBSTONE) w = (w + BUCKET) % s.length;
    s[w] = meta;
    s[w + 1] = h1;
    s[w + 2] = h2;
    s[w + 3] = seq;
    this.currentCount++;
    return w;
  }

  /** The current generation becomes the previous one; the oldest is forgotten and its half reused. */
  private roll(): void {
    const s = this.s;
    const oldest = SLOT - this.current;
    for (let w = oldest; w < s.length; w += BUCKET) s[w] = s[w + 1] = s[w + 2] = s[w + 3] = 0;
    this.current = oldest;
    this.currentCount = 0;
  }

  /** Starts a request's claims; settle it with `settle(seq, durable)` once its append is done. */
  startRequest(settled: Promise<boolean>): number {
    const seq = this.nextSeq++;
    this.inFlight.set(seq, { settled, slots: [] });
    return seq;
  }

  /**
   * Claims event `index` of `hashes` (hashEventIds) for request `seq`: 'new' (now in flight for this request), 'seen'
   * (stored before), 'same-request' (repeated inside this request), or the outcome of another request that has it in flight.
   */
  claim(appId: string, hashes: Uint32Array, index: number, seq: number): Claim {
    const app = this.appIndex(appId);
    h1 = hashes[index * 2]!;
    h2 = hashes[index * 2 + 1]!;
    let w = this.find(this.current, app);
    if (w < 0) w = this.find(SLOT - this.current, app);
    if (w >= 0) {
      const owner = this.s[w + 3]!;
      if (owner === seq) return 'same-request';
      return this.inFlight.get(owner)?.settled ?? 'seen';
    }
    this.inFlight.get(seq)!.slots.push(this.insert(app, app, seq));
    return 'new';
  }

  /**
   * Touches the home bucket of events [from, to) of `hashes` before they are claimed one by one: the reads are
   * independent, so the CPU overlaps their cache and TLB misses instead of paying them one claim at a time.
   */
  prefetch(hashes: Uint32Array, from: number, to: number): void {
    const s = this.s;
    let x = 0;
    for (let i = from; i < to; i++) x ^= s[(hashes[i * 2]! & this.mask) * BUCKET]!;
    // Kept, so the compiler cannot drop the reads as unused.
    this.touched = x;
  }

  /** Ends request `seq`: its ids become seen when durable (nothing to write), or are forgotten so a retry is accepted. */
  settle(seq: number, durable: boolean): void {
    const req = this.inFlight.get(seq);
    if (!req) return;
    this.inFlight.delete(seq);
    if (durable) return;
    const s = this.s;
    for (const w of req.slots) {
      // A slot whose generation was forgotten meanwhile holds another key (or none): leave it.
      if (s[w + 3] === seq && s[w] !== EMPTY && s[w] !== TOMBSTONE) s[w] = TOMBSTONE;
    }
  }

  /** Marks an id as stored (warm-up from the log). */
  remember(appId: string, eventId: string): void {
    const app = this.appIndex(appId);
    // Stored ids are UUIDs: ASCII, so their bytes are the ones ingest hashed.
    const n = ID_SCRATCH.write(eventId, 0, 'latin1');
    hashId(ID_SCRATCH, 0, n);
    if (this.find(this.current, app) >= 0) return;
    this.insert(app, app, 0);
  }
}
