#!/usr/bin/env node
// Disk syncs and DuckDB both use libuv's thread pool: a larger pool keeps a long query from delaying an fsync.
process.env.UV_THREADPOOL_SIZE ??= '16';
await import('../dist/src/cli/main.js');
