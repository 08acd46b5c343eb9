// The OpenAPI 3.1 contract: every route the server registers is documented, the request schemas are the validators'
// own (a valid event passes the document's schema and a broken one fails it), and the reference page renders offline.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Ajv2020 from 'ajv/dist/2020.js';
import { startTestNode, type TestNode } from './helpers.js';

describe('OpenAPI document', () => {
  let t: TestNode;
  let doc: any;
  before(async () => {
    t = await startTestNode();
    const r = await t.get('/openapi.json');
    assert.equal(r.status, 200);
    doc = r.body;
  });
  after(async () => {
    await t.close();
  });

  test('is OpenAPI 3.1 and lists every registered route', () => {
    assert.equal(doc.openapi, '3.1.0');
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths as Record<string, object>)) {
      for (const m of Object.keys(ops)) documented.add(`${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`);
    }
    // The reference page's own assets are not API routes.
    const routes = t.node.routes.filter((r) => !/ \/docs(\/|$)/.test(r));
    assert.ok(routes.length >= 20, `expected the full route table, got ${routes.length}`);
    const missing = routes.filter((r) => !documented.has(r));
    assert.deepEqual(missing, [], 'routes without an OpenAPI entry');
    const stale = [...documented].filter((d) => !routes.includes(d));
    assert.deepEqual(stale, [], 'documented routes the server does not have');
  });

  test('request schemas are the validators: a good batch passes, a broken one fails', () => {
    const ajv = new Ajv2020.default({ strict: false, allErrors: true });
    const schema = doc.paths['/v1/events/batch'].post.requestBody.content['application/json'].schema;
    const validate = ajv.compile(schema);
    const good = { events: [{ appId: 'appA', deviceId: 'd1', screenView: { screenName: 'Home' } }, { type: 'checkout', deviceId: 'd2', timestamp: 1764000000000 }] };
    assert.equal(validate(good), true, JSON.stringify(validate.errors));
    assert.equal(validate({ events: [{ appId: 'appA', screenView: { screenName: 'Home' } }] }), false, 'deviceId is required');
    assert.equal(validate({ events: [{ deviceId: 'd', screenView: { screenName: '' } }] }), false, 'screenName must not be empty');
    const segment = doc.paths['/v1/batch'].post;
    assert.ok(segment.requestBody.content['application/json'].schema.properties.batch);
    assert.ok(doc.paths['/v1/events/ingest'].post.requestBody.content['application/x-protobuf']);
    assert.ok(doc.paths['/v1/metrics/top-pages'].get.parameters.some((p: { name: string }) => p.name === 'visitors'));
  });

  test('the reference page renders from bundled assets (no CDN)', async () => {
    const page = await t.get('/docs/');
    assert.equal(page.status, 200);
    assert.match(page.text, /swagger-ui/i);
    assert.doesNotMatch(page.text, /https?:\/\/(?!localhost|127\.0\.0\.1)[^"']*\.(js|css)/, 'no remote scripts or styles');
    const js = await t.get('/docs/static/swagger-ui-bundle.js');
    assert.equal(js.status, 200);
    assert.ok(js.text.length > 100_000);
  });
});
