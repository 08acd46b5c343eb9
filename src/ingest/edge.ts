// Edge concerns of every request, in order: authenticate (API key → app) → rate limit (plugin, per key) →
// verify signature (optional, per app) → bot filter → request facts (IP hash, user-agent fields).
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { isbot } from 'isbot';
import type { AppConfig, Config } from '../config.js';
import type { RequestFacts } from '../event/envelope.js';
import { parseUserAgent } from '../event/user-agent.js';
import { HttpError } from '../http/errors.js';

export interface Principal {
  /** The app this key is bound to; null for the admin key (all apps). */
  appId: string | null;
  app: AppConfig | null;
  key: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
    rawBody?: Buffer;
  }
}

/** Reads the API key from X-API-Key, X-TA-API-Key (seed 003) or Authorization: Bearer. */
export function apiKeyOf(req: FastifyRequest): string | undefined {
  const h = req.headers;
  const k = h['x-api-key'] ?? h['x-ta-api-key'];
  if (typeof k === 'string' && k) return k;
  const auth = h.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  // Segment SDKs: HTTP Basic with the write key as the user name and no password.
  if (auth?.startsWith('Basic ')) {
    const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
    const user = decoded.split(':')[0];
    if (user) return user;
  }
  // Browsers (the web tracker): a custom header would force a CORS preflight, so the write key may ride in the URL.
  const q = req.query as Record<string, unknown> | undefined;
  if (q && typeof q.key === 'string' && q.key) return q.key;
  return undefined;
}

export function createAuthenticator(config: Config) {
  const byKey = new Map<string, Principal>();
  for (const app of config.apps) byKey.set(app.key, { appId: app.appId, app, key: app.key });
  byKey.set(config.adminKey, { appId: null, app: null, key: config.adminKey });
  return function authenticate(req: FastifyRequest): Principal {
    const key = apiKeyOf(req);
    if (!key) throw new HttpError(401, 'missing_api_key', 'send your app key in the X-API-Key header');
    const p = byKey.get(key);
    if (!p) throw new HttpError(401, 'invalid_api_key', 'unknown API key');
    req.principal = p;
    return p;
  };
}

const header = (req: FastifyRequest, ...names: string[]) => {
  for (const n of names) {
    const v = req.headers[n];
    if (typeof v === 'string' && v) return v;
  }
  return undefined;
};

/**
 * Optional per-app HMAC-SHA256 over `${timestamp}.${rawBody}`, hex, in X-Causality-Signature (`sha256=` prefix
 * optional) with X-Causality-Timestamp (unix seconds or ms). Outside the replay window → 401.
 */
export function verifySignature(req: FastifyRequest, app: AppConfig | null, windowSeconds: number, now = Date.now()): void {
  if (!app?.hmacSecret) return;
  const sig = header(req, 'x-causality-signature', 'x-ta-signature');
  const tsRaw = header(req, 'x-causality-timestamp', 'x-ta-timestamp');
  if (!sig || !tsRaw) {
    throw new HttpError(401, 'signature_required', 'this app requires X-Causality-Signature and X-Causality-Timestamp');
  }
  let ts = Number(tsRaw);
  if (!Number.isFinite(ts)) throw new HttpError(401, 'invalid_signature', 'X-Causality-Timestamp must be unix seconds or ms', 'X-Causality-Timestamp');
  if (ts < 1e12) ts *= 1000;
  if (Math.abs(now - ts) > windowSeconds * 1000) {
    throw new HttpError(401, 'stale_signature', `timestamp outside the ${windowSeconds}s replay window`, 'X-Causality-Timestamp');
  }
  const expected = createHmac('sha256', app.hmacSecret).update(`${tsRaw}.`).update(req.rawBody ?? Buffer.alloc(0)).digest();
  const given = Buffer.from(sig.replace(/^sha256=/, ''), 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new HttpError(401, 'invalid_signature', 'signature does not match the body', 'X-Causality-Signature');
  }
}

/** Signs a body the way verifySignature expects (used by the CLI and tests). */
export function signBody(secret: string, timestamp: string, body: string | Buffer): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex');
}

export function createFactsBuilder(config: Config) {
  const ipCache = new Map<string, string>();
  function hashIp(ip: string): string {
    let h = ipCache.get(ip);
    if (!h) {
      h = createHash('sha256').update(config.ipSalt).update('\u0000').update(ip).digest('hex').slice(0, 16);
      if (ipCache.size > 10_000) ipCache.clear();
      ipCache.set(ip, h);
    }
    return h;
  }
  return function requestFacts(req: FastifyRequest, userAgentOverride?: string | null): RequestFacts {
    const ua = userAgentOverride ?? (typeof req.headers['user-agent'] === 'string' ? req.headers['user-agent'] : null);
    return {
      appId: req.principal?.appId ?? null,
      receivedAt: Date.now(),
      userAgent: ua,
      // req.ip honours X-Forwarded-For only from TRUSTED_PROXIES (Fastify trustProxy).
      ipHash: req.ip ? hashIp(req.ip) : null,
      ua: ua ? parseUserAgent(ua) : null,
    };
  };
}

// HTTP libraries that SDKs, mobile apps and servers send with: isbot lists them, but here they are clients, not
// crawlers. (Scripted clients are caught by behaviour, in detection, not by their user agent.)
const HTTP_LIBRARY_UA =
  /^(curl|wget|okhttp|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|axios|node-fetch|undici|node|java|dart|ruby|php|libwww-perl|apache-httpclient|httpclient|alamofire|cfnetwork|dalvik|postmanruntime|insomnia|analytics-[\w-]+)\b/i;

/** Crawlers, preview fetchers, headless browsers and monitors (isbot's maintained list), minus HTTP libraries. */
export const isBotUserAgent = (ua: string | null | undefined): boolean => !!ua && !HTTP_LIBRARY_UA.test(ua) && isbot(ua);

