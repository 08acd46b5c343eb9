// GET /t.js: the first-party web tracker (dist/tracker/t.js, built by src/tracker/build.ts). Any site may load it
// (CORS-open); gzip when accepted, ETag revalidation, cached an hour by browsers and CDNs.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { HttpError } from '../http/errors.js';

/** The built tracker, next to the compiled server: dist/src/tracker/routes.js → dist/tracker/t.js. */
export const TRACKER_FILE = new URL('../../tracker/t.js', import.meta.url);

interface TrackerAsset {
  plain: Buffer;
  gzip: Buffer;
  etag: string;
}

export function registerTrackerRoutes(app: FastifyInstance, file: URL = TRACKER_FILE): void {
  // Read and compressed once, on first request (a missing build is an error then, not at startup).
  let asset: Promise<TrackerAsset> | null = null;
  const load = async (): Promise<TrackerAsset> => {
    let plain: Buffer;
    try {
      plain = await readFile(file);
    } catch {
      throw new HttpError(503, 'tracker_not_built', 'the web tracker is not built: run npm run build');
    }
    return { plain, gzip: gzipSync(plain, { level: 9 }), etag: `"${createHash('sha256').update(plain).digest('base64url').slice(0, 22)}"` };
  };

  app.get('/t.js', async (req, reply) => {
    asset ??= load();
    let a: TrackerAsset;
    try {
      a = await asset;
    } catch (e) {
      asset = null; // built later: the next request tries again
      throw e;
    }
    reply
      .header('access-control-allow-origin', '*')
      .header('cross-origin-resource-policy', 'cross-origin')
      .header('cache-control', 'public, max-age=3600')
      .header('etag', a.etag)
      .header('vary', 'accept-encoding')
      .type('application/javascript; charset=utf-8');
    const inm = req.headers['if-none-match'];
    if (inm && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === a.etag)) return reply.code(304).send();
    if (/\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) {
      return reply.header('content-encoding', 'gzip').send(a.gzip);
    }
    return reply.send(a.plain);
  });
}
