// The web tracker (/t.js) in real Chromium (Debian's /usr/bin/chromium through playwright-core): a page on another
// origin loads the tag, navigates (pushState, back, a real link), identifies, tracks, goes hidden and closes; every
// event is then found with SQL. Also: the gzipped size bar, how /t.js is served, Do Not Track, no cookies or storage.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { chromium, type BrowserContext, type Page, type Request } from 'playwright-core';
import { lit, startTestNode, waitFor, type TestNode } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const TRACKER_JS = new URL('../tracker/t.js', import.meta.url); // dist/test → dist/tracker/t.js
const SCREENSHOTS = fileURLToPath(new URL('../../test-results/', import.meta.url));
const SIZE_BAR_BYTES = 3 * 1024;

// Page-side expressions are strings: this file is compiled with Node's types, not the DOM's.
const TRACKER_READY = `typeof window.causality?.track === 'function'`;
const LANDING_QUERY = '?utm_source=newsletter&utm_medium=email&utm_campaign=spring';

/** The site under test: a tiny SPA at /app/…, a second page at /docs/, a DNT-respecting page at /dnt/. */
function sitePage(api: string, key: string, path: string): string {
  const tag = (extra = '') => `<script src="${api}/t.js" data-key="${key}" data-site="appA"${extra} defer></script>`;
  if (path.startsWith('/docs/')) {
    return `<!doctype html><title>Docs</title>${tag()}<h1>Docs</h1><p>A page reached by a real link.</p>`;
  }
  if (path.startsWith('/persist/')) {
    return `<!doctype html><title>Persist</title>${tag(' data-persist="localStorage"')}<h1>Remembered visitor</h1>`;
  }
  if (path.startsWith('/dnt/')) {
    return `<!doctype html><title>DNT</title>${tag(' data-respect-dnt="true"')}<h1>Do Not Track</h1>
<button id="signup" onclick="causality.track('signup', {plan: 'dnt'})">Sign up</button>`;
  }
  return `<!doctype html><title>Shop</title>${tag()}
<h1 id="where"></h1>
<nav>
  <button id="pricing" onclick="go('/app/pricing')">Pricing</button>
  <button id="same" onclick="history.replaceState({}, '', location.href)">Replace (same URL)</button>
  <button id="login" onclick="causality.identify('user-42')">Log in</button>
  <button id="signup" onclick="causality.track('signup', {plan: 'pro', seats: 3})">Sign up</button>
  <a id="docs" href="/docs/">Docs</a>
</nav>
<script>
  const show = () => { document.getElementById('where').textContent = location.pathname; };
  function go(path) { history.pushState({}, '', path); show(); }
  addEventListener('popstate', show);
  show();
</script>`;
}

interface Sent {
  url: string;
  contentType: string;
  body: unknown;
  at: number;
}

describe('web tracker /t.js', () => {
  let t: TestNode;
  let site: Server;
  let siteUrl = '';

  before(async () => {
    t = await startTestNode({ METRICS_CACHE_MS: '0' });
    site = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(sitePage(t.url, t.keys.appA, path));
    });
    await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((r) => site?.close(r));
    await t?.close();
  });

  test(`the built tracker is under ${SIZE_BAR_BYTES} bytes gzipped`, () => {
    const js = readFileSync(TRACKER_JS);
    const gz = gzipSync(js).length;
    assert.ok(gz < SIZE_BAR_BYTES, `t.js is ${gz} bytes gzipped`);
    // No cookie or storage access unless data-persist asks for it (the only storage use is behind that switch).
    assert.doesNotMatch(js.toString(), /document\.cookie|\.cookie\b|sessionStorage/);
  });

  test('GET /t.js: JavaScript, gzip when accepted, ETag revalidation, cached an hour, loadable from any origin', async () => {
    const js = readFileSync(TRACKER_JS);
    const gz = await t.get('/t.js', { headers: { 'accept-encoding': 'gzip', origin: 'https://any.example' } });
    assert.equal(gz.status, 200);
    assert.match(gz.headers.get('content-type') ?? '', /^application\/javascript/);
    assert.equal(gz.headers.get('content-encoding'), 'gzip');
    assert.equal(gz.text, js.toString()); // fetch decoded it
    assert.equal(gz.headers.get('cache-control'), 'public, max-age=3600');
    assert.equal(gz.headers.get('access-control-allow-origin'), '*');
    const etag = gz.headers.get('etag');
    assert.ok(etag, 'has an ETag');

    const plain = await t.get('/t.js', { headers: { 'accept-encoding': 'identity' } });
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get('content-encoding'), null);
    assert.equal(plain.text, js.toString());
    assert.equal(plain.headers.get('etag'), etag);

    const again = await t.get('/t.js', { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(again.text, '');
    assert.ok(gunzipSync(gzipSync(js)).equals(js));
  });

  test('real Chromium: pageviews (load, pushState, back, a real link), UTM, identify, a custom event, hidden and pagehide flushes; all found with SQL', async (tt) => {
    if (!existsSync(CHROMIUM)) return tt.skip(`${CHROMIUM} not found: install Debian's chromium (apt-get install chromium)`);
    mkdirSync(SCREENSHOTS, { recursive: true });
    const userDataDir = await mkdtemp(join(tmpdir(), 'causality-chromium-'));
    let context: BrowserContext | undefined;
    try {
      // Headless Chromium says "HeadlessChrome" in its user agent, which the ingest bot filter drops (as it should):
      // the test plays a person, with the same browser's ordinary user agent. A switch, not Playwright's per-page
      // override: the beacon a page sends while navigating away leaves after its page, with the browser's own agent.
      const version = /\d+\.\d+\.\d+\.\d+/.exec(execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))?.[0] ?? '120.0.0.0';
      const userAgent = `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/${version} Safari/537.36`;
      context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        args: [...CHROMIUM_ARGS, `--user-agent=${userAgent}`],
        headless: true,
        viewport: { width: 900, height: 600 },
      });
      context.setDefaultTimeout(10_000);

      const sent: Sent[] = [];
      const statuses: string[] = [];
      context.on('request', (r: Request) => {
        if (!r.url().includes('/v1/collect')) return;
        let body: unknown = r.postData();
        try {
          body = JSON.parse(String(body));
        } catch {
          /* keep the text */
        }
        sent.push({ url: r.url(), contentType: r.headers()['content-type'] ?? '', body, at: Date.now() });
      });
      context.on('response', (r) => {
        if (r.url().includes('/v1/collect')) statuses.push(`${r.status()} ${r.url()}`);
      });
      const collects = () => sent.length;
      const sentUrls = () => sent.flatMap((s) => (Array.isArray(s.body) ? s.body.map((e: { url?: string }) => e.url) : []));

      const page: Page = await context.newPage();
      const landing = `${siteUrl}/app/${LANDING_QUERY}`;
      await page.goto(landing);
      await page.waitForFunction(TRACKER_READY);
      await page.click('#login'); // identify: no event, later events carry the user id
      await page.click('#pricing'); // pushState → pageview /app/pricing
      await page.click('#same'); // replaceState to the same URL → no pageview
      await page.screenshot({ path: join(SCREENSHOTS, 'tracker-1-pricing.png') });
      // Nothing leaves at once: the views go in a batch when its 1 s timer fires.
      await waitFor('the pageviews batch (timer flush)', () => sentUrls().includes(`${siteUrl}/app/pricing`), 5_000);
      const afterTimer = collects();

      // A custom event starts a new batch; the page goes hidden: it leaves at once, not when its timer fires.
      await page.click('#signup');
      const hiddenAt = Date.now();
      await page.evaluate(`Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
        document.dispatchEvent(new Event('visibilitychange'))`);
      await waitFor('the batch flushed on visibilitychange → hidden', () => collects() > afterTimer, 5_000);
      assert.ok(sent[sent.length - 1]!.at - hiddenAt < 900, 'sent on hidden, before the 1 s timer');
      await page.evaluate(`delete document.visibilityState`); // back to the real (visible) state

      await page.goBack(); // popstate → pageview /app/ again (same-document history entry)
      await page.waitForFunction(`location.pathname === '/app/'`);
      await page.click('#docs'); // a real link: pagehide sends the pending view; a new document, a new anonymous id
      await page.waitForURL(`${siteUrl}/docs/`);
      await page.waitForFunction(TRACKER_READY);
      await page.screenshot({ path: join(SCREENSHOTS, 'tracker-2-docs.png') });
      // No cookies and no storage by default.
      assert.deepEqual(await context.cookies(), []);
      assert.equal(await page.evaluate('localStorage.length + sessionStorage.length'), 0);
      // An event right before the page closes can only leave with the pagehide flush.
      await page.evaluate(`causality.track('outbound', { to: 'https://elsewhere.example/' })`);
      await page.close({ runBeforeUnload: true });

      // Do Not Track respected when the tag asks for it: nothing is sent.
      const dnt = await context.newPage();
      await dnt.addInitScript(`Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' })`);
      const beforeDnt = collects();
      await dnt.goto(`${siteUrl}/dnt/`);
      await dnt.click('#signup');
      await dnt.evaluate('window.causality.flush()');
      await dnt.screenshot({ path: join(SCREENSHOTS, 'tracker-3-dnt.png') });
      await new Promise((r) => setTimeout(r, 1_200));
      assert.equal(collects(), beforeDnt, 'nothing sent under Do Not Track');
      await dnt.close();

      // data-persist="localStorage": the anonymous id (and the session) survive a reload.
      const kept = await context.newPage();
      await kept.goto(`${siteUrl}/persist/`);
      await kept.waitForFunction(TRACKER_READY);
      await kept.reload();
      await kept.waitForFunction(TRACKER_READY);
      const storedId = await kept.evaluate(`localStorage.getItem('causality_id')`);
      await kept.close({ runBeforeUnload: true });

      // Wire format: text/plain JSON arrays of seed 003 collect events, the key in the query string.
      const first = sent[0]!;
      assert.equal(new URL(first.url).searchParams.get('key'), t.keys.appA);
      assert.match(first.contentType, /^text\/plain/);
      assert.ok(Array.isArray(first.body), `a JSON array: ${JSON.stringify(first.body)}`);

      // Every event, with SQL.
      const expected = 8; // pageview /app/ ×2, pageview /app/pricing, signup, pageview /docs/, outbound, pageview /persist/ ×2
      const q = `SELECT type, path, url, referrer, utm_source, utm_medium, utm_campaign, user_id, device_id, session_id, props, browser
                 FROM events WHERE app_id = 'appA' ORDER BY ts, type`;
      let rows: unknown[][] = [];
      try {
        rows = (await waitFor(
          `${expected} events in the warehouse`,
          async () => {
            await t.node.flush();
            const r = await t.sql(q);
            return r.rows.length >= expected ? r.rows : null;
          },
          10_000,
        ))!;
      } catch (e) {
        const found = (await t.sql(`SELECT type, path, device_id FROM events`)).rows;
        throw new Error(`${(e as Error).message}; found ${JSON.stringify(found)}; collect responses: ${JSON.stringify(statuses)}; sent: ${JSON.stringify(sent.map((s) => s.body))}`);
      }
      const events = rows.map(([type, path, url, referrer, utmSource, utmMedium, utmCampaign, userId, deviceId, sessionId, props, browserName]) => ({
        type, path, url, referrer, utmSource, utmMedium, utmCampaign, userId, deviceId, sessionId,
        props: JSON.parse(String(props)) as Record<string, unknown>, browser: browserName,
      }));
      assert.deepEqual(
        events.map((e) => [e.type, e.path]),
        [
          ['pageview', '/app/'],
          ['pageview', '/app/pricing'],
          ['signup', '/app/pricing'],
          ['pageview', '/app/'],
          ['pageview', '/docs/'],
          ['outbound', '/docs/'],
          ['pageview', '/persist/'],
          ['pageview', '/persist/'],
        ],
      );
      const [land, pricing, signup, back, docs, outbound, kept1, kept2] = events;
      // UTM columns from the full landing URL; later events keep the landing campaign in props.
      assert.deepEqual([land.utmSource, land.utmMedium, land.utmCampaign], ['newsletter', 'email', 'spring']);
      assert.equal(land.url, landing);
      assert.deepEqual([pricing.utmSource, pricing.url], [null, `${siteUrl}/app/pricing`]);
      assert.equal(pricing.referrer, landing, 'an SPA view’s referrer is the previous page');
      assert.deepEqual(signup.props, { utm_source: 'newsletter', utm_medium: 'email', utm_campaign: 'spring', plan: 'pro', seats: 3 });
      // One anonymous id and session per page load; identify() applies to the events after it.
      for (const e of [pricing, signup, back]) assert.deepEqual([e.deviceId, e.sessionId], [land.deviceId, land.sessionId]);
      assert.deepEqual([land.userId, pricing.userId, signup.userId], [null, 'user-42', 'user-42']);
      assert.notEqual(docs.deviceId, land.deviceId, 'no storage: a new page load is a new anonymous id');
      assert.equal(docs.referrer, landing, 'document.referrer of the real navigation');
      assert.equal(docs.userId, null);
      assert.deepEqual([outbound.deviceId, outbound.props], [docs.deviceId, { to: 'https://elsewhere.example/' }]);
      assert.deepEqual([kept1.deviceId, kept2.deviceId, kept2.sessionId], [storedId, storedId, kept1.sessionId], 'persisted id and session');
      assert.ok(events.every((e) => e.browser === 'Chrome' || e.browser === 'Chromium'), `browser from the user agent: ${events.map((e) => e.browser)}`);
      const dntRows = await t.sql(`SELECT count(*) FROM events WHERE props LIKE ${lit('%"dnt"%')}`);
      assert.deepEqual(dntRows.rows, [[0]]);
    } finally {
      await context?.close().catch(() => {});
      await rm(userDataDir, { recursive: true, force: true });
    }
  });
});
