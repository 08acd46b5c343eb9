// The Trino DDL shipped in ops/trino/events.sql describes the warehouse's columns (EVENT_COLUMNS) and partitions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EVENT_COLUMNS } from '../src/event/stored-event.js';
import { readTrinoDdl } from './s3-helpers.js';

/** How each warehouse column type is declared in a Hive table read by Trino. */
const TRINO_TYPE: Record<string, string> = {
  UUID: 'varbinary', // Parquet UUID = 16-byte fixed binary; Hive tables have no uuid type
  VARCHAR: 'varchar',
  TIMESTAMP: 'timestamp',
  DOUBLE: 'double',
  BIGINT: 'bigint',
  BOOLEAN: 'boolean',
  JSON: 'varchar',
};

test('ops/trino/events.sql declares every EVENT_COLUMNS column with its type, partitioned by app_id and date', async () => {
  const ddl = await readTrinoDdl();
  const expected = [
    ...EVENT_COLUMNS.filter((c) => c.name !== 'app_id').map((c) => ({ name: c.name, type: TRINO_TYPE[c.type]! })),
    { name: 'app_id', type: 'varchar' },
    { name: 'date', type: 'date' },
  ];
  assert.deepEqual(ddl.columns, expected);
  assert.deepEqual(ddl.partitionedBy, ['app_id', 'date']);
  assert.match(ddl.externalLocation, /^s3:\/\/[^/]+\/(.+\/)?events$/);
});
