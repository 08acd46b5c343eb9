// History importers against local servers answering in the documented shapes: GitHub Link pagination and rate
// limits, Jira startAt/maxResults, Slack cursors, Jenkins tree ranges; and git log from a real repository.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importGit, importGithub, importJenkins, importJira, importSlack, nextLink } from '../src/causal/importers.js';

let server: Server;
let base = '';
const hits: string[] = [];
let handler: (req: IncomingMessage, res: ServerResponse, url: URL) => void = () => {};
const json = (res: ServerResponse, body: unknown, headers: Record<string, string> = {}) => res.writeHead(200, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

before(async () => {
  server = createServer((req, res) => {
    hits.push(`${req.url} ${req.headers.authorization ?? ''}`);
    handler(req, res, new URL(req.url!, base));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

const SINCE = Date.parse('2025-02-01T00:00:00Z');
const waits: number[] = [];
const deps = { sleep: async (ms: number) => void waits.push(ms), now: () => Date.parse('2025-03-01T00:00:00Z') };

test('GitHub: follows Link rel="next", waits out a 429 Retry-After and an exhausted X-RateLimit-Reset', async () => {
  hits.length = 0;
  waits.length = 0;
  const limited = new Set<number>();
  handler = (req, res, url) => {
    if (url.pathname === '/repos/acme/shop/commits') {
      const page = Number(url.searchParams.get('page') ?? 1);
      if (page === 2 && !limited.has(2) && limited.add(2)) return res.writeHead(429, { 'retry-after': '7' }).end('{"message":"secondary rate limit"}');
      if (page === 3 && !limited.has(3) && limited.add(3)) return res.writeHead(403, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(Date.parse('2025-03-01T00:00:30Z') / 1000) }).end('{"message":"API rate limit exceeded"}');
      const next = page < 3 ? `<${base}/repos/acme/shop/commits?since=x&per_page=100&page=${page + 1}>; rel="next", <${base}/repos/acme/shop/commits?page=3>; rel="last"` : '';
      return json(res, [{ sha: `sha${page}`, html_url: `https://github.com/acme/shop/commit/sha${page}`, commit: { message: `fix ${page}\n\nbody`, author: { name: 'A', date: '2025-02-10T00:00:00Z' }, committer: { date: '2025-02-10T00:00:00Z' } }, author: { login: 'a' } }], next ? { link: next } : {});
    }
    if (url.pathname === '/repos/acme/shop/deployments') {
      return json(res, [
        { id: 9, sha: 'd9', ref: 'v2', environment: 'production', creator: { login: 'bot' }, created_at: '2025-02-20T00:00:00Z', url: 'u9' },
        { id: 8, sha: 'd8', ref: 'v1', environment: 'production', created_at: '2025-01-20T00:00:00Z', url: 'u8' },
      ], { link: `<${base}/repos/acme/shop/deployments?page=2>; rel="next"` });
    }
    res.writeHead(404).end();
  };
  const list = await importGithub({ baseUrl: base, token: 't0k', repo: 'acme/shop', since: SINCE }, deps);
  assert.deepEqual(list.map((c) => c.id), ['github:commit:acme/shop:sha1', 'github:commit:acme/shop:sha2', 'github:commit:acme/shop:sha3', 'github:deployment:acme/shop:9']);
  assert.equal(list[0]!.description, 'body');
  assert.deepEqual(waits, [7000, 31_000]);
  assert.ok(hits.every((h) => h.endsWith('Bearer t0k')));
  assert.equal(hits.filter((h) => h.includes('/deployments')).length, 1, 'stops paging deployments once past since');
  assert.equal(nextLink('<a>; rel="prev", <b>; rel="next"'), 'b');
});

test('Jira: pages with startAt/maxResults until total', async () => {
  hits.length = 0;
  const issues = Array.from({ length: 5 }, (_, i) => ({ key: `PAY-${i + 1}`, fields: { summary: `s${i}`, updated: '2025-02-15T10:00:00.000+0000', status: { name: 'Done' }, project: { key: 'PAY' }, components: [{ name: 'checkout' }] } }));
  handler = (_req, res, url) => {
    const startAt = Number(url.searchParams.get('startAt'));
    const max = Number(url.searchParams.get('maxResults'));
    json(res, { startAt, maxResults: max, total: issues.length, issues: issues.slice(startAt, startAt + max) });
  };
  const list = await importJira({ baseUrl: base, token: 'tok', email: 'me@acme.test', since: SINCE, pageSize: 2 }, deps);
  assert.deepEqual(list.map((c) => c.title), ['PAY-1: s0 [Done]', 'PAY-2: s1 [Done]', 'PAY-3: s2 [Done]', 'PAY-4: s3 [Done]', 'PAY-5: s4 [Done]']);
  assert.deepEqual(hits.map((h) => new URL(h.split(' ')[0]!, base).searchParams.get('startAt')), ['0', '2', '4']);
  assert.ok(hits[0]!.endsWith(`Basic ${Buffer.from('me@acme.test:tok').toString('base64')}`));
  assert.equal(list[0]!.url, `${base}/browse/PAY-1`);
});

test('Slack: follows response_metadata.next_cursor; edits and joins are skipped', async () => {
  hits.length = 0;
  handler = (_req, res, url) => {
    const cursor = url.searchParams.get('cursor');
    if (!cursor) return json(res, { ok: true, messages: [{ type: 'message', user: 'U1', text: 'deploying checkout 4.2', ts: '1740000000.000100' }, { type: 'message', subtype: 'channel_join', user: 'U2', text: 'joined', ts: '1740000001.000100' }], has_more: true, response_metadata: { next_cursor: 'bmV4dA==' } });
    json(res, { ok: true, messages: [{ type: 'message', subtype: 'bot_message', username: 'deploybot', text: 'rollback done', ts: '1740000100.000100' }], has_more: false, response_metadata: { next_cursor: '' } });
  };
  const list = await importSlack({ baseUrl: base, token: 'xoxb', channel: 'C1', since: SINCE }, deps);
  assert.deepEqual(list.map((c) => [c.id, c.author, c.title]), [
    ['slack:C1:1740000000.000100', 'U1', 'deploying checkout 4.2'],
    ['slack:C1:1740000100.000100', 'deploybot', 'rollback done'],
  ]);
  assert.equal(new URL(hits[1]!.split(' ')[0]!, base).searchParams.get('cursor'), 'bmV4dA==');
});

test('Jenkins: tree API ranges until a page reaches past since; running builds skipped', async () => {
  hits.length = 0;
  const builds = Array.from({ length: 5 }, (_, i) => ({ number: 50 - i, result: i === 0 ? null : 'SUCCESS', timestamp: Date.parse('2025-02-20T00:00:00Z') - i * 5 * 86_400_000, url: `u${50 - i}`, displayName: `#${50 - i}`, changeSets: [{ items: [{ commitId: `c${i}`, msg: `m${i}`, author: { fullName: 'Ann' }, affectedPaths: [`p${i}`] }] }] }));
  handler = (_req, res, url) => {
    const m = /\{(\d+),(\d+)\}$/.exec(url.searchParams.get('tree')!)!;
    json(res, { _class: 'hudson.model.FreeStyleProject', builds: builds.slice(Number(m[1]), Number(m[2])) });
  };
  const list = await importJenkins({ baseUrl: base, user: 'ci', token: 'tok', job: 'deploy-checkout', since: SINCE, pageSize: 2 }, deps);
  assert.deepEqual(list.map((c) => c.id), ['jenkins:deploy-checkout#49', 'jenkins:deploy-checkout#48', 'jenkins:deploy-checkout#47']);
  assert.equal(list[0]!.kind, 'deploy');
  assert.deepEqual(list[0]!.paths, ['p1']);
  assert.ok(hits[0]!.startsWith('/job/deploy-checkout/api/json?tree='));
  assert.equal(hits.length, 3, 'the third page reaches past since: no fourth request');
});

test('git: commits since a date with touched paths and size', async () => {
  const repo = mkdtempSync(join(tmpdir(), 'causal-git-'));
  const git = (...a: string[]) => execFileSync('git', ['-C', repo, ...a], { env: { ...process.env, GIT_AUTHOR_NAME: 'Ann', GIT_AUTHOR_EMAIL: 'a@x', GIT_COMMITTER_NAME: 'Ann', GIT_COMMITTER_EMAIL: 'a@x' } });
  git('init', '-q');
  mkdirSync(join(repo, 'src', 'payments'), { recursive: true });
  writeFileSync(join(repo, 'src', 'payments', 'pay.ts'), 'a\nb\n');
  git('add', '.');
  git('commit', '-q', '-m', 'hotfix: payment retries\n\nbounded now');
  writeFileSync(join(repo, 'README.md'), 'x\n');
  git('add', '.');
  git('commit', '-q', '-m', 'docs: readme');
  const list = await importGit(repo, Date.now() - 86_400_000, 'shop');
  assert.deepEqual(list.map((c) => [c.title, c.paths, c.size]), [
    ['docs: readme', ['README.md'], { additions: 1, deletions: 0, files: 1 }],
    ['hotfix: payment retries', ['src/payments/pay.ts'], { additions: 2, deletions: 0, files: 1 }],
  ]);
  assert.equal(list[1]!.description, 'bounded now');
  assert.match(list[0]!.id!, /^git:[0-9a-f]{40}$/);
});
