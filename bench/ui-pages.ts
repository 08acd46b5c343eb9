// Web UI page loads against a node whose warehouse holds the warehouse bench's events (10 M by default), in Debian's
// Chromium through playwright-core. A page's load time: from navigation start until its last API answer arrived
// (the page's data is on screen), read from the browser's own resource timings; every run is a fresh page load with
// the browser's cache warm (as a returning user's), after one untimed warm-up load per page.
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import type { Timing } from './warehouse.js';

export const UI_PAGES = [
  { name: 'overview', path: '/ui/', heading: 'Overview' },
  { name: 'explore', path: '/ui/explore', heading: 'Explore' },
  { name: 'anomalies', path: '/ui/anomalies', heading: 'Anomalies' },
  { name: 'rules', path: '/ui/rules', heading: 'Rules' },
  { name: 'metrics', path: '/ui/metrics', heading: 'Metrics' },
  { name: 'settings', path: '/ui/settings', heading: 'Settings' },
] as const;

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** No API request in flight for this long = the page has loaded its data. */
const QUIET_MS = 300;

export interface PageTiming extends Timing {
  apiRequests: number;
}

function stats(name: string, what: string, xs: number[], apiRequests: number): PageTiming {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return { name, what, runs: xs.length, p50: at(0.5), p95: at(0.95), min: s[0]!, max: s[s.length - 1]!, apiRequests };
}

/** Null when Chromium is not installed (the bench says so instead of failing). */
export async function measureUiPages(url: string, adminKey: string, runs: number, say: (l: string) => void): Promise<PageTiming[] | null> {
  if (!existsSync(CHROMIUM)) {
    say(`  UI pages: skipped, ${CHROMIUM} is not installed`);
    return null;
  }
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  try {
    const context = await browser.newContext();
    // The sign-in's effect: the key in the tab's sessionStorage (browser code as a string: no DOM types here).
    await context.addInitScript(`sessionStorage.setItem('causality.key', ${JSON.stringify(adminKey)})`);
    const page = await context.newPage();
    let inflight = 0;
    let lastChange = Date.now();
    page.on('request', (r) => {
      if (new URL(r.url()).pathname.startsWith('/v1/')) inflight++, (lastChange = Date.now());
    });
    const done = (r: { url(): string }) => {
      if (new URL(r.url()).pathname.startsWith('/v1/')) inflight--, (lastChange = Date.now());
    };
    page.on('requestfinished', done);
    page.on('requestfailed', done);
    // A page whose data did not load has not loaded: an API error fails the measurement.
    const apiErrors: string[] = [];
    page.on('response', (r) => {
      if (new URL(r.url()).pathname.startsWith('/v1/') && r.status() >= 400) apiErrors.push(`${r.status()} ${new URL(r.url()).pathname}`);
    });

    const load = async (path: string, heading: string): Promise<{ ms: number; api: number }> => {
      inflight = 0;
      await page.goto(`${url}${path}`, { waitUntil: 'load' });
      await page.getByRole('heading', { name: heading, level: 1 }).first().waitFor({ timeout: 30_000 });
      const deadline = Date.now() + 60_000;
      while (inflight > 0 || Date.now() - lastChange < QUIET_MS) {
        if (Date.now() > deadline) throw new Error(`${path}: API requests still in flight after 60 s`);
        await new Promise((r) => setTimeout(r, 25));
      }
      if (apiErrors.length) throw new Error(`${path}: API answered ${apiErrors.splice(0).join(', ')}`);
      return page.evaluate<{ ms: number; api: number }>(`(() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const api = performance.getEntriesByType('resource').filter((e) => new URL(e.name).pathname.startsWith('/v1/'));
        const end = Math.max(nav.domContentLoadedEventEnd, nav.loadEventEnd, ...api.map((e) => e.responseEnd));
        return { ms: Math.round(end - nav.startTime), api: api.length };
      })()`);
    };

    const out: PageTiming[] = [];
    for (const p of UI_PAGES) {
      await load(p.path, p.heading); // warm-up: assets cached, server caches filled as after any first visit
      const xs: number[] = [];
      let api = 0;
      for (let i = 0; i < runs; i++) {
        const r = await load(p.path, p.heading);
        xs.push(r.ms);
        api = r.api;
      }
      const t = stats(p.name, p.path, xs, api);
      say(`  UI ${p.name.padEnd(10)} load p50 ${t.p50} ms p95 ${t.p95} ms (max ${t.max} ms, ${api} API requests)`);
      out.push(t);
    }
    return out;
  } finally {
    await browser.close();
  }
}
