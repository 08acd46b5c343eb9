// Causality's first-party web tracker, served at /t.js. Browser code: built by esbuild (src/tracker/build.ts) into
// dist/tracker/t.js, type-checked by src/tracker/tsconfig.json (DOM types), never by the main Node tsconfig.
//
//   <script src="https://host/t.js" data-key="WRITE_KEY" data-site="siteId" defer></script>
//
// data-api (default: the script's origin), data-persist="localStorage" (keep the anonymous id and session across page
// loads; default: in memory per page load, no cookies, no storage), data-respect-dnt="true" (send nothing when Do Not
// Track or Global Privacy Control is on), data-hash="true" (hash changes are page views, for hash routers).
// Events go to POST {api}/v1/collect?key=… as text/plain (no CORS preflight) in seed 003's collect shape.

interface CollectEvent {
  site_id: string;
  event_name: string;
  url: string;
  referrer: string;
  ts: number;
  props?: Record<string, unknown>;
  session_id: string;
  user_id?: string;
  device_id: string;
}

type Call = [string, ...unknown[]];

interface CausalityApi {
  track(name: string, props?: Record<string, unknown>): void;
  identify(userId?: string | null): void;
  pageview(): void;
  flush(): void;
}

declare global {
  interface Window {
    causality?: CausalityApi | Call[];
  }
  interface Navigator {
    globalPrivacyControl?: boolean;
  }
}

const BATCH_EVENTS = 10;
const FLUSH_MS = 1000;
const SESSION_IDLE_MS = 30 * 60 * 1000;
const UTM_KEYS = ['utm_source', 'utm_medium', 'utm_campaign', 'utm_term', 'utm_content'];

(() => {
  const w = window;
  const d = document;
  const nav = navigator;
  const loc = location;
  const script = d.currentScript as HTMLScriptElement | null;
  const queued = w.causality;
  // Loaded twice, or not from a <script> tag (no configuration to read): do nothing.
  if (!script || (queued && !Array.isArray(queued))) return;
  const attr = (name: string) => script.getAttribute('data-' + name);
  const key = attr('key');
  const site = attr('site');
  if (!key || !site) return;
  const endpoint = (attr('api') || new URL(script.src, loc.href).origin).replace(/\/+$/, '') + '/v1/collect?key=' + encodeURIComponent(key);
  const optedOut =
    attr('respect-dnt') === 'true' &&
    (nav.doNotTrack === '1' || (w as unknown as { doNotTrack?: string }).doNotTrack === '1' || nav.globalPrivacyControl === true);
  const persist = attr('persist') === 'localStorage';
  const withHash = attr('hash') === 'true';

  // A random UUID (v4); crypto.randomUUID needs a secure context, getRandomValues does not.
  const uuid = (): string => {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6]! & 15) | 64;
    b[8] = (b[8]! & 63) | 128;
    let s = '';
    for (let i = 0; i < 16; i++) s += (i === 4 || i === 6 || i === 8 || i === 10 ? '-' : '') + (b[i]! + 256).toString(16).slice(1);
    return s;
  };

  // Storage only when the site asked for it; any storage error (private mode, quota) falls back to memory.
  const store = (k: string, v?: string | null): string | null => {
    if (!persist) return null;
    try {
      k = 'causality_' + k;
      if (v === undefined) return localStorage.getItem(k);
      if (v === null) localStorage.removeItem(k);
      else localStorage.setItem(k, v);
    } catch {
      /* storage unavailable: memory only */
    }
    return null;
  };

  const deviceId = store('id') || uuid();
  store('id', deviceId);
  let userId = store('user');
  // A session ends after 30 min without events (persisted) or with the page (memory).
  let sessionId = store('session') || uuid();
  let lastSeen = Number(store('seen')) || 0;

  // Campaign of the landing page: kept for later events of this page load (attribution of SPA views and conversions).
  const landing = new URLSearchParams(loc.search);
  const campaign: Record<string, string> = {};
  for (const k of UTM_KEYS) {
    const v = landing.get(k);
    if (v) campaign[k] = v;
  }

  // The referrer of a page view: the document's for the first, the previous page for SPA route changes.
  let referrer = d.referrer;
  let lastPage = '';
  let queue: CollectEvent[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;

  const send = (body: string) => {
    // sendBeacon survives the page's unload; it refuses (false) past its quota, then fetch with keepalive.
    if (nav.sendBeacon?.(endpoint, body)) return;
    fetch(endpoint, { method: 'POST', body, keepalive: true, credentials: 'omit', headers: { 'Content-Type': 'text/plain' } }).catch(() => {});
  };

  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (queue.length) send(JSON.stringify(queue));
    queue = [];
  };

  const track = (name: string, props?: Record<string, unknown>) => {
    if (optedOut || typeof name !== 'string' || !name) return;
    const now = Date.now();
    if (now - lastSeen > SESSION_IDLE_MS && lastSeen) sessionId = uuid();
    lastSeen = now;
    store('session', sessionId);
    store('seen', String(now));
    const p: Record<string, unknown> = { ...campaign, ...(props && typeof props === 'object' ? props : {}) };
    const e: CollectEvent = { site_id: site, event_name: name, url: loc.href, referrer, ts: now, session_id: sessionId, device_id: deviceId };
    if (Object.keys(p).length) e.props = p;
    if (userId) e.user_id = userId;
    queue.push(e);
    if (queue.length >= BATCH_EVENTS) flush();
    else timer ??= setTimeout(flush, FLUSH_MS);
  };

  const pageview = (force?: boolean) => {
    const page = withHash ? loc.href : loc.href.split('#')[0]!;
    if (page === lastPage && !force) return; // replaceState with the same URL, or a hash change without data-hash
    if (lastPage && page !== lastPage) referrer = lastPage;
    lastPage = page;
    track('pageview');
  };

  // SPA route changes: history.pushState/replaceState (patched) and back/forward (popstate).
  for (const m of ['pushState', 'replaceState'] as const) {
    const original = history[m];
    history[m] = function (this: History, ...args: Parameters<History['pushState']>) {
      original.apply(this, args);
      pageview();
    };
  }
  w.addEventListener('popstate', () => pageview());
  if (withHash) w.addEventListener('hashchange', () => pageview());
  // The last batch leaves when the page is hidden or unloaded (mobile browsers may never fire unload).
  d.addEventListener('visibilitychange', () => d.visibilityState === 'hidden' && flush());
  w.addEventListener('pagehide', flush);

  const api: CausalityApi = {
    track,
    identify(id) {
      userId = id ? String(id) : null;
      store('user', userId);
    },
    pageview: () => pageview(true),
    flush,
  };
  w.causality = api;
  // Calls made before the script loaded (window.causality = window.causality || []; causality.push(['track', …])).
  for (const [m, ...args] of queued || []) (api as unknown as Record<string, (...a: unknown[]) => void>)[m]?.(...args);
  pageview();
})();

export {};
