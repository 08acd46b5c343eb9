// Which days of events a query reads (so only those partitions are opened or fetched): bounds only when sound.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { DuckDBConnection } from '@duckdb/node-api';
import { eventsDateBounds, type DateBounds } from '../src/query/partition-bounds.js';
import { DuckEngine } from '../src/warehouse/duckdb.js';

let engine: DuckEngine;
let conn: DuckDBConnection;
before(async () => {
  engine = await DuckEngine.create({ allowedDirectories: [] });
  conn = await engine.connect();
});
after(() => {
  conn?.closeSync();
  engine?.close();
});

async function bounds(sql: string): Promise<DateBounds> {
  const r = await conn.runAndReadAll('SELECT json_serialize_sql($1::VARCHAR)', [sql]);
  return eventsDateBounds(String(r.getRows()[0]![0]));
}

test('ts compared with day or timestamp literals bounds the days, whichever side the literal is on', async () => {
  assert.deepEqual(await bounds(`SELECT count(*) FROM events WHERE ts >= '2026-01-01' AND ts < '2026-01-03'`), { fromDate: '2026-01-01', toDate: '2026-01-03' });
  assert.deepEqual(await bounds(`SELECT * FROM events e WHERE type = 'x' AND e.ts BETWEEN DATE '2026-02-01' AND TIMESTAMP '2026-02-03 10:00:00'`), {
    fromDate: '2026-02-01',
    toDate: '2026-02-03',
  });
  assert.deepEqual(await bounds(`SELECT * FROM events WHERE '2026-03-05 12:00' >= ts`), { toDate: '2026-03-05' });
  assert.deepEqual(await bounds(`SELECT * FROM events WHERE ts = '2026-03-05' AND ts > '2026-03-01' AND ts >= '2026-03-04'`), { fromDate: '2026-03-05', toDate: '2026-03-05' });
  assert.deepEqual(await bounds(`SELECT * FROM events WHERE ts > '2026-03-01' AND (ts < '2026-03-02' OR type = 'a')`), { fromDate: '2026-03-01' }, 'OR bounds nothing');
  assert.deepEqual(
    await bounds(`WITH recent AS (SELECT * FROM events WHERE ts >= '2026-04-01') SELECT type, count(*) FROM recent GROUP BY 1`),
    { fromDate: '2026-04-01' },
    'a CTE over events keeps its bound',
  );
});

test('every read of events must be bounded: the widest bound wins; an unbounded read leaves the side open', async () => {
  assert.deepEqual(
    await bounds(`SELECT * FROM events WHERE ts >= '2026-01-05' AND device_id IN (SELECT device_id FROM events WHERE ts >= '2026-01-02' AND ts <= '2026-01-03')`),
    { fromDate: '2026-01-02' },
  );
  assert.deepEqual(await bounds(`SELECT * FROM events WHERE ts >= '2026-01-05' AND device_id IN (SELECT device_id FROM events)`), {});
  assert.deepEqual(await bounds(`SELECT * FROM events a JOIN events b USING (device_id) WHERE a.ts >= '2026-01-05' AND b.ts >= '2026-01-05'`), {}, 'joins are not analysed');
  assert.deepEqual(await bounds(`WITH events AS (SELECT 1 AS ts) SELECT * FROM events WHERE ts >= '2026-01-05'`), {}, 'a CTE named events is not the table');
  assert.deepEqual(await bounds(`SELECT * FROM anomalies WHERE ts >= '2026-01-05'`), {});
});

test('literals that could fall on another UTC day, and computed bounds, bound nothing', async () => {
  assert.deepEqual(await bounds(`SELECT * FROM events WHERE ts >= '2026-01-01T23:00:00+05:00'`), {});
  assert.deepEqual(await bounds(`SELECT * FROM events WHERE ts >= now() - INTERVAL 7 DAY`), {});
  assert.deepEqual(await bounds(`SELECT * FROM events WHERE ts::VARCHAR >= '2026-01-01'`), {});
  assert.deepEqual(await bounds(`SELECT * FROM events WHERE received_at >= '2026-01-01'`), {}, 'partitions follow ts, not received_at');
  assert.deepEqual(await bounds(`SELECT * FROM events WHERE TRY_CAST('2026-01-01' AS DATE) <= ts`), {});
  assert.deepEqual(await bounds(`SELECT * FROM events WHERE ts >= (SELECT max(ts) FROM events)`), {});
});
