// The roles as separate processes on the real distributed engines: NATS JetStream (bus, 2 partitions), PostgreSQL
// (state, a unique schema), S3 (s3rver in its own process). Two ingesters, one sink, two detectors (one per
// partition), one query process. Events go to both ingesters; one detector is SIGKILLed midway and restarted.
// Afterwards every acknowledged event is queryable exactly once and the killed detector resumed from its snapshot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import pg from 'pg';
import { createVariedEvents } from '../src/generate/traffic.js';
import { waitFor } from './helpers.js';

const CLI = new URL('../../bin/causality.js', import.meta.url).pathname;
const S3_SERVER = new URL('../../scripts/s3-dev-server.mjs', import.meta.url).pathname;
const NATS_URL = 'nats://127.0.0.1:4222';
const PG_URL = 'postgres://root@127.0.0.1:5432/test';
const APP_KEY = 'mp_app_key_1234';
const ADMIN_KEY = 'mp_admin_key_1234';

interface Proc {
  name: string;
  child: ChildProcess;
  url: string;
  out: string[];
}

/** Starts a process and resolves once it printed its first line matching `ready` (its URL for nodes). */
function startProcess(name: string, args: string[], env: Record<string, string>, ready: RegExp): Promise<Proc & { match: RegExpExecArray }> {
  const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        out.push(line);
        const m = ready.exec(line);
        if (m) resolve({ name, child, url: m[1] ?? '', out, match: m });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready:\n${out.slice(-20).join('\n')}`)));
  });
}

async function json(url: string, init: RequestInit & { key?: string } = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { ...init, headers: { 'content-type': 'application/json', 'x-api-key': init.key ?? ADMIN_KEY, ...(init.headers ?? {}) } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

test('roles as processes on NATS + PostgreSQL + S3: every acked event exactly once, a killed detector resumes from its snapshot', { timeout: 240_000 }, async (t) => {
  const run = `${process.pid}_${Date.now().toString(36)}`;
  const stream = `MP_${run}`.toUpperCase();
  const schema = `mp_${run}`.toLowerCase();
  const root = await mkdtemp(join(tmpdir(), 'causality-mp-'));
  const procs: Proc[] = [];
  t.after(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    const nc = await connect({ servers: NATS_URL });
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => undefined);
    await nc.close();
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
    await rm(root, { recursive: true, force: true });
  });

  const s3 = await startProcess('s3', [S3_SERVER, '--port', '0', '--dir', join(root, 's3'), '--bucket', 'causality'], {}, /^(\{.*"endpoint".*\})$/);
  procs.push(s3);
  const s3Info = JSON.parse(s3.match[1]!) as { endpoint: string; accessKeyId: string; secretAccessKey: string };

  const env: Record<string, string> = {
    CAUSALITY_BUS: NATS_URL,
    CAUSALITY_BUS_STREAM: stream,
    BUS_PARTITIONS: '2',
    DATABASE_URL: `${PG_URL}?schema=${schema}`,
    S3_ENDPOINT: s3Info.endpoint,
    S3_BUCKET: 'causality',
    S3_ACCESS_KEY_ID: s3Info.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3Info.secretAccessKey,
    RULES_DIR: join(root, 'rules'),
    CAUSALITY_APP_KEYS: `shop:${APP_KEY}`,
    CAUSALITY_ADMIN_KEY: ADMIN_KEY,
    IP_HASH_SALT: 'mp_salt_0123456789',
    RATE_LIMIT_PER_MINUTE: '0',
    BATCH_FLUSH_INTERVAL: '300ms',
    DETECTOR_SNAPSHOT_INTERVAL: '1s',
    LOG_LEVEL: 'info',
  };
  const listening = /Causality listening on (http:\/\/\S+)/;
  const startRole = async (name: string, role: string, extra: string[] = []) => {
    const p = await startProcess(name, [CLI, 'serve', '--role', role, ...extra, '--port', '0', '--host', '127.0.0.1', '--data-dir', join(root, name)], env, listening);
    procs.push(p);
    return p;
  };
  // One after another: the first creates the stream and the schema, the rest find them.
  const ingest1 = await startRole('ingest-1', 'ingest');
  const ingest2 = await startRole('ingest-2', 'ingest');
  const sink = await startRole('sink', 'sink');
  const detect0 = await startRole('detect-p0', 'detect', ['--partition', '0']);
  const detect1 = await startRole('detect-p1', 'detect', ['--partition', '1']);
  const query = await startRole('query', 'query');

  const next = createVariedEvents({ seed: 7, devices: 400, appIds: ['shop'] });
  const acked = new Set<string>();
  let sent = 0;
  const sendBatches = async (batches: number) => {
    for (let b = 0; b < batches; b++) {
      const events = Array.from({ length: 50 }, () => next());
      const target = sent++ % 2 === 0 ? ingest1 : ingest2;
      const r = await json(`${target.url}/v1/events/batch`, { method: 'POST', body: JSON.stringify({ events }), key: APP_KEY });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      for (const x of r.body.results) if (x.status === 'accepted' || x.status === 'duplicate') acked.add(x.eventId);
      // A client retry of the same batch through the OTHER ingester: the bus's duplicate window stores it once.
      if (b % 10 === 0) {
        const other = target === ingest1 ? ingest2 : ingest1;
        const again = await json(`${other.url}/v1/events/batch`, { method: 'POST', body: JSON.stringify({ events }), key: APP_KEY });
        assert.equal(again.status, 202);
      }
    }
  };

  await sendBatches(40);
  // Detector 0 has snapshotted past some of its records (its committed position moves at snapshots only).
  const health = async (p: Proc) => (await json(`${p.url}/healthz`)).body;
  await waitFor('detector p0 to snapshot', async () => (await health(detect0)).detector?.committedOffset > 0, 60_000);
  detect0.child.kill('SIGKILL');
  await new Promise((r) => detect0.child.once('exit', r));
  await sendBatches(40);
  const detect0b = await startRole('detect-p0-restarted', 'detect', ['--partition', '0']);
  // Same data dir is not needed: its state (snapshot) is in PostgreSQL and its position in JetStream.
  const restored = await waitFor(
    'the restarted detector to restore its snapshot',
    () => detect0b.out.map((l) => (l.includes('restored its snapshot') ? (JSON.parse(l) as { position: number }) : null)).find((x) => x !== null) ?? null,
    60_000,
  );
  assert.ok(restored.position > 0, 'the snapshot covers part of the stream');
  await sendBatches(20);

  // Every acknowledged event is in the warehouse exactly once, as the query process sees it.
  const counts = async () => {
    const r = await json(`${query.url}/v1/query`, { method: 'POST', body: JSON.stringify({ sql: 'SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events' }) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return { n: Number(r.body.rows[0][0]), d: Number(r.body.rows[0][1]) };
  };
  const final = await waitFor('the warehouse to hold every acked event', async () => {
    const c = await counts();
    return c.n >= acked.size ? c : null;
  }, 90_000);
  assert.equal(final.n, acked.size, 'no duplicates');
  assert.equal(final.d, acked.size);
  const ids = await json(`${query.url}/v1/query`, { method: 'POST', body: JSON.stringify({ sql: 'SELECT CAST(event_id AS VARCHAR) FROM events' }) });
  const stored = new Set((ids.body.rows as string[][]).map((r) => r[0]));
  const missing = [...acked].filter((id) => !stored.has(id));
  assert.deepEqual(missing, [], 'every acked id is stored');

  // The restarted detector goes on past its snapshot (it commits at its next snapshot), and the other one kept going.
  await waitFor('both detectors to move on', async () => {
    const [a, b] = await Promise.all([health(detect0b), health(detect1)]);
    return a.detector.committedOffset > restored.position && b.detector.committedOffset > 0;
  }, 60_000);
  assert.ok((await health(sink)).sink.committedOffset > 0);
});
