// Client IPs in event files. A live event's IP is the request's (hashed at the edge, never stored raw); an event in a
// file (generated traffic, a backtest export, a server-side relay in the Segment style) may carry it as `context.ip`.
// Readers hash it with a fixed salt and drop the raw address before the event is normalised.
import { createHash } from 'node:crypto';

/** Salt for IPs read from files: stable, so a file's IP entities have the same ids in every backtest. */
export const FILE_IP_SALT = 'causality-file-ip-v1';

const cache = new Map<string, string>();

/** The ip_hash an IP in a file gets (same shape as the edge's: 16 hex chars of a salted SHA-256). */
export function fileIpHash(ip: string): string {
  let h = cache.get(ip);
  if (h === undefined) {
    h = createHash('sha256').update(FILE_IP_SALT).update('\u0000').update(ip).digest('hex').slice(0, 16);
    if (cache.size > 100_000) cache.clear();
    cache.set(ip, h);
  }
  return h;
}
