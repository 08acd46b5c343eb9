import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, mkdtemp, open, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SegmentedLog } from '../src/bus/segmented-log.js';
import type { BusRecord } from '../src/bus/bus.js';

// The compiled module beside this compiled test, wherever the checkout is (the child imports it by URL).
const LOG_MODULE_URL = new URL('../src/bus/segmented-log.js', import.meta.url).href;

/** Deterministic payload for an offset, with a varying length so frames are not all the same size. */
function payloadFor(offset: number): Buffer {
  return Buffer.from(`rec-${offset}-${'x'.repeat((offset * 7) % 41)}`);
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bus-log-test-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** FileHandle.prototype, for counting or failing I/O calls made by the log. */
async function fileHandlePrototype(dir: string): Promise<FileHandle> {
  const probe = await open(join(dir, 'probe'), 'w');
  await probe.close();
  return Object.getPrototypeOf(probe) as FileHandle;
}

async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(join(dir, 'segments'))).filter((name) => name.endsWith('.log')).sort();
}

/** Appends records start..start+count-1 in batches of varying size, checking each returned first offset. */
async function appendRange(log: SegmentedLog, start: number, count: number): Promise<void> {
  let next = start;
  while (next < start + count) {
    const size = Math.min(1 + (next % 53), start + count - next);
    const batch = Array.from({ length: size }, (_, i) => payloadFor(next + i));
    assert.equal(await log.appendDurably(batch), next);
    next += size;
  }
}

function assertRecords(records: BusRecord[], from: number, count: number): void {
  assert.equal(records.length, count, `expected ${count} records from ${from}`);
  records.forEach((record, i) => {
    assert.equal(record.offset, from + i);
    assert.deepEqual(record.payload, payloadFor(from + i), `payload of offset ${from + i}`);
  });
}

test('append/read round trip across segment rolls', async () => {
  await withTempDir(async (dir) => {
    const log = await SegmentedLog.open({ dir, segmentBytes: 4096 });
    assert.equal(log.endOffset(), 0);
    assert.equal(log.startOffset(), 0);
    assert.equal(await log.appendDurably([]), 0);

    await appendRange(log, 0, 1000);
    assert.equal(log.endOffset(), 1000);
    const files = await segmentFiles(dir);
    assert.ok(files.length >= 5, `expected several segments, got ${files.length}`);
    assert.match(files[0], /^0{20}\.log$/);

    const all = await log.read(0, 5000);
    assertRecords(all, 0, 1000);

    // Sequential chunks concatenate to the whole log.
    const chunked: BusRecord[] = [];
    for (let from = 0; from < 1000; from += 97) chunked.push(...(await log.read(from, 97)));
    assert.deepEqual(chunked, all);

    // Reads straddling each segment boundary.
    for (const name of files.slice(1)) {
      const base = Number(name.slice(0, 20));
      assert.ok(base > 0 && base < 1000);
      assertRecords(await log.read(base - 3, 6), base - 3, 6);
    }

    // Random seeks, clamping at the end, empty reads.
    assertRecords(await log.read(537, 3), 537, 3);
    assertRecords(await log.read(990, 100), 990, 10);
    assert.deepEqual(await log.read(1000, 10), []);
    assert.deepEqual(await log.read(5, 0), []);

    // Payloads returned earlier are not overwritten by later reads.
    const early = await log.read(100, 50);
    await log.read(0, 1000);
    await log.read(100, 50);
    assertRecords(early, 100, 50);

    // scan() sees exactly the same records.
    const scanned: BusRecord[] = [];
    await log.scan(250, (r) => scanned.push(r));
    assertRecords(scanned, 250, 750);
    await log.close();
    await assert.rejects(log.appendDurably([payloadFor(0)]), /closed/);
  });
});

test('group commit: 200 concurrent single-record appends', async () => {
  await withTempDir(async (dir) => {
    let fsyncs = 0;
    let fsyncedRecords = 0;
    const log = await SegmentedLog.open({
      dir,
      onFsync: (seconds, records) => {
        assert.ok(seconds >= 0);
        fsyncs++;
        fsyncedRecords += records;
      },
    });
    const payloads = Array.from({ length: 200 }, (_, i) => Buffer.from(`concurrent-${i}`));
    const offsets = await Promise.all(payloads.map((p) => log.appendDurably([p])));
    assert.deepEqual(
      [...offsets].sort((a, b) => a - b),
      Array.from({ length: 200 }, (_, i) => i),
    );
    assert.ok(fsyncs < 200, `expected fewer fsyncs than appends, got ${fsyncs}`);
    assert.equal(fsyncedRecords, 200);
    assert.equal(log.endOffset(), 200);
    // Each caller's payload sits at the offset it was given.
    const records = await log.read(0, 200);
    offsets.forEach((offset, i) => assert.deepEqual(records[offset].payload, payloads[i]));
    await log.close();
  });
});

test('sequential chunked reads resume from cached cursors instead of rescanning', async () => {
  await withTempDir(async (dir) => {
    const log = await SegmentedLog.open({ dir });
    await appendRange(log, 0, 20_000);
    const [file] = await segmentFiles(dir);
    const segmentSize = (await stat(join(dir, 'segments', file))).size;
    const proto = await fileHandlePrototype(dir);
    const originalRead = proto.read;
    let bytesRead = 0;
    proto.read = async function (this: FileHandle, ...args: unknown[]) {
      const result = await (originalRead as (...a: unknown[]) => Promise<{ bytesRead: number }>).apply(this, args);
      bytesRead += result.bytesRead;
      return result;
    } as FileHandle['read'];
    try {
      let next = 0;
      while (next < 20_000) {
        const chunk = await log.read(next, 1000);
        assertRecords(chunk, next, 1000);
        next += chunk.length;
      }
    } finally {
      proto.read = originalRead;
    }
    // Rescanning from the segment start for every chunk would read ~10x the segment.
    assert.ok(bytesRead < 2 * segmentSize, `read ${bytesRead} bytes for a ${segmentSize}-byte segment`);
    await log.close();
  });
});

test('a failed fsync rejects the group and fails the log; nothing unsynced becomes visible', async () => {
  await withTempDir(async (dir) => {
    const log = await SegmentedLog.open({ dir });
    const proto = await fileHandlePrototype(dir);
    const originalDatasync = proto.datasync;
    let datasyncCalls = 0;
    let failDatasync = false;
    proto.datasync = async function (this: FileHandle) {
      datasyncCalls++;
      if (failDatasync) throw Object.assign(new Error('EIO: simulated'), { code: 'EIO' });
      return originalDatasync.call(this);
    };
    try {
      await appendRange(log, 0, 10);
      assert.ok(datasyncCalls > 0, 'appends must datasync before resolving');
      failDatasync = true;
      const doomed = [log.appendDurably([payloadFor(10)]), log.appendDurably([payloadFor(11)])];
      const results = await Promise.allSettled(doomed);
      assert.ok(results.every((r) => r.status === 'rejected'), 'no append of a failed group may resolve');
      assert.equal(log.endOffset(), 10);
      assertRecords(await log.read(0, 100), 0, 10);
      failDatasync = false;
      await assert.rejects(log.appendDurably([payloadFor(10)]), /write failed/);
      assert.equal(log.endOffset(), 10);
    } finally {
      proto.datasync = originalDatasync;
    }
    await log.close();
  });
});

test('reopen after close keeps contents and continues offsets', async () => {
  await withTempDir(async (dir) => {
    const first = await SegmentedLog.open({ dir, segmentBytes: 4096 });
    await appendRange(first, 0, 400);
    await first.close();

    const second = await SegmentedLog.open({ dir, segmentBytes: 4096 });
    assert.equal(second.recoveredTruncatedBytes, 0);
    assert.equal(second.endOffset(), 400);
    assert.equal(second.startOffset(), 0);
    assertRecords(await second.read(0, 1000), 0, 400);
    await appendRange(second, 400, 300);
    assertRecords(await second.read(350, 1000), 350, 350);
    await second.close();

    const third = await SegmentedLog.open({ dir, segmentBytes: 4096 });
    assert.equal(third.endOffset(), 700);
    assertRecords(await third.read(0, 1000), 0, 700);
    await third.close();
  });
});

test('torn tail is truncated on open', async () => {
  await withTempDir(async (dir) => {
    const log = await SegmentedLog.open({ dir, segmentBytes: 4096 });
    await appendRange(log, 0, 300);
    await log.close();
    const files = await segmentFiles(dir);
    const lastFile = join(dir, 'segments', files[files.length - 1]);
    const cleanSize = (await stat(lastFile)).size;

    // A partial record: valid header announcing 100 bytes, only 10 present.
    const partial = Buffer.alloc(8 + 10, 7);
    partial.writeUInt32BE(100, 0);
    partial.writeUInt32BE(12345, 4);
    await appendFile(lastFile, partial);

    const reopened = await SegmentedLog.open({ dir, segmentBytes: 4096 });
    assert.equal(reopened.endOffset(), 300);
    assert.equal(reopened.recoveredTruncatedBytes, partial.length);
    assert.equal((await stat(lastFile)).size, cleanSize);
    assert.equal(await reopened.appendDurably([payloadFor(300), payloadFor(301)]), 300);
    assertRecords(await reopened.read(0, 1000), 0, 302);
    await reopened.close();

    // Plain garbage (its "length" points far past the end of the file).
    const garbage = Buffer.from('garbage-bytes-\xff\xff\xff', 'latin1');
    await appendFile(lastFile, garbage);
    const again = await SegmentedLog.open({ dir, segmentBytes: 4096 });
    assert.equal(again.endOffset(), 302);
    assert.equal(again.recoveredTruncatedBytes, garbage.length);
    await appendRange(again, 302, 10);
    assertRecords(await again.read(0, 1000), 0, 312);
    await again.close();
  });
});

test('a corrupted last record (bad CRC) is dropped, and only it', async () => {
  await withTempDir(async (dir) => {
    const log = await SegmentedLog.open({ dir });
    await appendRange(log, 0, 10);
    await log.close();
    const [file] = await segmentFiles(dir);
    const path = join(dir, 'segments', file);
    const bytes = await readFile(path);
    bytes[bytes.length - 1] ^= 0x01; // last byte of the last record's payload
    await writeFile(path, bytes);

    const reopened = await SegmentedLog.open({ dir });
    assert.equal(reopened.endOffset(), 9);
    assert.equal(reopened.recoveredTruncatedBytes, 8 + payloadFor(9).length);
    assertRecords(await reopened.read(0, 100), 0, 9);
    assert.equal(await reopened.appendDurably([payloadFor(9)]), 9);
    assertRecords(await reopened.read(0, 100), 0, 10);
    await reopened.close();
  });
});

test('consumer commits persist across reopen', async () => {
  await withTempDir(async (dir) => {
    const log = await SegmentedLog.open({ dir });
    assert.equal(await log.committed('indexer'), 0);
    await log.commit('indexer', 42);
    await log.commit('warehouse.v1', 7);
    await Promise.all([log.commit('racy', 1), log.commit('racy', 2), log.commit('racy', 3)]);
    assert.equal(await log.committed('indexer'), 42);
    assert.throws(() => log.commit('../escape', 1), /invalid consumer name/);
    await assert.rejects(log.committed('has space'), /invalid consumer name/);
    await assert.rejects(log.committed('x'.repeat(65)), /invalid consumer name/);
    await log.close();

    const consumerFiles = (await readdir(join(dir, 'consumers'))).sort();
    assert.deepEqual(consumerFiles, ['indexer.offset', 'racy.offset', 'warehouse.v1.offset']);
    assert.equal(await readFile(join(dir, 'consumers', 'indexer.offset'), 'utf8'), '42');

    const reopened = await SegmentedLog.open({ dir });
    assert.equal(await reopened.committed('indexer'), 42);
    assert.equal(await reopened.committed('warehouse.v1'), 7);
    assert.equal(await reopened.committed('racy'), 3);
    assert.equal(await reopened.committed('never'), 0);
    await reopened.close();
  });
});

test('waitFor resolves on append and on timeout, without leaking timers', async () => {
  await withTempDir(async (dir) => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    const countTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    try {
      const log = await SegmentedLog.open({ dir });
      const timersBefore = countTimers();
      const started = Date.now();
      const waiters = Array.from({ length: 50 }, () => log.waitFor(0, 10_000));
      assert.ok(countTimers() >= timersBefore + 50);
      await log.appendDurably([Buffer.from('wake')]);
      await Promise.all(waiters);
      assert.ok(Date.now() - started < 5_000, 'waiters resolved by the append, not the timeout');
      assert.equal(countTimers(), timersBefore, 'timeouts cleared once resolved');

      // Already satisfied: immediate.
      await log.waitFor(0, 10_000);

      const timeoutStarted = Date.now();
      await log.waitFor(1, 60);
      assert.ok(Date.now() - timeoutStarted >= 50, 'waited for the timeout');
      assert.equal(log.endOffset(), 1);
      assert.equal(countTimers(), timersBefore);
      await log.close();
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(warnings.length, 0, `unexpected warnings: ${warnings.map((w) => w.message).join('; ')}`);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

test('retention removes old sealed segments but never past the min committed offset', async () => {
  await withTempDir(async (dir) => {
    const log = await SegmentedLog.open({ dir, segmentBytes: 512, retentionBytes: 0 });
    await log.commit('slow', 0); // pins everything while it sits at 0
    await appendRange(log, 0, 400);
    const filesBefore = await segmentFiles(dir);
    assert.ok(filesBefore.length >= 10);
    assert.equal(await log.applyRetention(), 0);
    assert.equal(log.startOffset(), 0);

    await log.commit('slow', 150);
    await log.commit('fast', 390);
    const removed = await log.applyRetention();
    assert.ok(removed > 0);
    assert.equal((await segmentFiles(dir)).length, filesBefore.length - removed);
    const start = log.startOffset();
    assert.ok(start > 0 && start <= 150, `startOffset ${start} must not pass the slow consumer`);
    // The segment holding offset 150 (and everything after) is still readable.
    assertRecords(await log.read(150, 250), 150, 250);
    // Reading below the start returns from the start.
    const clamped = await log.read(0, 5);
    assertRecords(clamped, start, 5);
    await log.close();

    // Once every consumer is at the end, only the active segment survives; rolls trigger retention.
    const reopened = await SegmentedLog.open({ dir, segmentBytes: 512, retentionBytes: 0 });
    assert.equal(reopened.startOffset(), start);
    // Both consumers already ask for offset 500, so everything below it is releasable.
    await reopened.commit('slow', 500);
    await reopened.commit('fast', 500);
    await appendRange(reopened, 400, 100); // rolls segments, each roll applies retention in the background
    await reopened.close(); // waits for background retention
    const remaining = await segmentFiles(dir);
    assert.equal(remaining.length, 1, `expected background retention to leave only the active segment`);

    const last = await SegmentedLog.open({ dir, segmentBytes: 512, retentionBytes: 0 });
    assert.ok(last.startOffset() >= 400);
    assert.equal(await last.applyRetention(), 0);
    assert.equal((await segmentFiles(dir)).length, 1, 'the active segment is never removed');
    assert.equal(last.endOffset(), 500);
    const tail = await last.read(0, 1000);
    assert.ok(tail.length > 0);
    assertRecords(tail, last.startOffset(), 500 - last.startOffset());
    await last.close();
  });
});

test('retentionMs removes sealed segments older than the limit', async () => {
  await withTempDir(async (dir) => {
    const log = await SegmentedLog.open({ dir, segmentBytes: 512, retentionMs: 60_000 });
    await appendRange(log, 0, 100);
    assert.equal(await log.applyRetention(), 0, 'nothing is old enough yet');
    // Age the segments by their modification time instead of waiting for it.
    const hourAgo = new Date(Date.now() - 3_600_000);
    for (const f of await segmentFiles(dir)) await utimes(join(dir, 'segments', f), hourAgo, hourAgo);
    assert.ok((await log.applyRetention()) > 0);
    assert.equal((await segmentFiles(dir)).length, 1);
    assert.equal(log.startOffset(), Number((await segmentFiles(dir))[0].slice(0, 20)));
    await log.close();
  });
});

test('records acked before kill -9 survive', async () => {
  await withTempDir(async (dir) => {
    const logDir = join(dir, 'log');
    const childScript = join(dir, 'child.mjs');
    await writeFile(
      childScript,
      `
import { SegmentedLog } from ${JSON.stringify(LOG_MODULE_URL)};
const payloadFor = ${payloadFor.toString()};
const log = await SegmentedLog.open({ dir: process.argv[2], segmentBytes: 16 * 1024 });
let next = log.endOffset();
for (let round = 0; ; round++) {
  const size = 1 + (round % 37);
  const batch = Array.from({ length: size }, (_, i) => payloadFor(next + i));
  const first = await log.appendDurably(batch);
  if (first !== next) throw new Error('unexpected offset ' + first + ' != ' + next);
  next += size;
  process.stdout.write((next - 1) + '\\n');
}
`,
    );

    const child = spawn(process.execPath, [childScript, logDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let highestAcked = -1;
    let pendingText = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // 'close' (not 'exit') fires after stdout is drained, so no acked line is missed.
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        pendingText += d.toString();
        const lines = pendingText.split('\n');
        pendingText = lines.pop() ?? '';
        for (const line of lines) highestAcked = Math.max(highestAcked, Number(line));
        if (highestAcked >= 1999 && child.exitCode === null && !child.killed) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      void exited.then(() => reject(new Error(`child exited early: ${stderr}`)));
    });
    assert.equal(await exited, 'SIGKILL');
    assert.ok(highestAcked >= 1999);

    const log = await SegmentedLog.open({ dir: logDir, segmentBytes: 16 * 1024 });
    assert.ok(
      log.endOffset() >= highestAcked + 1,
      `endOffset ${log.endOffset()} lost acked records (highest acked ${highestAcked})`,
    );
    const records = await log.read(0, highestAcked + 1);
    assertRecords(records, 0, highestAcked + 1);
    // Whatever survived beyond the last ack is intact too (recovery dropped any torn frame).
    assertRecords(await log.read(0, log.endOffset()), 0, log.endOffset());
    await log.close();
  });
});
