// The ingest record's header line, written as bytes on the hot path, must be exactly what JSON would write.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeIngestHeader, encodeIngestHeaderLine, type IngestHeader } from '../src/event/ingest-record.js';
import { rng } from '../src/generate/traffic.js';

test('the header line written from id bytes equals JSON.stringify of the header, for any mix of appended events', () => {
  const rand = rng(20261202);
  const hex = '0123456789abcdef';
  const uuid = () => Array.from({ length: 36 }, (_, i) => ([8, 13, 18, 23].includes(i) ? '-' : hex[Math.floor(rand() * 16)])).join('');
  for (let round = 0; round < 200; round++) {
    const count = 1 + Math.floor(rand() * 120);
    const ids = Array.from({ length: count }, uuid);
    const appended = Array.from({ length: count }, () => rand() < [0, 0.5, 0.95, 1][round % 4]!);
    const admin = round % 3 === 0;
    const fields: Omit<IngestHeader, 'ids'> = {
      v: 1,
      route: round % 2 ? 'batch' : 'collect',
      receivedAt: 1_796_000_000_000 + round,
      keyAppId: admin ? null : 'shop',
      ipHash: round % 5 ? 'a1b2c3d4e5f60718' : null,
      userAgent: round % 4 ? 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) — “ünïcode”' : null,
      ...(admin ? { apps: appended.map((a, i) => (a ? `app-${i % 3}` : null)) } : {}),
    };
    const line = encodeIngestHeaderLine(fields, Buffer.from(ids.join(''), 'latin1'), 36, count, (i) => appended[i]!);
    const header: IngestHeader = { ...fields, ids: ids.map((id, i) => (appended[i] ? id : null)) };
    assert.equal(line.toString('utf8'), JSON.stringify(header) + '\n');
    assert.deepEqual(decodeIngestHeader(line), header);
  }
});
