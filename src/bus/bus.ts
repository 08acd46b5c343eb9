// The bus port: an ordered, durable, replayable log of records with per-consumer committed positions.
// Embedded: SegmentedLog (files + fsync). Distributed: NATS JetStream (scale-out issue).

/** A record to append: its bytes, or its parts in order (the embedded log writes them without joining them). */
export type Payload = Buffer | readonly Buffer[];

export const payloadParts = (p: Payload): readonly Buffer[] => (p instanceof Uint8Array ? [p] : p);
export const payloadLength = (p: Payload): number => (p instanceof Uint8Array ? p.length : p.reduce((a, b) => a + b.length, 0));
export const joinPayload = (p: Payload): Buffer => (p instanceof Uint8Array ? p : Buffer.concat(p));

export interface BusRecord {
  /** Position in the log; strictly increasing, dense (0, 1, 2, …) for the embedded log, with gaps for a consumer of one partition. */
  offset: number;
  payload: Buffer;
}

/** Per payload, optional: the entity key choosing its partition, and a message id deduplicated by the bus. */
export interface AppendOptions {
  keys?: ReadonlyArray<string | undefined>;
  ids?: ReadonlyArray<string | undefined>;
  /** The partition itself, when the caller computed it (ingest: from each event's entity); wins over `keys`. */
  partitions?: ReadonlyArray<number | undefined>;
}

export interface Bus {
  /** The bus drops a payload whose message id it saw recently (JetStream); others ignore ids, so callers skip them. */
  readonly deduplicatesById?: boolean;

  /**
   * Appends payloads in order and resolves only once they are durable (fsynced / acked).
   * Concurrent calls are group-committed. Resolves with the offset of the first payload.
   * Keys and ids matter to a partitioned bus (JetStream); the embedded log has one partition and ignores them.
   */
  appendDurably(payloads: Payload[], opts?: AppendOptions): Promise<number>;

  /** Offset the next appended record will get; everything below it is durable and readable. */
  endOffset(): number;

  /** Lowest offset still retained (older records were removed by retention). */
  startOffset(): number;

  /** Reads up to `maxRecords` durable records starting at `fromOffset` (clamped to startOffset). */
  read(fromOffset: number, maxRecords: number): Promise<BusRecord[]>;

  /** Resolves when endOffset() > offset, or after `timeoutMs` (whichever first). */
  waitFor(offset: number, timeoutMs: number): Promise<void>;

  /** The consumer's committed position: the next offset it wants (0 when it never committed). */
  committed(consumer: string): Promise<number>;

  /** Durably stores the consumer's position (the next offset it wants). */
  commit(consumer: string, nextOffset: number): Promise<void>;

  /** Flushes and releases files; pending appends complete first. */
  close(): Promise<void>;
}
