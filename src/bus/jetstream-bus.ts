// Distributed Bus: one NATS JetStream stream (file storage) whose subjects are `<stream lower-case>.<partition>`.
// Offsets are stream sequences minus one. Appends resolve once every publish ack is back (stored by JetStream).
// A bus bound to a consumer reads through that role's durable pull consumer (AckPolicy.All: acking message N commits
// everything up to N), keeps one consume session open between reads, and commits by acking. An unbound bus reads
// with ordered (ephemeral, ack-less) consumers. Records larger than the server's max_payload travel as chunks.
import { connect, headers, nuid, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type PubAck,
} from '@nats-io/jetstream';
import { joinPayload, type AppendOptions, type Bus, type BusRecord, type Payload } from './bus.js';
import { partitionOf } from './partition.js';

export interface JetStreamBusOptions {
  /** NATS server URLs (`nats://host:4222`). */
  servers: string | string[];
  /** Stream name; default CAUSALITY_EVENTS. Its subjects are `<name lower-case>.<partition>`. */
  stream?: string;
  /** Number of partition subjects; a record's key picks one (FNV-1a). Default 16. */
  partitions?: number;
  /** JetStream's duplicate window: a message id seen within it is stored once. Default 2 minutes. */
  duplicateWindowMs?: number;
  /** Reads and commits through this role's durable consumer (created if missing). */
  consumer?: { name: string; /** Only this partition's records (one filter subject: nats-server 2.9). */ partition?: number };
  /** Bytes of unread records buffered per consume session before pulling pauses; as much again of read ones is kept for re-reads. Default 32 MiB. */
  bufferBytes?: number;
}

export const DEFAULT_STREAM = 'CAUSALITY_EVENTS';
const DEFAULT_PARTITIONS = 16;
const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;
const DEFAULT_BUFFER_BYTES = 32 * 1024 * 1024;
/** Redelivery by the server is not what restarts rely on (a session resets its consumer to the ack floor), so the wait is long: consumers holding records between commits (the detector, 10 s) are not sent them twice. */
const ACK_WAIT_MS = 5 * 60_000;
/** Deliveries outstanding without an ack; AckPolicy.All acks them in bulk at each commit. */
const MAX_ACK_PENDING = 1_000_000;
/** Longest a read waits for records it knows exist but whose delivery is still on the way. */
const READ_WAIT_MS = 5_000;
const STATE_REFRESH_MS = 1_000;
const WAITER_POLL_MS = 100;
/** An append not acked by then fails (ingest answers 503, the client retries). */
const PUBLISH_TIMEOUT_MS = 10_000;
const ACK_TIMEOUT_MS = 10_000;
const CONSUME_BATCH = 256;
/** Room left in max_payload for headers (chunk + message id) and the subject. */
const CHUNK_HEADROOM_BYTES = 4096;
/** An incomplete chunked record is dropped once messages this much newer arrived (its publisher died mid-record, so it was never acked). */
const ABANDONED_CHUNKS_NS = 30e9;
const CHUNK_HEADER = 'Causality-Chunk';
const RECORD_HEADER = 'Causality-Record';
const CONSUMER_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const ACK = new TextEncoder().encode('+ACK');

interface FeedRecord extends BusRecord {
  bytes: number;
}

interface ChunkGroup {
  offset: number;
  id: string;
  parts: Uint8Array[];
  count: number;
  timestampNanos: number;
  done: boolean;
}

/**
 * One consume session (durable or ordered) turned into an ordered buffer of records. Unread records are capped
 * (pulling pauses), read ones are kept up to the same size so a consumer can re-read from where it committed.
 */
class RecordFeed {
  /** Buffered records, ascending; every record of this feed with offset in [keptFrom, fetchedTo) is here. */
  records: FeedRecord[] = [];
  keptFrom: number;
  fetchedTo: number;
  /** Messages still to deliver after the newest one, as the server said (for filtered feeds: do records exist?). */
  pendingHint: number;
  /** Stream sequence of the newest message received (chunks included): the stream position this session reached. */
  seen: number;
  /** Offset after the newest record that started (a record's later chunks do not move it). */
  recordsEnd: number;
  private readCursor: number;
  private readBytes = 0;
  private unreadBytes = 0;
  private readonly arrivals = new Set<() => void>();
  private resumePump: (() => void) | null = null;
  private stopped = false;
  private readonly pump: Promise<void>;
  /** Chunked records in arrival order of their first chunk; complete ones leave from the head. */
  private readonly assembling: Array<FeedRecord | ChunkGroup> = [];

  constructor(
    private readonly messages: ConsumerMessages,
    from: number,
    pendingHint: number,
    private readonly capBytes: number,
    private readonly onMessage: (m: JsMsg) => void,
    private readonly onStop: () => Promise<void>,
  ) {
    this.keptFrom = from;
    this.fetchedTo = from;
    this.readCursor = from;
    this.pendingHint = pendingHint;
    this.seen = from;
    this.recordsEnd = from;
    this.pump = this.run();
  }

  private async run(): Promise<void> {
    try {
      for await (const m of this.messages) {
        this.onMessage(m);
        this.pendingHint = m.info.pending;
        this.seen = Math.max(this.seen, m.seq);
        this.accept(m);
        if (this.unreadBytes > this.capBytes && !this.stopped) await new Promise<void>((r) => (this.resumePump = r));
        if (this.stopped) break;
      }
    } catch {
      /* the session ended (stopped, or the connection closed): readers see no more records */
    } finally {
      this.stopped = true;
      this.notify();
    }
  }

  private accept(m: JsMsg): void {
    const offset = m.seq - 1;
    const chunk = m.headers?.get(CHUNK_HEADER);
    if (!chunk || chunk.startsWith('0/')) this.recordsEnd = Math.max(this.recordsEnd, m.seq);
    if (!chunk) {
      this.assembling.push({ offset, payload: Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength), bytes: m.data.byteLength });
    } else {
      const [index, count] = chunk.split('/').map(Number) as [number, number];
      const id = m.headers!.get(RECORD_HEADER);
      if (index === 0) {
        this.assembling.push({ offset, id, parts: [m.data], count, timestampNanos: m.info.timestampNanos, done: false });
      } else {
        const group = this.assembling.find((g): g is ChunkGroup => 'parts' in g && g.id === id && !g.done);
        // A chunk whose first part is below where this feed started belongs to a record already consumed.
        if (group && group.parts.length === index) {
          group.parts.push(m.data);
          group.done = group.parts.length === group.count;
        }
      }
    }
    this.emitComplete(m.info.timestampNanos);
  }

  private emitComplete(newestNanos: number): void {
    let emitted = false;
    while (this.assembling.length) {
      const head = this.assembling[0]!;
      if ('parts' in head) {
        if (!head.done) {
          if (newestNanos - head.timestampNanos < ABANDONED_CHUNKS_NS) break;
          this.assembling.shift();
          continue;
        }
        const payload = Buffer.concat(head.parts);
        this.assembling.shift();
        this.push({ offset: head.offset, payload, bytes: payload.byteLength });
      } else {
        this.assembling.shift();
        this.push(head);
      }
      emitted = true;
    }
    if (emitted) this.notify();
  }

  private push(r: FeedRecord): void {
    if (r.offset < this.fetchedTo) return; // before this feed's start (a skipped or re-delivered message)
    this.records.push(r);
    this.fetchedTo = r.offset + 1;
    if (r.offset >= this.readCursor) this.unreadBytes += r.bytes;
    else this.readBytes += r.bytes;
  }

  private notify(): void {
    for (const wake of this.arrivals) wake();
    this.arrivals.clear();
  }

  get ended(): boolean {
    return this.stopped;
  }

  /** Pulling waits for unread records to be read. */
  get paused(): boolean {
    return this.resumePump !== null;
  }

  /** Records at or after `from` (below `until`), up to `max`; marks everything below `from` as read. */
  take(from: number, max: number, until = Infinity): BusRecord[] {
    this.markRead(from);
    let i = lowerBound(this.records, from);
    const out: BusRecord[] = [];
    for (; i < this.records.length && out.length < max && this.records[i]!.offset < until; i++) out.push(this.records[i]!);
    return out;
  }

  /**
   * The highest stream sequence a consumer done with every record below `next` may ack: up to the first record (or
   * record being assembled) at or after `next`, else everything this session received (a done record's later chunks).
   */
  ackableTo(next: number): number {
    if (next < this.keptFrom) return next;
    let limit = this.seen;
    const i = lowerBound(this.records, next);
    if (i < this.records.length) limit = Math.min(limit, this.records[i]!.offset);
    for (const g of this.assembling) if (g.offset >= next) limit = Math.min(limit, g.offset);
    return Math.max(limit, next);
  }

  /** Whether a record at or after `offset` is buffered. */
  has(offset: number): boolean {
    return this.records.length > 0 && this.records[this.records.length - 1]!.offset >= offset;
  }

  private markRead(from: number): void {
    if (from > this.readCursor) {
      for (let i = lowerBound(this.records, this.readCursor); i < this.records.length && this.records[i]!.offset < from; i++) {
        this.unreadBytes -= this.records[i]!.bytes;
        this.readBytes += this.records[i]!.bytes;
      }
      this.readCursor = from;
    }
    this.trim(this.capBytes);
    if (this.unreadBytes <= this.capBytes && this.resumePump) {
      const resume = this.resumePump;
      this.resumePump = null;
      resume();
    }
  }

  /** Drops read records below `offset` (committed: never re-read). */
  dropBelow(offset: number): void {
    let n = 0;
    while (n < this.records.length && this.records[n]!.offset < offset && this.records[n]!.offset < this.readCursor) {
      this.readBytes -= this.records[n]!.bytes;
      n++;
    }
    if (n) this.drop(n);
  }

  /** Keeps read records within `limit` bytes, dropping the oldest. */
  private trim(limit: number): void {
    let n = 0;
    while (this.readBytes > limit && n < this.records.length && this.records[n]!.offset < this.readCursor) {
      this.readBytes -= this.records[n]!.bytes;
      n++;
    }
    if (n) this.drop(n);
  }

  private drop(n: number): void {
    this.keptFrom = this.records[n - 1]!.offset + 1;
    this.records.splice(0, n);
  }

  /** Resolves on the next arrival (or end), or at `deadline`. */
  arrival(deadline: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.arrivals.add(done);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.resumePump?.();
    this.messages.stop();
    await this.pump;
    await this.onStop().catch(() => undefined);
  }
}

function lowerBound(records: BusRecord[], offset: number): number {
  let lo = 0;
  let hi = records.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (records[mid]!.offset < offset) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Sequence of the last message acked: a consumer recreated at sequence s reports 0 until its first ack, but everything below s is done. */
function ackFloor(info: ConsumerInfo): number {
  const start = info.config.deliver_policy === DeliverPolicy.StartSequence ? (info.config.opt_start_seq ?? 1) - 1 : 0;
  return Math.max(info.ack_floor.stream_seq, start);
}

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamNotFound || err.code === JetStreamApiCodes.ConsumerNotFound);
}

export class JetStreamBus implements Bus {
  readonly deduplicatesById = true;
  readonly stream: string;
  readonly partitions: number;
  private readonly subjectPrefix: string;
  private readonly filter: string | undefined;
  private readonly maxChunkBytes: number;
  private knownEnd: number;
  private knownStart: number;
  /** Per partition subject: offset after the newest record this process appended there. */
  private readonly subjectEnd = new Map<string, number>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private durable: RecordFeed | null = null;
  /** Delivered, not yet acked durable messages (stream seq, ack subject), ascending: a commit acks one of them. */
  private unacked: Array<[number, string]> = [];
  /** A commit ahead of the deliveries: acked as those messages arrive. */
  private commitAhead = 0;
  private replay: { feed: RecordFeed; until: number } | null = null;
  /** The last replay reached the durable session's records: reads at or above `from` below `until` need none. */
  private replayed: { from: number; until: number } | null = null;
  private reader: RecordFeed | null = null;
  private readonly stateTimer: NodeJS.Timeout;
  private readonly waiters = new Set<{ offset: number; wake: () => void }>();
  private waiterPoll: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly opts: JetStreamBusOptions,
    state: { first: number; last: number },
  ) {
    this.stream = opts.stream ?? DEFAULT_STREAM;
    this.partitions = opts.partitions ?? DEFAULT_PARTITIONS;
    this.subjectPrefix = this.stream.toLowerCase();
    this.filter = opts.consumer?.partition === undefined ? undefined : `${this.subjectPrefix}.${opts.consumer.partition}`;
    this.maxChunkBytes = nc.info!.max_payload - CHUNK_HEADROOM_BYTES;
    this.knownEnd = state.last;
    this.knownStart = state.first - 1;
    this.stateTimer = setInterval(() => void this.refreshState().catch(() => undefined), STATE_REFRESH_MS);
    this.stateTimer.unref();
  }

  /** Connects, creates the stream if missing (file storage) and, when bound, the role's durable consumer. */
  static async open(opts: JetStreamBusOptions): Promise<JetStreamBus> {
    const stream = opts.stream ?? DEFAULT_STREAM;
    const partitions = opts.partitions ?? DEFAULT_PARTITIONS;
    if (!/^[A-Za-z0-9_-]+$/.test(stream)) throw new Error(`invalid stream name ${JSON.stringify(stream)}`);
    if (!Number.isInteger(partitions) || partitions < 1) throw new Error(`partitions must be a positive integer, got ${partitions}`);
    if (opts.consumer && !CONSUMER_NAME.test(opts.consumer.name)) throw new Error(`invalid consumer name ${JSON.stringify(opts.consumer.name)}`);
    if (opts.consumer?.partition !== undefined && !(opts.consumer.partition >= 0 && opts.consumer.partition < partitions)) {
      throw new Error(`partition ${opts.consumer.partition} is outside 0..${partitions - 1}`);
    }
    const nc = await connect({ servers: opts.servers, name: `causality${opts.consumer ? `-${opts.consumer.name}` : ''}`, maxReconnectAttempts: -1 });
    try {
      const jsm = await jetstreamManager(nc);
      let info;
      try {
        info = await jsm.streams.info(stream);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        const config = {
          name: stream,
          subjects: [`${stream.toLowerCase()}.*`],
          storage: StorageType.File,
          retention: RetentionPolicy.Limits,
          discard: DiscardPolicy.Old,
          duplicate_window: (opts.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS) * 1_000_000,
        };
        // Another process starting at the same time may create it first: then use theirs.
        info = await jsm.streams.add(config).catch(() => jsm.streams.info(stream));
      }
      const bus = new JetStreamBus(nc, jetstream(nc), jsm, opts, { first: info.state.first_seq, last: info.state.last_seq });
      if (opts.consumer) await bus.startDurable(opts.consumer.name);
      return bus;
    } catch (err) {
      await nc.close();
      throw err;
    }
  }

  /** Removes a stream (tests, benchmarks); no error when it does not exist. */
  static async deleteStream(servers: string | string[], stream: string): Promise<void> {
    const nc = await connect({ servers });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(stream).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    } finally {
      await nc.close();
    }
  }

  /** The subject a record with this entity key goes to (no key: partition 0). */
  subjectFor(key: string | undefined, partition?: number): string {
    if (partition !== undefined) return `${this.subjectPrefix}.${partition % this.partitions}`;
    return `${this.subjectPrefix}.${key === undefined ? 0 : partitionOf(key, this.partitions)}`;
  }

  /**
   * Opens the durable consume session at the ack floor. Messages an earlier session was delivered but never acked
   * (it crashed, or closed between commits) come back at once: the consumer is recreated at its ack floor rather
   * than waiting for the server's redelivery after ACK_WAIT.
   */
  private async startDurable(name: string): Promise<void> {
    const config: Partial<ConsumerConfig> = {
      durable_name: name,
      ack_policy: AckPolicy.All,
      ack_wait: ACK_WAIT_MS * 1_000_000,
      max_ack_pending: MAX_ACK_PENDING,
      max_deliver: -1,
      ...(this.filter ? { filter_subject: this.filter } : {}),
    };
    let info = await this.jsm.consumers.info(this.stream, name).catch((err: unknown) => {
      if (isNotFound(err)) return null;
      throw err;
    });
    if (info && (info.config.filter_subject ?? undefined) !== this.filter) {
      throw new Error(`consumer ${name} exists with filter ${info.config.filter_subject ?? '(none)'}, not ${this.filter ?? '(none)'}`);
    }
    if (info && info.delivered.stream_seq > info.ack_floor.stream_seq) {
      const floor = ackFloor(info);
      await this.jsm.consumers.delete(this.stream, name);
      info = null;
      if (floor > 0) {
        info = await this.jsm.consumers.add(this.stream, { ...config, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: floor + 1 });
      }
    }
    info ??= await this.jsm.consumers.add(this.stream, { ...config, deliver_policy: DeliverPolicy.All });
    const consumer = await this.js.consumers.get(this.stream, name);
    const messages = await consumer.consume({ max_messages: CONSUME_BATCH });
    this.durable = new RecordFeed(
      messages,
      ackFloor(info),
      info.num_pending,
      this.bufferBytes,
      (m) => this.tracked(m),
      async () => undefined,
    );
  }

  /** The consume session ended by itself (consumer deleted, connection trouble): a new one, from the ack floor. */
  private async restartDurable(): Promise<void> {
    const ended = this.durable!;
    this.unacked = [];
    this.replayed = null;
    await this.stopReplay();
    await ended.stop();
    await this.startDurable(this.opts.consumer!.name);
  }

  private get bufferBytes(): number {
    return this.opts.bufferBytes ?? DEFAULT_BUFFER_BYTES;
  }

  private tracked(m: JsMsg): void {
    this.noteEnd(this.filter ? m.seq : m.seq + m.info.pending);
    if (m.seq <= this.commitAhead) {
      m.ack(); // AckPolicy.All: covers everything below it too
      return;
    }
    const last = this.unacked[this.unacked.length - 1];
    // Only the ack subject is kept (not the message and its payload); JsMsg's implementation exposes it.
    if (!last || last[0] < m.seq) this.unacked.push([m.seq, (m as unknown as { reply: string }).reply]);
  }

  /** An ordered (ephemeral, ack-less) consume session starting at `from`. */
  private async orderedFeed(from: number, filter: string | undefined): Promise<RecordFeed> {
    const consumer = await this.js.consumers.get(this.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from + 1,
      ...(filter ? { filter_subjects: filter } : {}),
    });
    const messages = await consumer.consume({ max_messages: CONSUME_BATCH });
    const hint = filter ? 1 : Math.max(0, this.knownEnd - from);
    return new RecordFeed(messages, from, hint, this.bufferBytes, (m) => this.noteEnd(filter ? m.seq : m.seq + m.info.pending), () => consumer.delete().then(() => undefined));
  }

  private noteEnd(end: number): void {
    if (end <= this.knownEnd) return;
    this.knownEnd = end;
    for (const w of this.waiters) if (end > w.offset) w.wake();
  }

  private async refreshState(): Promise<void> {
    const info = await this.jsm.streams.info(this.stream);
    this.knownStart = Math.max(this.knownStart, info.state.first_seq - 1);
    this.noteEnd(info.state.last_seq);
  }

  appendDurably(payloads: Payload[], opts: AppendOptions = {}): Promise<number> {
    if (this.closing) return Promise.reject(new Error('bus is closed'));
    if (payloads.length === 0) return Promise.resolve(this.knownEnd);
    const acks = Promise.all(payloads.map((p, i) => this.publishRecord(joinPayload(p), this.subjectFor(opts.keys?.[i], opts.partitions?.[i]), opts.ids?.[i])));
    this.inFlight.add(acks);
    return acks.then(
      (first) => {
        this.inFlight.delete(acks);
        return first[0]! - 1;
      },
      (err: unknown) => {
        this.inFlight.delete(acks);
        throw err;
      },
    );
  }

  /** Publishes one record (as chunks when larger than a message may be); resolves with its first message's sequence. */
  private async publishRecord(payload: Buffer, subject: string, id: string | undefined): Promise<number> {
    if (payload.byteLength <= this.maxChunkBytes) {
      return this.acked(subject, await this.js.publish(subject, payload, { timeout: PUBLISH_TIMEOUT_MS, ...(id ? { msgID: id } : {}) }));
    }
    const count = Math.ceil(payload.byteLength / this.maxChunkBytes);
    const recordId = id ?? nuid.next();
    const parts: Array<Promise<PubAck>> = [];
    for (let i = 0; i < count; i++) {
      const h: MsgHdrs = headers();
      h.set(CHUNK_HEADER, `${i}/${count}`);
      h.set(RECORD_HEADER, recordId);
      const chunk = payload.subarray(i * this.maxChunkBytes, (i + 1) * this.maxChunkBytes);
      parts.push(this.js.publish(subject, chunk, { timeout: PUBLISH_TIMEOUT_MS, headers: h, msgID: `${recordId}#${i}` }));
    }
    const acks = await Promise.all(parts);
    for (const a of acks) this.acked(subject, a);
    return acks[0]!.seq;
  }

  private acked(subject: string, ack: PubAck): number {
    if ((this.subjectEnd.get(subject) ?? 0) < ack.seq) this.subjectEnd.set(subject, ack.seq);
    this.noteEnd(ack.seq);
    return ack.seq;
  }

  endOffset(): number {
    // A consumer that received the whole stream: the end is after the newest record, not after its last chunk.
    const feed = this.durable;
    if (feed && !this.filter && feed.seen >= this.knownEnd) return Math.min(this.knownEnd, feed.recordsEnd);
    return this.knownEnd;
  }

  startOffset(): number {
    return this.knownStart;
  }

  async read(fromOffset: number, maxRecords: number): Promise<BusRecord[]> {
    if (this.closing) throw new Error('bus is closed');
    const from = Math.max(fromOffset, this.knownStart, 0);
    if (maxRecords <= 0) return [];
    if (this.durable) {
      if (this.durable.ended) await this.restartDurable();
      const done = this.replayed;
      if (from < this.durable.keptFrom && !(done && done.until === this.durable.keptFrom && from >= done.from)) {
        const replayed = await this.readReplay(from, maxRecords, this.durable.keptFrom);
        if (replayed) return replayed;
      }
      return this.readFeed(this.durable, from, maxRecords, this.filter);
    }
    let feed = this.reader;
    if (!feed || feed.ended || from < feed.keptFrom || from > feed.fetchedTo) {
      const stale = feed;
      this.reader = null;
      await stale?.stop();
      feed = this.reader = await this.orderedFeed(from, undefined);
    }
    return this.readFeed(feed, from, maxRecords, undefined);
  }

  /** Below what the durable session still holds: an ordered feed up to `until`; null once it reached `until`. */
  private async readReplay(from: number, max: number, until: number): Promise<BusRecord[] | null> {
    let replay = this.replay;
    if (!replay || replay.until !== until || replay.feed.ended || from < replay.feed.keptFrom || from > replay.feed.fetchedTo) {
      await this.stopReplay();
      replay = this.replay = { feed: await this.orderedFeed(from, this.filter), until };
    }
    const deadline = Date.now() + READ_WAIT_MS;
    while (true) {
      const got = replay.feed.take(from, max, until);
      if (got.length) return got;
      if (replay.feed.fetchedTo >= until || replay.feed.has(until)) {
        this.replayed = { from, until };
        break;
      }
      if (replay.feed.ended || Date.now() >= deadline) return [];
      await replay.feed.arrival(deadline);
    }
    await this.stopReplay();
    return null;
  }

  private async stopReplay(): Promise<void> {
    const r = this.replay;
    this.replay = null;
    await r?.feed.stop();
  }

  /** Buffered records from `from`, up to `max`; waits (bounded) while records the stream is known to hold are still on their way. */
  private async readFeed(feed: RecordFeed, from: number, max: number, filter: string | undefined): Promise<BusRecord[]> {
    const deadline = Date.now() + READ_WAIT_MS;
    while (true) {
      const got = feed.take(from, max);
      if (got.length >= max || feed.ended || feed.paused || Date.now() >= deadline) return got;
      const more = filter ? got.length === 0 && (feed.pendingHint > 0 || (this.subjectEnd.get(filter) ?? 0) > feed.seen) : this.knownEnd > feed.seen;
      if (!more) return got;
      await feed.arrival(deadline);
    }
  }

  waitFor(offset: number, timeoutMs: number): Promise<void> {
    if (this.available(offset) || this.closing) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const waiter = {
        offset,
        wake: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.wake, Math.min(Math.max(0, timeoutMs), 2 ** 31 - 1));
      this.waiters.add(waiter);
      if (this.durable) {
        const feed = this.durable;
        const watch = (): void => {
          if (!this.waiters.has(waiter)) return;
          if (this.available(offset) || feed.ended) waiter.wake();
          else void feed.arrival(Date.now() + timeoutMs).then(watch);
        };
        void feed.arrival(Date.now() + timeoutMs).then(watch);
      } else {
        this.pollWhileWaiting();
      }
    });
  }

  /** Whether a read at `offset` finds a record without waiting for the server. */
  private available(offset: number): boolean {
    if (this.durable) return this.durable.has(offset) || (!this.filter && this.knownEnd > offset && this.durable.fetchedTo > offset);
    return this.knownEnd > offset;
  }

  /** Appends by other processes are seen by polling the stream's state while someone waits. */
  private pollWhileWaiting(): void {
    if (this.waiterPoll) return;
    this.waiterPoll = setInterval(() => {
      if (this.waiters.size === 0 || this.closing) {
        clearInterval(this.waiterPoll!);
        this.waiterPoll = null;
        return;
      }
      void this.refreshState().catch(() => undefined);
    }, WAITER_POLL_MS);
    this.waiterPoll.unref();
  }

  async committed(consumer: string): Promise<number> {
    if (!CONSUMER_NAME.test(consumer)) throw new Error(`invalid consumer name ${JSON.stringify(consumer)}`);
    try {
      return ackFloor(await this.jsm.consumers.info(this.stream, consumer));
    } catch (err) {
      if (isNotFound(err)) return 0;
      throw err;
    }
  }

  /** Acks the newest delivered message below `nextOffset` (AckPolicy.All: everything before it too), waiting for the server. */
  async commit(consumer: string, nextOffset: number): Promise<void> {
    if (!this.durable || consumer !== this.opts.consumer?.name) {
      throw new Error(`this bus commits only for its bound consumer (${this.opts.consumer?.name ?? 'none'}), not ${consumer}`);
    }
    if (this.closing) throw new Error('bus is closed');
    // Message with sequence nextOffset is the record at offset nextOffset - 1, the last one done; the done records'
    // later chunks (sequences past it) are acked with them.
    const ackTo = this.durable.ackableTo(nextOffset);
    let lo = 0;
    let hi = this.unacked.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.unacked[mid]![0] <= ackTo) lo = mid + 1;
      else hi = mid;
    }
    if (nextOffset > this.durable.fetchedTo) this.commitAhead = Math.max(this.commitAhead, nextOffset);
    this.durable.dropBelow(nextOffset);
    if (lo === 0) return;
    const [, reply] = this.unacked[lo - 1]!;
    this.unacked = this.unacked.slice(lo);
    await this.nc.request(reply, ACK, { timeout: ACK_TIMEOUT_MS });
  }

  /** Waits for appends in flight, stops the consume sessions, drains the connection. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    clearInterval(this.stateTimer);
    if (this.waiterPoll) clearInterval(this.waiterPoll);
    for (const w of [...this.waiters]) w.wake();
    await Promise.allSettled([...this.inFlight]);
    await Promise.allSettled([this.durable?.stop(), this.reader?.stop(), this.stopReplay()]);
    if (!this.nc.isClosed()) await this.nc.drain();
  }
}
