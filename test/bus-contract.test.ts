// The Bus contract, run against the embedded log (temp dir) and NATS JetStream (the local server, a stream per test).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bus, BusRecord } from '../src/bus/bus.js';
import { JetStreamBus } from '../src/bus/jetstream-bus.js';
import { partitionOf } from '../src/bus/partition.js';
import { SegmentedLog } from '../src/bus/segmented-log.js';

const NATS_SERVERS = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

/** A fresh, empty bus location; `open` may be called again after close (same data). */
interface BusPlace {
  /** `consumer`: the role a JetStream bus is bound to (reads and commits through it); the embedded log ignores it. */
  open(consumer?: string): Promise<Bus>;
  remove(): Promise<void>;
}

interface Implementation {
  name: string;
  place(): Promise<BusPlace>;
}

let streamSerial = 0;
const IMPLEMENTATIONS: Implementation[] = [
  {
    name: 'SegmentedLog',
    async place() {
      const dir = await mkdtemp(join(tmpdir(), 'bus-contract-'));
      return { open: () => SegmentedLog.open({ dir }), remove: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'JetStreamBus',
    async place() {
      const stream = `TEST_BUS_${process.pid}_${++streamSerial}_${randomBytes(3).toString('hex')}`;
      return {
        open: (consumer) => JetStreamBus.open({ servers: NATS_SERVERS, stream, ...(consumer ? { consumer: { name: consumer } } : {}) }),
        remove: () => JetStreamBus.deleteStream(NATS_SERVERS, stream),
      };
    },
  },
];

const payload = (i: number): Buffer => Buffer.from(`record-${i}-${'y'.repeat(i % 29)}`);

async function withPlace(impl: Implementation, fn: (place: BusPlace) => Promise<void>): Promise<void> {
  const place = await impl.place();
  try {
    await fn(place);
  } finally {
    await place.remove();
  }
}

/** Reads from `from` until `count` records came back (reads may return fewer than asked). */
async function readCount(bus: Bus, from: number, count: number): Promise<BusRecord[]> {
  const out: BusRecord[] = [];
  let next = from;
  while (out.length < count) {
    const recs = await bus.read(next, count - out.length);
    assert.ok(recs.length > 0, `read(${next}) returned nothing after ${out.length} of ${count} records`);
    out.push(...recs);
    next = recs[recs.length - 1]!.offset + 1;
  }
  return out;
}

const texts = (recs: BusRecord[]): string[] => recs.map((r) => r.payload.toString());

for (const impl of IMPLEMENTATIONS) {
  describe(`Bus contract: ${impl.name}`, () => {
    test('appends get increasing offsets and read back in order', () =>
      withPlace(impl, async (place) => {
        const bus = await place.open();
        try {
          assert.equal(bus.endOffset(), 0);
          assert.equal(await bus.appendDurably([payload(0), payload(1), payload(2)]), 0);
          assert.equal(await bus.appendDurably([payload(3)]), 3);
          assert.equal(await bus.appendDurably([payload(4), payload(5)]), 4);
          assert.equal(bus.endOffset(), 6);
          const recs = await readCount(bus, 0, 6);
          assert.deepEqual(recs.map((r) => r.offset), [0, 1, 2, 3, 4, 5]);
          assert.deepEqual(texts(recs), [0, 1, 2, 3, 4, 5].map((i) => payload(i).toString()));
        } finally {
          await bus.close();
        }
      }));

    test('a payload given as parts is one record holding their bytes in order, and survives a reopen', () =>
      withPlace(impl, async (place) => {
        let bus = await place.open();
        try {
          const parts = [Buffer.from('{"header":1}\n'), Buffer.from('body-'.repeat(1000)), Buffer.alloc(0), Buffer.from('tail')];
          assert.equal(await bus.appendDurably([payload(0), parts, payload(2)]), 0);
          await bus.close();
          bus = await place.open();
          const recs = await readCount(bus, 0, 3);
          assert.deepEqual(texts(recs), [payload(0).toString(), Buffer.concat(parts).toString(), payload(2).toString()]);
        } finally {
          await bus.close();
        }
      }));

    test('reads start at the asked position and stop at the asked count', () =>
      withPlace(impl, async (place) => {
        const bus = await place.open();
        try {
          await bus.appendDurably(Array.from({ length: 20 }, (_, i) => payload(i)));
          const mid = await bus.read(7, 3);
          assert.deepEqual(mid.map((r) => r.offset), [7, 8, 9]);
          assert.deepEqual(texts(mid), [payload(7), payload(8), payload(9)].map(String));
          // Backwards, then forwards again: positions are random access.
          assert.deepEqual((await bus.read(2, 2)).map((r) => r.offset), [2, 3]);
          assert.deepEqual((await bus.read(15, 100)).map((r) => r.offset), [15, 16, 17, 18, 19]);
          assert.deepEqual(await bus.read(20, 10), []);
        } finally {
          await bus.close();
        }
      }));

    test('a committed position survives close and reopen', () =>
      withPlace(impl, async (place) => {
        let bus = await place.open('role-a');
        await bus.appendDurably(Array.from({ length: 10 }, (_, i) => payload(i)));
        assert.equal(await bus.committed('role-a'), 0);
        await readCount(bus, 0, 10);
        await bus.commit('role-a', 6);
        assert.equal(await bus.committed('role-a'), 6);
        await bus.close();
        bus = await place.open('role-a');
        try {
          assert.equal(await bus.committed('role-a'), 6);
          const rest = await readCount(bus, 6, 4);
          assert.deepEqual(rest.map((r) => r.offset), [6, 7, 8, 9]);
          await bus.commit('role-a', 10);
          assert.equal(await bus.committed('role-a'), 10);
        } finally {
          await bus.close();
        }
      }));

    test('acknowledged appends are readable after reopen', () =>
      withPlace(impl, async (place) => {
        let bus = await place.open();
        await bus.appendDurably(Array.from({ length: 25 }, (_, i) => payload(i)));
        await bus.close();
        bus = await place.open();
        try {
          assert.equal(bus.endOffset(), 25);
          assert.deepEqual(texts(await readCount(bus, 0, 25)), Array.from({ length: 25 }, (_, i) => payload(i).toString()));
          assert.equal(await bus.appendDurably([payload(25)]), 25);
        } finally {
          await bus.close();
        }
      }));

    test('concurrent appends each land contiguously, none lost', () =>
      withPlace(impl, async (place) => {
        const bus = await place.open();
        try {
          const batches = Array.from({ length: 40 }, (_, b) => Array.from({ length: 5 }, (_, i) => Buffer.from(`b${b}-${i}`)));
          const firsts = await Promise.all(batches.map((batch) => bus.appendDurably(batch)));
          assert.equal(bus.endOffset(), 200);
          const all = await readCount(bus, 0, 200);
          const byOffset = new Map(all.map((r) => [r.offset, r.payload.toString()]));
          batches.forEach((batch, b) => batch.forEach((p, i) => assert.equal(byOffset.get(firsts[b]! + i), p.toString())));
          assert.equal(new Set(firsts).size, 40);
        } finally {
          await bus.close();
        }
      }));

    test('waitFor wakes on an append and returns on its timeout otherwise', () =>
      withPlace(impl, async (place) => {
        const bus = await place.open();
        try {
          await bus.appendDurably([payload(0)]);
          await bus.waitFor(0, 60_000); // already there: returns at once
          await bus.waitFor(1, 30); // nothing comes: the timeout ends it
          assert.equal(bus.endOffset(), 1);
          const woken = bus.waitFor(1, 60_000);
          await bus.appendDurably([payload(1)]);
          await woken;
          assert.equal(bus.endOffset(), 2);
        } finally {
          await bus.close();
        }
      }));

    test('records read but not committed come again after a reopen', () =>
      withPlace(impl, async (place) => {
        let bus = await place.open('role-b');
        await bus.appendDurably(Array.from({ length: 8 }, (_, i) => payload(i)));
        await readCount(bus, 0, 8);
        await bus.commit('role-b', 3);
        await bus.close(); // 3..7 were delivered, never committed
        bus = await place.open('role-b');
        try {
          const from = await bus.committed('role-b');
          assert.equal(from, 3);
          const again = await readCount(bus, from, 5);
          assert.deepEqual(again.map((r) => r.offset), [3, 4, 5, 6, 7]);
          assert.deepEqual(texts(again), [3, 4, 5, 6, 7].map((i) => payload(i).toString()));
          // Re-reading inside the session (a consumer retrying from its committed position) works too.
          assert.deepEqual((await readCount(bus, 3, 5)).map((r) => r.offset), [3, 4, 5, 6, 7]);
          await bus.commit('role-b', 8);
        } finally {
          await bus.close();
        }
        bus = await place.open('role-b');
        try {
          assert.equal(await bus.committed('role-b'), 8);
          assert.deepEqual(await bus.read(8, 10), []);
        } finally {
          await bus.close();
        }
      }));

    test('1 MiB payloads round-trip intact', () =>
      withPlace(impl, async (place) => {
        const bus = await place.open('role-c');
        try {
          const big = [randomBytes(1024 * 1024), Buffer.from('small'), randomBytes(3 * 1024 * 1024 + 17)];
          assert.equal(await bus.appendDurably(big), 0);
          const got = [...(await bus.read(0, 10))];
          while (got.length < 3) got.push(...(await bus.read(got[got.length - 1]!.offset + 1, 10)));
          assert.equal(got.length, 3);
          got.forEach((r, i) => assert.ok(r.payload.equals(big[i]!), `payload ${i} differs`));
          assert.ok(got[0]!.offset < got[1]!.offset && got[1]!.offset < got[2]!.offset);
          const end = got[2]!.offset + 1;
          await bus.commit('role-c', end);
          assert.deepEqual(await bus.read(end, 10), []);
          // Caught up: the consumer's end is after the last record (not inside it), and its commit covers all of it.
          assert.equal(bus.endOffset(), end);
          assert.ok((await bus.committed('role-c')) >= end);
        } finally {
          await bus.close();
        }
        // Another process (unbound) sees the consumer at the end: nothing left to drain.
        const observer = await place.open();
        try {
          assert.ok((await observer.committed('role-c')) >= observer.endOffset());
        } finally {
          await observer.close();
        }
      }));

    test('close waits for appends in flight; later appends are refused', () =>
      withPlace(impl, async (place) => {
        let bus = await place.open();
        const pending = Array.from({ length: 50 }, (_, i) => bus.appendDurably([payload(i)]));
        await bus.close();
        const offsets = await Promise.all(pending);
        assert.equal(new Set(offsets).size, 50);
        await assert.rejects(bus.appendDurably([payload(99)]));
        bus = await place.open();
        try {
          assert.equal(bus.endOffset(), 50);
          assert.deepEqual(texts(await readCount(bus, 0, 50)).sort(), Array.from({ length: 50 }, (_, i) => payload(i).toString()).sort());
        } finally {
          await bus.close();
        }
      }));
  });
}

describe('Bus contract: JetStreamBus only', () => {
  const jetStream = IMPLEMENTATIONS[1]!;
  const streamName = (): string => `TEST_BUS_${process.pid}_${++streamSerial}_${randomBytes(3).toString('hex')}`;

  test('keys route records to partition subjects; a consumer of one partition sees only its records', async () => {
    const stream = streamName();
    const open = (consumer?: { name: string; partition?: number }): Promise<JetStreamBus> =>
      JetStreamBus.open({ servers: NATS_SERVERS, stream, partitions: 4, ...(consumer ? { consumer } : {}) });
    const writer = await open();
    try {
      const devices = Array.from({ length: 24 }, (_, i) => `device-${i}`);
      assert.equal(writer.subjectFor('device-3'), `${stream.toLowerCase()}.${partitionOf('device-3', 4)}`);
      const counts = new Set(devices.map((d) => partitionOf(d, 4)));
      assert.ok(counts.size > 1, 'the keys spread over several partitions');
      await writer.appendDurably(devices.map((d) => Buffer.from(d)), { keys: devices });
      const p = partitionOf('device-0', 4);
      const mine = devices.filter((d) => partitionOf(d, 4) === p);

      let reader = await open({ name: `part-${p}`, partition: p });
      const first = await readCount(reader, 0, 2);
      assert.deepEqual(texts(first), mine.slice(0, 2));
      await reader.commit(`part-${p}`, first[1]!.offset + 1);
      await reader.close();

      // The next session resumes after the committed record, across the other partitions' offsets.
      reader = await open({ name: `part-${p}`, partition: p });
      try {
        const from = await reader.committed(`part-${p}`);
        assert.equal(from, first[1]!.offset + 1);
        const rest: BusRecord[] = [];
        let next = from;
        for (let recs = await reader.read(next, 100); recs.length; recs = await reader.read(next, 100)) {
          rest.push(...recs);
          next = recs[recs.length - 1]!.offset + 1;
        }
        assert.deepEqual(texts(rest), mine.slice(2));
        // Offsets are the stream's: a partition's are increasing, with gaps where other partitions' records are.
        assert.ok(rest.every((r, i) => i === 0 || r.offset > rest[i - 1]!.offset));
        const woken = reader.waitFor(next, 60_000);
        await writer.appendDurably([Buffer.from('late')], { keys: ['device-0'] });
        await woken;
        assert.deepEqual(texts(await reader.read(next, 10)), ['late']);
      } finally {
        await reader.close();
      }
    } finally {
      await writer.close();
      await JetStreamBus.deleteStream(NATS_SERVERS, stream);
    }
  });

  test('a consumer re-reads below what its session still buffers (a small buffer), then goes on', async () => {
    const stream = streamName();
    const bus = await JetStreamBus.open({ servers: NATS_SERVERS, stream, consumer: { name: 'small' }, bufferBytes: 1024 });
    try {
      await bus.appendDurably(Array.from({ length: 60 }, (_, i) => Buffer.from(`r${i}-${'z'.repeat(100)}`)));
      const all = await readCount(bus, 0, 60);
      assert.deepEqual(all.map((r) => r.offset), Array.from({ length: 60 }, (_, i) => i));
      // Offsets 0.. were dropped from the session's buffer (1 KiB): this re-read is served by a replay.
      const again = await readCount(bus, 5, 55);
      assert.deepEqual(again.map((r) => r.payload.toString().split('-')[0]), Array.from({ length: 55 }, (_, i) => `r${i + 5}`));
      await bus.commit('small', 60);
      await bus.appendDurably([Buffer.from('next')]);
      assert.deepEqual(texts(await readCount(bus, 60, 1)), ['next']);
    } finally {
      await bus.close();
      await JetStreamBus.deleteStream(NATS_SERVERS, stream);
    }
  });

  test('a message id appended twice within the duplicate window is stored once', () =>
    withPlace(jetStream, async (place) => {
      const bus = await place.open();
      try {
        const first = await bus.appendDurably([Buffer.from('event e1')], { ids: ['app:e1'] });
        const again = await bus.appendDurably([Buffer.from('event e1, retried')], { ids: ['app:e1'] });
        assert.equal(again, first);
        await bus.appendDurably([Buffer.from('event e2')], { ids: ['app:e2'] });
        assert.equal(bus.endOffset(), 2);
        assert.deepEqual(texts(await readCount(bus, 0, 2)), ['event e1', 'event e2']);
      } finally {
        await bus.close();
      }
    }));

  test('processes opening a new stream together share it; an unbound bus sees appends made through another connection', () =>
    withPlace(jetStream, async (place) => {
      // Both create the missing stream at the same time: one wins, the other uses it.
      const [writer, watcher] = await Promise.all([place.open(), place.open()]);
      try {
        const woken = watcher.waitFor(0, 60_000);
        await writer.appendDurably([payload(0), payload(1)]);
        await woken;
        assert.deepEqual(texts(await readCount(watcher, 0, 2)), [payload(0), payload(1)].map(String));
      } finally {
        await watcher.close();
        await writer.close();
      }
    }));
});
