// Crash test of the spine (the bar): the real CLI runs as a child process under load and is killed with
// SIGKILL, twice, then restarted on the same data dir. Every event id that got a 2xx must end up in the warehouse
// exactly once; requests cut off by the kill ("unknown outcome") are retried with the same id and body after the
// restart and must be answered accepted or duplicate (idempotency across the crash).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/test/crash.test.js → <repo>/bin/causality.js
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = join(REPO, 'bin', 'causality.js');

const APP = 'crash';
const APP_KEY = 'crashkey_12345678';
const ADMIN_KEY = 'admin_12345678';
const SENDERS = 6;
const BATCH = 50;
const FIRST_KILL_ACKS = 3000;
const SECOND_KILL_ACKS = 1000;
// Fixed client time base: deterministic content, and every event lands in the same date partition.
const T0 = Date.UTC(2025, 0, 15, 8, 0, 0);

interface Health {
  status: string;
  bus: { endOffset: number; startOffset: number };
  sink: { committedOffset: number; lag: number };
}

/** One HTTP request the clients send (kept so an unknown outcome can be retried byte for byte). */
interface Req {
  route: 'batch' | 'ingest';
  body: unknown;
  ids: string[];
}

interface Expected {
  deviceId: string;
  screenName: string;
}

type Outcome =
  | { kind: 'ok'; statuses: string[] }
  | { kind: 'network'; error: string }
  | { kind: 'bad'; detail: string };

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') return reject(new Error('no port'));
      srv.close(() => resolvePort(addr.port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The CLI as a child process; its output goes to a shared buffer printed only when the test fails. */
class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(dataDir: string, port: number, generation: number, output: string[]) {
    this.proc = spawn(process.execPath, [CLI, 'up', '--data-dir', dataDir, '--port', String(port), '--host', '127.0.0.1'], {
      env: {
        CAUSALITY_APP_KEYS: `${APP}:${APP_KEY}`,
        CAUSALITY_ADMIN_KEY: ADMIN_KEY,
        BATCH_FLUSH_INTERVAL: '100ms',
        RATE_LIMIT_PER_MINUTE: '0',
        QUERY_ROW_LIMIT: '1000000',
        LOG_LEVEL: 'warn',
        PATH: process.env.PATH,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout!.on('data', (d: Buffer) => output.push(`[gen ${generation} stdout] ${d.toString()}`));
    this.proc.stderr!.on('data', (d: Buffer) => output.push(`[gen ${generation} stderr] ${d.toString()}`));
    this.exited = new Promise((r) => this.proc.once('exit', (code, signal) => r({ code, signal })));
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async kill(): Promise<void> {
    if (this.alive) this.proc.kill('SIGKILL');
    await this.exited;
  }
}

test('SIGKILL under load, twice: every acked event is in the warehouse exactly once', { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'causality-crash-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const output: string[] = [];
  let child: Child | null = null;
  let generation = 0;

  const expected = new Map<string, Expected>(); // every id ever sent → its content
  const acked = new Set<string>();
  let unknown: Req[] = [];
  const unexpected: string[] = []; // HTTP answers that are neither 2xx accepted/duplicate nor a cut connection
  let seq = 0;
  const figures = { unknownRetried: 0, retriedDuplicate: 0, retriedAccepted: 0, resentAckedDuplicate: 0, kills: [] as Array<Record<string, number>> };

  function makeEvent(sender: number): Record<string, unknown> {
    const n = seq++;
    const eventId = randomUUID();
    const deviceId = `dev-${sender}-${n % 17}`;
    const screenName = `screen-${n % 11}`;
    expected.set(eventId, { deviceId, screenName });
    return {
      eventId,
      appId: APP,
      deviceId,
      sessionId: `s-${sender}-${Math.floor(n / 200)}`,
      timestamp: T0 + n * 10,
      screenView: { screenName },
      properties: { seq: n, sender },
    };
  }

  function makeReq(sender: number, iteration: number): Req {
    if (iteration % 3 === 2) {
      const ev = makeEvent(sender);
      return { route: 'ingest', body: ev, ids: [ev.eventId as string] };
    }
    const events = Array.from({ length: BATCH }, () => makeEvent(sender));
    return { route: 'batch', body: { events }, ids: events.map((e) => e.eventId as string) };
  }

  async function send(req: Req): Promise<Outcome> {
    let res: Response;
    let body: unknown;
    try {
      res = await fetch(`${base}/v1/events/${req.route}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': APP_KEY },
        body: JSON.stringify(req.body),
        signal: AbortSignal.timeout(15_000),
      });
      body = await res.json();
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      return { kind: 'network', error: `${e.message} (${e.cause?.code ?? e.cause?.message ?? 'no cause'})` };
    }
    if (res.status < 200 || res.status >= 300) return { kind: 'bad', detail: `${req.route} → HTTP ${res.status} ${JSON.stringify(body)}` };
    const b = body as { status?: string; eventId?: string; results?: Array<{ status: string; eventId?: string }> };
    const answered =
      req.route === 'ingest' ? [{ status: b.status ?? '?', eventId: b.eventId }] : (b.results ?? []).map((r) => ({ status: r.status, eventId: r.eventId }));
    if (answered.length !== req.ids.length) return { kind: 'bad', detail: `${req.route}: ${answered.length} results for ${req.ids.length} events` };
    for (let i = 0; i < answered.length; i++) {
      const a = answered[i]!;
      if (a.status !== 'accepted' && a.status !== 'duplicate') return { kind: 'bad', detail: `${req.route}: event ${req.ids[i]} answered ${JSON.stringify(a)}` };
      if (a.eventId !== req.ids[i]) return { kind: 'bad', detail: `${req.route}: event ${req.ids[i]} answered with id ${a.eventId}` };
    }
    return { kind: 'ok', statuses: answered.map((a) => a.status) };
  }

  async function health(): Promise<Health> {
    const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(res.status, 200, 'GET /healthz');
    return (await res.json()) as Health;
  }

  async function startChild(): Promise<Health> {
    generation++;
    child = new Child(dataDir, port, generation, output);
    const deadline = Date.now() + 20_000;
    while (true) {
      if (!child.alive) throw new Error(`child (generation ${generation}) exited during start-up`);
      try {
        const h = await health();
        if (h.status === 'ok') return h;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`child (generation ${generation}) not healthy within 20 s`);
      await sleep(50);
    }
  }

  /**
   * Runs SENDERS concurrent clients until `shouldKill` holds (checked against /healthz), then SIGKILLs the child
   * while requests are in flight. Requests cut off by the kill are recorded as unknown outcome.
   */
  async function loadThenKill(shouldKill: (ackedThisBurst: number, h: Health) => boolean): Promise<void> {
    let stop = false;
    let ackedThisBurst = 0;
    let inFlight = 0;
    const sender = async (s: number) => {
      for (let it = 0; !stop; it++) {
        const req = makeReq(s, it);
        inFlight++;
        const out = await send(req);
        inFlight--;
        if (out.kind === 'ok') {
          for (const id of req.ids) acked.add(id);
          ackedThisBurst += req.ids.length;
        } else if (out.kind === 'network') {
          unknown.push(req);
        } else {
          unexpected.push(out.detail);
          unknown.push(req); // retried too, so the final accounting stays meaningful
        }
      }
    };
    const senders = Array.from({ length: SENDERS }, (_, s) => sender(s));
    const deadline = Date.now() + 30_000;
    try {
      while (true) {
        if (!child!.alive) throw new Error(`child (generation ${generation}) died on its own under load`);
        const h = await health();
        if (shouldKill(ackedThisBurst, h)) {
          // Same tick: no sender can start or finish a request between these two statements.
          stop = true;
          const cutOff = inFlight;
          child!.proc.kill('SIGKILL');
          figures.kills.push({ generation, ackedThisBurst, inFlightRequests: cutOff, committedOffset: h.sink.committedOffset, endOffset: h.bus.endOffset });
          break;
        }
        if (Date.now() > deadline) throw new Error(`kill condition not reached within 30 s (acked this burst: ${ackedThisBurst}, health ${JSON.stringify(h)})`);
        await sleep(20);
      }
    } finally {
      stop = true;
      await Promise.all(senders);
    }
    const exit = await child!.exited;
    assert.equal(exit.signal, 'SIGKILL', `child exit: ${JSON.stringify(exit)}`);
  }

  /** After a restart: every unknown-outcome request is retried as is and must now be accepted or duplicate. */
  async function retryUnknown(): Promise<void> {
    const pending = unknown;
    unknown = [];
    for (let i = 0; i < pending.length; i += 4) {
      await Promise.all(
        pending.slice(i, i + 4).map(async (req) => {
          const out = await send(req);
          assert.equal(out.kind, 'ok', `retry after restart of ${req.route} with ${req.ids.length} events: ${JSON.stringify(out)}`);
          if (out.kind !== 'ok') return;
          figures.unknownRetried += req.ids.length;
          for (const st of out.statuses) st === 'duplicate' ? figures.retriedDuplicate++ : figures.retriedAccepted++;
          for (const id of req.ids) acked.add(id);
        }),
      );
    }
  }

  /** After a restart: a sample of already-acked events sent again must all be answered duplicate (dedupe survives the crash). */
  async function resendAckedSample(): Promise<void> {
    const sample = [...acked].slice(-200);
    for (let i = 0; i < sample.length; i += BATCH) {
      const ids = sample.slice(i, i + BATCH);
      const events = ids.map((id) => {
        const e = expected.get(id)!;
        return { eventId: id, appId: APP, deviceId: e.deviceId, screenView: { screenName: e.screenName }, timestamp: T0 };
      });
      const out = await send({ route: 'batch', body: { events }, ids });
      assert.equal(out.kind, 'ok', `re-send of acked events: ${JSON.stringify(out)}`);
      if (out.kind !== 'ok') return;
      const notDup = out.statuses.filter((s) => s !== 'duplicate').length;
      assert.equal(notDup, 0, `${notDup} already-acked events were accepted again after the restart (dedupe lost them)`);
      figures.resentAckedDuplicate += ids.length;
    }
  }

  async function query(sql: string): Promise<{ rows: unknown[][]; truncated: boolean }> {
    const res = await fetch(`${base}/v1/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': ADMIN_KEY },
      body: JSON.stringify({ sql }),
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await res.json()) as { rows: unknown[][]; truncated: boolean };
    assert.equal(res.status, 200, `query ${sql}: ${JSON.stringify(body)}`);
    return body;
  }

  try {
    const started = Date.now();
    await startChild();

    // Cycle 1: ≥ 3000 acked and at least one Parquet batch committed, then SIGKILL mid-load.
    await loadThenKill((n, h) => acked.size >= FIRST_KILL_ACKS && n > 0 && h.sink.committedOffset > 0);
    const unknownAfterKill1 = unknown.reduce((a, r) => a + r.ids.length, 0);
    await startChild();
    await retryUnknown();
    await resendAckedSample();

    // Cycle 2: another burst, SIGKILL after ≥ 1000 more acks, once the restarted sink has committed a batch of its
    // own (so this kill also hits a sink that is replaying/writing, not one still starting up).
    const restartCommitted = (await health()).sink.committedOffset;
    await loadThenKill((n, h) => n >= SECOND_KILL_ACKS && h.sink.committedOffset > restartCommitted);
    const unknownAfterKill2 = unknown.reduce((a, r) => a + r.ids.length, 0);
    await startChild();
    await retryUnknown();
    await resendAckedSample();

    // Everything sent has now been acked (directly or on retry).
    assert.equal(unknown.length, 0);
    assert.deepEqual(unexpected, [], 'unexpected HTTP answers during load');
    assert.equal(acked.size, expected.size, 'every event sent was eventually acked');

    // Let the sink catch up with the bus.
    const deadline = Date.now() + 30_000;
    let h = await health();
    while (h.sink.lag !== 0) {
      if (Date.now() > deadline) throw new Error(`sink lag did not reach 0 within 30 s: ${JSON.stringify(h)}`);
      await sleep(100);
      h = await health();
    }

    const dups = await query(`SELECT event_id::VARCHAR AS id, count(*) AS n FROM events GROUP BY 1 HAVING n > 1`);
    const all = await query(`SELECT event_id::VARCHAR AS id, device_id, screen_name FROM events`);
    assert.equal(all.truncated, false, 'id listing truncated: raise QUERY_ROW_LIMIT');

    const seen = new Set<string>();
    let extra = 0;
    let wrongContent = 0;
    for (const [id, deviceId, screenName] of all.rows as Array<[string, string, string]>) {
      seen.add(id);
      const e = expected.get(id);
      if (!acked.has(id) || !e) extra++;
      else if (e.deviceId !== deviceId || e.screenName !== screenName) wrongContent++;
    }
    const lost = [...acked].filter((id) => !seen.has(id));
    const duplicated = dups.rows.length;
    console.log(
      `crash test: acked=${acked.size} rows=${all.rows.length} lost=${lost.length} duplicated=${duplicated} extra=${extra} ` +
        `unknownAfterKill1=${unknownAfterKill1} unknownAfterKill2=${unknownAfterKill2} unknownRetried=${figures.unknownRetried} ` +
        `(retry answered duplicate=${figures.retriedDuplicate}, accepted=${figures.retriedAccepted}) ` +
        `resentAckedDuplicate=${figures.resentAckedDuplicate} busEnd=${h.bus.endOffset} elapsed=${Date.now() - started}ms`,
    );
    console.log(`crash test kills: ${JSON.stringify(figures.kills)}`);
    const recoveries = output.join('').match(/(sink recovery|log recovery)[^"]*/g) ?? [];
    console.log(`crash test recovery warnings: ${recoveries.length ? recoveries.join('; ') : 'none'}`);

    assert.equal(lost.length, 0, `acked events missing from the warehouse, e.g. ${lost.slice(0, 5).join(', ')}`);
    assert.equal(duplicated, 0, `event ids stored more than once, e.g. ${JSON.stringify(dups.rows.slice(0, 5))}`);
    assert.equal(extra, 0, 'rows whose id was never sent');
    assert.equal(wrongContent, 0, 'rows whose content differs from what was sent');
    assert.equal(all.rows.length, acked.size, 'rows = acked events');
  } catch (err) {
    console.error(`crash test failed; child output:\n${output.join('')}`);
    throw err;
  } finally {
    if (child) await (child as Child).kill();
    await rm(dataDir, { recursive: true, force: true });
  }
});
