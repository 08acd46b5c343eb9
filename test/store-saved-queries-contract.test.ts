// The saved-queries store (the explore page's), one suite on SQLite and on PostgreSQL.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { backends } from './store-backends.js';

for (const backend of backends()) {
  describe(`saved queries on ${backend.name}`, () => {
    after(() => backend.cleanup());

    test('save, list by scope, replace by name, get, remove', async () => {
      const db = await backend.fresh();
      const s = (await db.open()).savedQueries;
      const a = await s.save({ appId: 'shop', name: 'by type', sql: 'SELECT type FROM events' }, 1_000);
      await s.save({ appId: null, name: 'by type', sql: 'SELECT 1' }, 2_000);
      await s.save({ appId: 'news', name: 'daily', sql: 'SELECT 2' }, 3_000);
      assert.deepEqual((await s.list('shop')).map((q) => q.name), ['by type']);
      assert.deepEqual((await s.list(null)).map((q) => q.sql), ['SELECT 1']);
      assert.equal((await s.list(undefined)).length, 3, 'the admin sees every scope');
      // The same name in the same scope replaces the SQL and keeps the id.
      const b = await s.save({ appId: 'shop', name: 'by type', sql: 'SELECT count(*) FROM events' }, 4_000);
      assert.equal(b.id, a.id);
      assert.equal((await s.get(a.id))?.sql, 'SELECT count(*) FROM events');
      assert.equal((await s.get(a.id))?.createdAt, new Date(1_000).toISOString());
      assert.equal(await s.remove(a.id), true);
      assert.equal(await s.remove(a.id), false);
      assert.equal(await s.get(a.id), null);
    });

    test('another connection sees what one saved', async () => {
      const db = await backend.fresh();
      const one = (await db.open()).savedQueries;
      const two = (await db.open()).savedQueries;
      const q = await one.save({ appId: 'shop', name: 'n', sql: 'SELECT 3' });
      assert.equal((await two.get(q.id))?.name, 'n');
    });
  });
}
