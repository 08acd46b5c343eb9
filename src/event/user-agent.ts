// User-agent fields (ua-parser-js 1.x, MIT), cached: the same few user agents repeat in every batch.
import UAParser from 'ua-parser-js';

export interface UaFacts {
  os: string | null;
  osVersion: string | null;
  browser: string | null;
  browserVersion: string | null;
  deviceModel: string | null;
  deviceType: string | null;
}

const cache = new Map<string, UaFacts>();

export function parseUserAgent(ua: string): UaFacts {
  let f = cache.get(ua);
  if (!f) {
    const r = new UAParser(ua).getResult();
    f = {
      os: r.os.name ?? null,
      osVersion: r.os.version ?? null,
      browser: r.browser.name ?? null,
      browserVersion: r.browser.version ?? null,
      deviceModel: r.device.model ?? null,
      deviceType: r.device.type ?? (r.os.name && /iOS|Android/.test(r.os.name) ? 'mobile' : r.browser.name ? 'desktop' : null),
    };
    if (cache.size > 5_000) cache.clear();
    cache.set(ua, f);
  }
  return f;
}
