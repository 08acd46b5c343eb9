// The web UI in real Chromium (Debian's /usr/bin/chromium through playwright-core) against a node fed by the labelled
// generator (attacks → anomalies, a dead webhook → dead letters) plus a revenue series that drops after a deploy.
// Every page is driven as a person would: sign in, read the overview (numbers checked with SQL), run and save a query
// and export it, filter and open an anomaly and acknowledge it, edit/validate/backtest a rule, read a crash's cause and
// cost and upload a CSV with its columns mapped, create a webhook and see the dead letters. Screenshots land in
// test-results/; accessibility basics (names on every control, keyboard reach, contrast, landmarks) are checked.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { generateAll } from '../src/generate/simulate.js';
import { startTestNode, waitFor, type TestNode } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOTS = fileURLToPath(new URL('../../test-results/', import.meta.url));
const UI_BUILT = existsSync(fileURLToPath(new URL('../ui/index.html', import.meta.url)));
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Hourly revenue with a daily rhythm over `days`, dropping 40 % `dropDaysAgo` before the end. */
function revenue(end: number, days: number, dropAt: number): Array<{ ts: number; value: number }> {
  const out: Array<{ ts: number; value: number }> = [];
  let s = 7;
  const noise = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 0.06;
  for (let t = end - days * DAY; t < end; t += HOUR) {
    const daily = 1 + 0.4 * Math.sin(((new Date(t).getUTCHours() - 9) / 24) * 2 * Math.PI);
    out.push({ ts: t, value: Math.round(1000 * daily * (1 + noise()) * (t >= dropAt ? 0.6 : 1) * 100) / 100 });
  }
  return out;
}

// Page-side code is strings: this file compiles with Node's types, not the DOM's.
/** Controls without an accessible name (visible ones, and file inputs). */
const UNNAMED_CONTROLS = `[...document.querySelectorAll('input, select, textarea, button')].filter((el) => {
  if (el.type === 'hidden' || (el.offsetParent === null && el.type !== 'file')) return false;
  if (el.tagName === 'BUTTON') return !(el.textContent.trim() || el.getAttribute('aria-label'));
  return !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby'));
}).map((el) => el.outerHTML.slice(0, 120))`;

/** Visible text below the WCAG AA contrast ratio against its effective background (disabled controls exempt). */
const LOW_CONTRAST = `(() => {
  const lum = (c) => { const [r, g, b] = c.match(/[\\d.]+/g).slice(0, 3).map(Number).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const alpha = (c) => { const m = c.match(/[\\d.]+/g); return m.length > 3 ? Number(m[3]) : 1; };
  const bgOf = (el) => { for (let e = el; e; e = e.parentElement) { const b = getComputedStyle(e).backgroundColor; if (alpha(b) > 0.5) return b; } return 'rgb(255, 255, 255)'; };
  const bad = [];
  const els = [...document.querySelectorAll('p, td, th, label, a, button, h1, h2, h3, span, dt, dd, li, strong, code, option')];
  for (const el of els) {
    if (el.offsetParent === null || el.disabled || el.closest('[disabled]')) continue;
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const st = getComputedStyle(el);
    const [l1, l2] = [lum(st.color), lum(bgOf(el))].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const large = parseFloat(st.fontSize) >= 24 || (parseFloat(st.fontSize) >= 18.66 && Number(st.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) bad.push(el.tagName + ' "' + el.textContent.trim().slice(0, 30) + '" ' + ratio.toFixed(2));
  }
  return bad.slice(0, 10);
})()`;

const FOCUSED = `(() => { const el = document.activeElement; return el ? (el.id ? '#' + el.id : (el.textContent || '').trim().slice(0, 40) || el.tagName) : ''; })()`;

describe('web UI in Chromium', { skip: !existsSync(CHROMIUM) ? `${CHROMIUM} not found (apt-get install chromium)` : !UI_BUILT ? 'dist/ui is not built (npm run build)' : false }, () => {
  let t: TestNode;
  let context: BrowserContext;
  let page: Page;
  let userDataDir = '';
  let files = '';
  const now = Date.now();
  const dropAt = Math.floor((now - 2 * DAY) / HOUR) * HOUR;

  /** Click (or reload) → the page's data on screen, per page: reported, never asserted. */
  const loadMs: Record<string, number> = {};
  const apiMs: Record<string, number> = {};
  let clicked = 0;
  const loaded = (name: string) => (loadMs[name] = Date.now() - clicked);
  const shot = (name: string) => page.screenshot({ path: join(SCREENSHOTS, `ui-${name}.png`), fullPage: true });
  const open = async (path: string) => {
    clicked = Date.now();
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: path, exact: true }).click();
    await page.getByRole('heading', { level: 1 }).first().waitFor();
  };
  const a11y = async (where: string) => {
    assert.deepEqual(await page.evaluate(UNNAMED_CONTROLS), [], `${where}: controls without an accessible name`);
    assert.deepEqual(await page.evaluate(LOW_CONTRAST), [], `${where}: text below WCAG AA contrast`);
  };

  before(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    files = await mkdtemp(join(tmpdir(), 'causality-ui-files-'));
    t = await startTestNode({ METRICS_CACHE_MS: '0', WEBHOOK_MAX_ATTEMPTS: '1', WEBHOOK_GROUP_WINDOW: '0', WEBHOOK_TIMEOUT: '2s', DETECTOR_SNAPSHOT_INTERVAL: '200ms' });
    // A receiver that is never there: its deliveries become dead letters (one attempt each).
    const dead = await t.post('/v1/webhooks', { id: 'dead-receiver', url: 'http://127.0.0.1:9/hook' }, { key: t.keys.admin });
    assert.equal(dead.status, 201);
    // Three hours of labelled traffic ending now, attacks in the last two.
    const start = now - 3 * HOUR;
    const { events } = generateAll({ seed: 7, users: 200, start, durationMs: 3 * HOUR - 60_000, anomalyRate: 0.3, attacksFrom: start + HOUR });
    for (let i = 0; i < events.length; i += 1000) {
      const r = await t.post('/v1/events/batch', { events: events.slice(i, i + 1000) }, { key: t.keys.admin });
      assert.equal(r.status, 202, r.text);
    }
    // Revenue drops 40 % two days ago, 20 minutes after a deploy; an unrelated commit two days earlier.
    const pts = revenue(now, 21, dropAt);
    assert.equal((await t.post('/v1/series/revenue', { points: pts.map((p) => ({ timestamp: p.ts, value: p.value })) }, { key: t.keys.admin })).status, 202);
    const changes = [
      { id: 'd-214', time: dropAt - 20 * 60_000, title: 'Deploy checkout-service v2.14.0', kind: 'deploy', service: 'checkout-service' },
      { id: 'c-77', time: dropAt - 2 * DAY, title: 'Update FAQ copy', kind: 'commit', service: 'web' },
    ];
    assert.equal((await t.post('/v1/changes', { changes }, { key: t.keys.admin })).status, 200);
    await t.node.flush();
    await waitFor('anomalies from the attacks', async () => (await t.get('/v1/anomalies?limit=1', { key: t.keys.admin })).body.items?.length > 0, 30_000);
    await waitFor('the detector caught up', async () => (await t.get('/healthz')).body.detector?.lag === 0, 30_000);
    await waitFor('a dead letter', async () => (await t.get('/v1/webhooks/dead-letters?limit=1', { key: t.keys.admin })).body.items?.length > 0, 30_000);

    userDataDir = await mkdtemp(join(tmpdir(), 'causality-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, viewport: { width: 1360, height: 900 }, acceptDownloads: true });
    context.setDefaultTimeout(15_000);
    page = context.pages()[0] ?? (await context.newPage());
    // How long the server took to answer each API call the pages made (reported with the page timings).
    context.on('requestfinished', (r) => {
      const path = new URL(r.url()).pathname;
      if (!path.startsWith('/v1/')) return;
      const key = `${r.method()} ${path.replace(/\/[0-9a-f-]{36}(?=\/|$)/g, '/:id')}`;
      apiMs[key] = Math.max(apiMs[key] ?? 0, Math.round(r.timing().responseEnd));
    });
  });

  after(async () => {
    console.log(`page load, click → data shown (ms): ${JSON.stringify(loadMs)}`);
    console.log(`slowest answer per API call the pages made (ms): ${JSON.stringify(apiMs)}`);
    await context?.close();
    await t?.close();
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
    if (files) await rm(files, { recursive: true, force: true });
  });

  test('serving: / sends browsers to /ui/ and API clients keep the JSON index; assets cached, client routes get the page', async () => {
    const api = await t.get('/', { headers: { accept: 'application/json' } });
    assert.equal(api.status, 200);
    assert.equal(api.body.name, 'causality');
    const browser = await fetch(`${t.url}/`, { headers: { accept: 'text/html,application/xhtml+xml' }, redirect: 'manual' });
    assert.equal(browser.status, 302);
    assert.equal(browser.headers.get('location'), '/ui/');
    const index = await t.get('/ui/anomalies/some-id', { headers: { accept: 'text/html' } });
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(index.headers.get('cache-control'), 'no-cache');
    const script = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(index.text)?.[1];
    assert.ok(script, 'index.html loads a hashed script');
    const js = await fetch(t.url + script, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(js.headers.get('cache-control') ?? '', /immutable/);
    assert.equal(js.headers.get('content-encoding'), 'gzip');
    const again = await fetch(t.url + script, { headers: { 'if-none-match': js.headers.get('etag')! } });
    assert.equal(again.status, 304);
    assert.equal((await t.get('/ui/assets/missing-0123456789.js')).status, 404);
    assert.equal((await t.get('/ui/../package.json')).status, 404);
  });

  test('sign in: a wrong key is refused, the admin key opens the overview; sign out returns to sign-in', async () => {
    await page.goto(`${t.url}/`);
    assert.ok(page.url().endsWith('/ui/'), page.url());
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    await page.getByLabel('API key').fill('not-a-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'not known' }).waitFor();
    await a11y('sign-in');
    await shot('0-signin');
    await page.getByLabel('API key').fill(t.keys.admin);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    // Landmarks.
    assert.equal(await page.locator('header.top').count(), 1);
    assert.equal(await page.getByRole('navigation', { name: 'Pages' }).count(), 1);
    assert.equal(await page.locator('main#main').count(), 1);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    await page.getByLabel('API key').fill(t.keys.admin);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
  });

  test('overview: the numbers are what SQL says, and the time range picker changes them', async () => {
    const stat = page.getByTestId('stat-events');
    clicked = Date.now();
    await page.reload(); // a full load: the app, the sign-in check, the page chunk and its data
    await waitFor('overview numbers', async () => /\d/.test(await stat.innerText()) && (await page.locator('#by-type li').count()) > 0);
    loaded('overview');
    const num = async (id: string) => Number((await page.getByTestId(id).innerText()).replace(/,/g, ''));
    const [all] = (await t.sql('SELECT count(*)::INT, count(DISTINCT coalesce(user_id, device_id))::INT FROM events WHERE ts >= now() - INTERVAL 24 HOUR')).rows as number[][];
    assert.equal(await num('stat-events'), all![0]);
    assert.equal(await num('stat-users'), all![1]);
    const [views] = (await t.sql(`SELECT count(*)::INT FROM events WHERE type IN ('pageview', 'screenView', 'page', 'screen', '$pageview') AND ts >= now() - INTERVAL 24 HOUR`)).rows as number[][];
    assert.equal(await num('stat-views'), views![0]);
    assert.ok((await page.locator('#by-type li').count()) > 3, 'events by type');
    assert.ok((await page.locator('#top-pages li').count()) > 3, 'top screens');
    assert.equal(await page.locator('#live canvas').count() > 0, true, 'the live chart is drawn');
    await a11y('overview');
    await shot('1-overview');
    // The last hour: fewer events, exactly those of the window the page asked for.
    const lastHour = (u: URL) => Date.parse(u.searchParams.get('to')!) - Date.parse(u.searchParams.get('from')!) === HOUR;
    const answer = page.waitForResponse((r) => r.url().includes('/v1/metrics/overview') && lastHour(new URL(r.url())));
    await page.getByLabel('Time range').selectOption('1h');
    const body = await (await answer).json();
    await waitFor('the last-hour count', async () => (await num('stat-events')) === body.events);
    const [hour] = (await t.sql(`SELECT count(*)::INT FROM events WHERE ts >= epoch_ms(${Date.parse(body.from)}) AND ts < epoch_ms(${Date.parse(body.to)})`)).rows as number[][];
    assert.equal(body.events, hour![0]);
    assert.ok(hour![0]! < all![0]!, 'the last hour holds fewer events than the last day');
    await page.getByLabel('Time range').selectOption('24h');
  });

  test('explore: a query shows rows and a chart, is saved, and exports as CSV', async () => {
    await open('Explore');
    await page.getByRole('button', { name: 'Run', exact: true }).waitFor();
    loaded('explore');
    const editor = page.getByLabel('SQL query');
    await editor.fill('SELECT type, count(*) AS n FROM events GROUP BY 1 ORDER BY 2 DESC, 1');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.getByTestId('result-summary').waitFor();
    const sql = await t.sql('SELECT type, count(*) AS n FROM events GROUP BY 1 ORDER BY 2 DESC, 1');
    assert.equal(await page.locator('#result-rows tbody tr').count(), sql.rows.length);
    assert.equal(await page.locator('#result-rows tbody tr').first().locator('td').first().innerText(), String(sql.rows[0]![0]));
    assert.equal(await page.locator('#result-chart ul.bars li').count(), Math.min(30, sql.rows.length), 'a label + number result is drawn as bars');
    // A time series result is drawn as lines (Ctrl+Enter runs it).
    await editor.fill("SELECT date_trunc('minute', ts) AS minute, count(*) AS events FROM events GROUP BY 1 ORDER BY 1");
    await editor.press('Control+Enter');
    await page.locator('#result-chart canvas').waitFor();
    await page.getByLabel('Save the current query as').fill('events per minute');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByRole('button', { name: 'events per minute', exact: true }).waitFor();
    const saved = await t.get('/v1/queries/saved', { key: t.keys.admin });
    assert.deepEqual(saved.body.items.map((q: { name: string }) => q.name), ['events per minute']);
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Export CSV' }).click();
    const csvPath = join(files, 'export.csv');
    await (await download).saveAs(csvPath);
    const lines = readFileSync(csvPath, 'utf8').trim().split('\n');
    assert.equal(lines[0], 'minute,events');
    assert.ok(lines.length > 10);
    await a11y('explore');
    await shot('2-explore');
    // Keyboard: from the top of the page, Tab reaches the navigation, the editor and Run, in that order.
    await page.evaluate('document.activeElement?.blur(); window.scrollTo(0, 0)');
    const reached: string[] = [];
    for (let i = 0; i < 30; i++) {
      await page.keyboard.press('Tab');
      reached.push(String(await page.evaluate(FOCUSED)));
    }
    const at = (x: string) => reached.indexOf(x);
    for (const x of ['Skip to content', 'Overview', 'Settings', '#app-pick', 'Sign out', '#save-name', '#sql-editor', 'Run']) assert.ok(at(x) >= 0, `Tab reaches ${x}: ${reached.join(' → ')}`);
    assert.ok(at('Overview') < at('Settings') && at('Settings') < at('#sql-editor') && at('#sql-editor') < at('Run'), reached.join(' → '));
    assert.equal(await page.evaluate(`getComputedStyle(document.activeElement).outlineStyle`), 'solid', 'focus is visible');
  });

  test('anomalies: filter, open one (explanation + the entity timeline), acknowledge it', async () => {
    await open('Anomalies');
    const rows = page.locator('[data-testid=anomaly-feed] tbody tr');
    await rows.first().waitFor();
    loaded('anomalies');
    await page.getByLabel('Minimum severity').selectOption('high');
    await waitFor('the filtered feed', async () => {
      const sev = await page.locator('[data-testid=anomaly-feed] tbody tr td:nth-child(2)').allInnerTexts();
      return sev.length > 0 && sev.every((s) => s === 'high' || s === 'critical');
    });
    const api = await t.get('/v1/anomalies?status=open&min_severity=high&limit=50', { key: t.keys.admin });
    assert.equal(await rows.count(), api.body.items.length);
    const first = api.body.items[0];
    await rows.first().getByRole('link').click();
    await page.waitForURL(new RegExp(`/ui/anomalies/${first.id}$`));
    assert.equal(await page.getByTestId('explanation').innerText(), first.explanation);
    await page.getByTestId('timeline').waitFor();
    assert.ok((await page.locator('[data-testid=timeline] tbody tr').count()) > 0, 'the entity has events around the anomaly');
    assert.ok((await page.locator('[data-testid=timeline] tbody tr.hit').count()) > 0, 'its triggering events are marked');
    await a11y('anomalies');
    await shot('3-anomalies');
    await page.getByRole('button', { name: 'Acknowledge' }).click();
    await waitFor('acknowledged', async () => (await page.getByTestId('detail-status').innerText()) === 'acknowledged');
    assert.equal((await t.get(`/v1/anomalies/${first.id}`, { key: t.keys.admin })).body.status, 'acknowledged');
  });

  test('rules: open a file, an invalid edit names its field, a valid one backtests with hits', async () => {
    await open('Rules');
    await page.getByRole('button', { name: 'auth.yaml' }).waitFor();
    loaded('rules');
    await page.getByRole('button', { name: 'auth.yaml' }).click();
    const editor = page.getByLabel('Rules (YAML or JSON)');
    await waitFor('the rules text', async () => (await editor.inputValue()).includes('brute-force'));
    const text = await editor.inputValue();
    await editor.fill(text.replace('threshold: 8', 'threshold: lots'));
    await page.getByRole('button', { name: 'Validate' }).click();
    const field = page.getByTestId('error-field');
    await field.waitFor();
    assert.match(await field.innerText(), /threshold/);
    await shot('4-rules-invalid');
    await editor.fill(text);
    await page.getByRole('button', { name: 'Validate' }).click();
    await page.getByTestId('valid').waitFor();
    await page.getByLabel('Backtest over the last').fill('1');
    await page.getByRole('button', { name: 'Backtest' }).click();
    const hits = page.locator('[data-testid=backtest-rules] tbody tr td:nth-child(2)');
    await hits.first().waitFor({ timeout: 30_000 });
    const total = (await hits.allInnerTexts()).reduce((a, s) => a + Number(s.replace(/,/g, '')), 0);
    assert.ok(total > 0, 'the generated attacks trip the authentication rules');
    await a11y('rules');
    await shot('4-rules-backtest');
  });

  test('metrics: crash marker, ranked change, cost; sensitivity re-analyses; CSV upload with column mapping; demo file', async () => {
    await open('Metrics');
    await page.getByLabel('Series').selectOption('revenue');
    await waitFor('a crash', async () => /\d{4}-\d{2}-\d{2}/.test(await page.getByTestId('crash-onset').innerText()));
    loaded('metrics (with the analysis)');
    const onset = Date.parse((await page.getByTestId('crash-onset').innerText()).replace(' ', 'T') + 'Z');
    assert.ok(Math.abs(onset - dropAt) <= 3 * HOUR, `onset ${new Date(onset).toISOString()} near the drop ${new Date(dropAt).toISOString()}`);
    const top = page.locator('[data-testid=candidates] tbody tr').first();
    assert.match(await top.innerText(), /Deploy checkout-service v2\.14\.0/);
    assert.match(await page.getByTestId('cost').innerText(), /-[\d,]+/);
    assert.match(await page.locator('.stat', { has: page.getByTestId('cost') }).innerText(), /95 % interval/);
    assert.ok((await page.locator('#metric-chart canvas').count()) > 0);
    await a11y('metrics');
    await shot('5-metrics');
    // Sensitivity: a new analysis at the new threshold.
    const again = page.waitForResponse((r) => r.url().includes('/v1/analysis') && JSON.parse(r.request().postData() ?? '{}').sensitivity === 3);
    await page.getByLabel(/Sensitivity threshold/).fill('3');
    assert.equal((await (await again).json()).sensitivity, 3);
    // Upload a CSV whose value column is not where the page guesses: map it.
    const csv = ['region,day,gmv', ...revenue(now, 21, dropAt).map((p) => `eu,${new Date(p.ts).toISOString()},${p.value}`)].join('\n');
    writeFileSync(join(files, 'gmv.csv'), csv);
    await page.getByLabel('Upload metrics CSV').setInputFiles(join(files, 'gmv.csv'));
    await page.getByLabel('Value column').selectOption({ label: 'gmv' });
    await waitFor('usable points', async () => (await page.getByTestId('csv-points').innerText()).startsWith('504'));
    writeFileSync(join(files, 'changes.jsonl'), [{ ref: 'x-1', at: new Date(dropAt - 10 * 60_000).toISOString(), summary: 'Flip payments feature flag' }].map((c) => JSON.stringify(c)).join('\n'));
    const analysed = page.waitForResponse((r) => r.url().includes('/v1/analysis') && (JSON.parse(r.request().postData() ?? '{}').changes?.length ?? 0) === 1);
    await page.getByLabel('Upload change log (CSV or JSONL)').setInputFiles(join(files, 'changes.jsonl'));
    const body = await (await analysed).json();
    assert.equal(body.impact.candidates[0].change.title, 'Flip payments feature flag');
    await waitFor('the uploaded change ranked', async () => /Flip payments feature flag/.test(await page.locator('[data-testid=candidates] tbody tr').first().innerText())).catch(async (e) => {
      await shot('5-metrics-upload-FAILED');
      throw e;
    });
    await shot('5-metrics-upload');
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Demo metrics CSV' }).click();
    const demo = join(files, 'demo.csv');
    await (await download).saveAs(demo);
    assert.equal(readFileSync(demo, 'utf8').split('\n')[0], 'hour,revenue_usd');
  });

  test('settings: apps with masked keys, create a webhook (secret once), dead letters listed and replayed', async () => {
    await open('Settings');
    await page.locator('[data-testid=dead-letters] tbody tr').first().waitFor();
    loaded('settings');
    const appsText = await page.locator('#apps').innerText();
    assert.match(appsText, /appA/);
    assert.ok(!appsText.includes(t.keys.appA), 'keys are masked');
    await page.getByLabel('URL').fill('https://hooks.example.com/causality');
    await page.getByLabel('Minimum severity').selectOption('high');
    await page.getByRole('button', { name: 'Create webhook' }).click();
    await page.getByTestId('webhook-secret').waitFor();
    assert.equal(await page.locator('[data-testid=webhooks] tbody tr').count(), 2);
    const dead = page.locator('[data-testid=dead-letters] tbody tr');
    await dead.first().waitFor();
    assert.ok((await dead.count()) > 0);
    await a11y('settings');
    await shot('6-settings');
    const before = (await t.get('/v1/webhooks/dead-letters?limit=1000', { key: t.keys.admin })).body.items.length;
    await dead.first().getByRole('button', { name: 'Replay' }).click();
    await page.getByRole('status').filter({ hasText: 'Replayed' }).waitFor();
    assert.ok(before > 0);
  });

  test('an app key sees its own app only', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').fill(t.keys.appA);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Settings' }).waitFor(); // the page it was on
    assert.match(await page.locator('.who').innerText(), /app appA/);
    assert.doesNotMatch(await page.locator('#apps').innerText(), /appB/);
    await open('Overview');
    assert.equal(await page.locator('#app-pick').count(), 0);
    await waitFor('zero events for appA', async () => (await page.getByTestId('stat-events').innerText()) === '0');
    await open('Rules');
    await page.getByText('Rules are managed with the admin key').waitFor();
  });
});
