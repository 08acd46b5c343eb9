// Change events: webhook payloads in their documented shapes, risk rules, the LLM classifier with fallback against a
// local chat-completions server, root-cause ranking.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { normaliseChange } from '../src/causal/changes.js';
import { classifyRisk, createLlmClassifier } from '../src/causal/risk.js';
import { rankCandidates } from '../src/causal/rootcause.js';
import { parseWebhook } from '../src/causal/webhooks.js';

const fixture = (name: string) => JSON.parse(readFileSync(new URL(`../../test/fixtures/causal/${name}.json`, import.meta.url), 'utf8'));

describe('webhook adapters', () => {
  test('GitHub push: one change per commit with touched paths', () => {
    const r = parseWebhook('github', { 'x-github-event': 'push' }, fixture('github-push'));
    assert.equal(r.kind, 'changes');
    if (r.kind !== 'changes') return;
    assert.equal(r.changes.length, 2);
    assert.deepEqual(r.changes[0], {
      id: 'github:commit:acme/shop-app:0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c',
      source: 'github',
      kind: 'commit',
      service: 'shop-app',
      commit: '0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c',
      author: 'mona',
      title: 'hotfix: payment retry loop on Android',
      description: 'Retries were unbounded after the SDK upgrade.',
      url: 'https://github.com/acme/shop-app/commit/0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c',
      time: '2025-03-01T11:42:07+01:00',
      version: 'main',
      paths: ['android/payments/RetryPolicy.kt', 'android/payments/Checkout.kt'],
    });
  });

  test('GitHub merged pull request and deployment; an opened pull request is ignored', () => {
    const pr = parseWebhook('github', { 'x-github-event': 'pull_request' }, fixture('github-pull-request-merged'));
    assert.ok(pr.kind === 'changes');
    assert.equal(pr.changes[0]!.id, 'github:pr:acme/shop-app#1347');
    assert.deepEqual(pr.changes[0]!.size, { additions: 812, deletions: 240, files: 14 });
    assert.equal(pr.changes[0]!.time, '2025-03-01T09:30:00Z');
    const opened = parseWebhook('github', { 'x-github-event': 'pull_request' }, { ...fixture('github-pull-request-merged'), action: 'opened' });
    assert.ok(opened.kind === 'changes' && opened.changes.length === 0 && /only merged/.test(opened.ignored!));
    const d = parseWebhook('github', { 'x-github-event': 'deployment' }, fixture('github-deployment'));
    assert.ok(d.kind === 'changes');
    assert.deepEqual([d.changes[0]!.id, d.changes[0]!.kind, d.changes[0]!.version, d.changes[0]!.title], ['github:deployment:acme/shop-app:1044', 'deploy', 'v4.2.0', 'deploy v4.2.0 to production: Release 4.2.0']);
  });

  test('Jira transition, Slack challenge and message, Jenkins build', () => {
    const j = parseWebhook('jira', {}, fixture('jira-issue-updated'));
    assert.ok(j.kind === 'changes');
    assert.deepEqual([j.changes[0]!.id, j.changes[0]!.title, j.changes[0]!.component, j.changes[0]!.url, j.changes[0]!.time], [
      'jira:PAY-311:10400',
      'PAY-311: Switch payment provider timeout to 5s (In Progress → Done)',
      'checkout',
      'https://acme.atlassian.net/browse/PAY-311',
      1740823200000,
    ]);
    assert.deepEqual(parseWebhook('slack', {}, fixture('slack-url-verification')), { kind: 'challenge', challenge: '3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P' });
    const s = parseWebhook('slack', {}, fixture('slack-message'));
    assert.ok(s.kind === 'changes');
    assert.deepEqual([s.changes[0]!.id, s.changes[0]!.title, s.changes[0]!.time], ['slack:C024BE91L:1740823500.000200', 'Rolling back checkout to 4.1.9 after the payment errors', '1740823500.000200']);
    assert.equal(normaliseChange(s.changes[0]!, null).time, '2025-03-01T10:05:00.000Z');
    const edited = parseWebhook('slack', {}, { ...fixture('slack-message'), event: { ...fixture('slack-message').event, subtype: 'message_changed' } });
    assert.ok(edited.kind === 'changes' && edited.changes.length === 0);
    const b = parseWebhook('jenkins', {}, fixture('jenkins-build-finalized'));
    assert.ok(b.kind === 'changes');
    assert.deepEqual([b.changes[0]!.id, b.changes[0]!.kind, b.changes[0]!.title, b.changes[0]!.paths], ['jenkins:deploy-checkout#87', 'deploy', 'deploy-checkout #87 SUCCESS (origin/main)', ['android/payments/Checkout.kt']]);
    const started = fixture('jenkins-build-finalized');
    started.build.phase = 'STARTED';
    assert.deepEqual(parseWebhook('jenkins', {}, started), { kind: 'changes', changes: [], ignored: 'build phase STARTED' });
  });
});

test('risk rules: keywords, paths, size and configured components, each with reasons', () => {
  const c = (x: object) => normaliseChange({ time: 0, ...x }, null);
  const hot = classifyRisk(c({ title: 'hotfix: rollback payment timeout', paths: ['src/payments/client.ts'] }), { components: { payments: { paths: ['src/payments/'] } } });
  assert.equal(hot.level, 'HIGH');
  assert.equal(hot.component, 'payments');
  assert.ok(hot.reasons.includes('high-risk keyword: hotfix'));
  assert.ok(hot.reasons.some((r) => r.startsWith('touches src/payments/client.ts → component payments')));
  const docs = classifyRisk(c({ title: 'docs: fix typo', paths: ['README.md', 'docs/guide.md'] }));
  assert.equal(docs.level, 'LOW');
  assert.ok(docs.reasons.includes('touches only docs/tests'));
  const big = classifyRisk(c({ title: 'refactor feed screen', size: { additions: 1500, deletions: 200, files: 40 } }));
  assert.equal(big.level, 'HIGH');
  assert.ok(big.reasons.some((r) => r.startsWith('large change')));
  assert.equal(classifyRisk(c({ title: 'bump http client dependency' })).level, 'MEDIUM');
  assert.equal(classifyRisk(c({ title: 'chore: lint' })).level, 'LOW');
});

describe('LLM classifier (OpenAI-compatible chat completions)', () => {
  let server: Server;
  let base = '';
  const seen: Array<{ auth?: string; body: any }> = [];
  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const parsed = JSON.parse(body);
        seen.push({ auth: req.headers.authorization, body: parsed });
        const change = JSON.parse(parsed.messages[1].content);
        if (req.url !== '/v1/chat/completions') return res.writeHead(404).end();
        const answer = (content: string) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }] }));
        if (change.title.includes('slow')) return void setTimeout(() => answer('{}'), 2000);
        if (change.title.includes('garbage')) return answer('I think it is risky.');
        if (change.title.includes('other')) return answer(JSON.stringify({ id: 'someone-else', risk: 'LOW', reasons: ['x'] }));
        answer('```json\n' + JSON.stringify({ id: change.id, risk: 'HIGH', component: 'search', reasons: ['changes the ranking query'] }) + '\n```');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  test('answers are used when valid and about this change; otherwise the rules decide, saying why', async () => {
    const classify = createLlmClassifier({ baseUrl: base, apiKey: 'sk-test', model: 'tiny', timeoutMs: 300 });
    const c = (title: string) => normaliseChange({ id: `id-${title}`, title: `${title} docs: readme`, time: 0 }, null);
    const good = await classify(c('search'));
    assert.deepEqual(good, { level: 'HIGH', component: 'search', reasons: ['changes the ranking query'], classifier: 'llm' });
    assert.equal(seen[0]!.auth, 'Bearer sk-test');
    assert.equal(seen[0]!.body.model, 'tiny');
    for (const [title, why] of [
      ['slow', 'timeout'],
      ['garbage', 'answer is not JSON'],
      ['other', 'answer is about another change'],
    ] as const) {
      const r = await classify(c(title));
      assert.equal(r.classifier, 'rules', title);
      assert.equal(r.level, 'LOW', title);
      assert.ok(r.reasons.at(-1)!.includes(why), `${title}: ${r.reasons.at(-1)}`);
    }
  });
});

test('root cause: closer before the onset ranks higher, after the onset is excluded, the affected platform first', () => {
  const onset = Date.UTC(2025, 2, 1, 12);
  const c = (id: string, minutes: number, x: object = {}) => normaliseChange({ id, time: onset + minutes * 60_000, ...x }, null);
  const changes = [
    c('ios-hot', -30, { title: 'hotfix: checkout crash', segments: ['ios'], paths: ['ios/checkout/a.swift'] }),
    c('android-hot', -90, { title: 'hotfix: checkout crash', segments: ['android'], paths: ['android/checkout/a.kt'] }),
    c('android-old', -60 * 50, { title: 'hotfix: checkout crash', segments: ['android'] }),
    c('in-bucket', 20, { title: 'feature: new banner' }),
    c('after', 120, { title: 'hotfix: checkout crash' }),
    c('too-old', -60 * 24 * 4, { title: 'hotfix: checkout crash' }),
  ];
  const ranked = rankCandidates(changes, { onset, bucketMs: 3_600_000, segment: { platform: 'android' }, metric: 'checkout_revenue' });
  const ids = ranked.map((r) => r.change.id);
  assert.equal(ids[0], 'android-hot');
  assert.ok(ids.indexOf('android-hot') < ids.indexOf('android-old'));
  assert.ok(ids.indexOf('android-old') < ids.indexOf('ios-hot'), ids.join());
  assert.ok(!ids.includes('after') && !ids.includes('too-old'));
  assert.ok(ids.includes('in-bucket'));
  assert.ok(ranked.find((r) => r.change.id === 'ios-hot')!.reasons.includes('targets ios, the incident is on android'));
  assert.ok(ranked[0]!.reasons.includes("matches the incident's segment: android"));
});
