// The README's tables are derived from the code's own lists: a new column or setting must be documented.
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONFIG_DOCS } from '../src/config.js';
import { EVENT_COLUMNS } from '../src/event/stored-event.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

test('every warehouse column is documented in the README', () => {
  const missing = EVENT_COLUMNS.filter((c) => !readme.includes(`| \`${c.name}\` | ${c.type} |`)).map((c) => c.name);
  assert.deepEqual(missing, []);
});

test('every configuration variable is documented in the README', () => {
  const missing = CONFIG_DOCS.filter(([env]) => !readme.includes(`| \`${env}\` |`)).map(([env]) => env);
  assert.deepEqual(missing, []);
});
