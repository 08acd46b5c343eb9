// The built-in web UI: the Vite build in dist/ui served at /ui/ (hashed assets cached for a year, index.html
// revalidated, client routes answered with index.html), and `/` sends browsers there while API clients keep the JSON
// index. Files are read once and kept in memory with their gzip form: the whole build is a few hundred KB.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from '../http/errors.js';
import { addRouteDocs } from '../http/openapi.js';

/** The built UI, next to the compiled server: dist/src/ui/routes.js → dist/ui/. */
export const UI_DIR = fileURLToPath(new URL('../../ui/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.svg', '.txt', '.csv', '.map']);
// Vite names built assets <name>-<hash>.<ext> under assets/: their content never changes under that name.
const HASHED = /^assets\/.+-[\w-]{8,}\.\w+$/;

addRouteDocs(
  { method: 'GET', path: '/ui', tag: 'ui', summary: 'Redirects to /ui/', public: true, ok: { status: 302, description: 'to /ui/' } },
  { method: 'GET', path: '/ui/', tag: 'ui', summary: 'The web UI (sign in with the admin key or an app key)', public: true, ok: { status: 200, description: 'HTML', contentType: 'text/html' } },
  { method: 'GET', path: '/ui/*', tag: 'ui', summary: "The web UI's assets; any other path is a client route and gets the UI's page", public: true, ok: { status: 200, description: 'an asset or HTML', contentType: 'text/html' } },
);

interface Asset {
  plain: Buffer;
  gzip: Buffer | null;
  etag: string;
  type: string;
  immutable: boolean;
}

/** A browser navigating (it asks for HTML first), as opposed to an API client or curl's default. */
export const wantsHtml = (req: FastifyRequest) => /\btext\/html\b/.test(req.headers.accept ?? '');

export function registerUiRoutes(app: FastifyInstance, dir: string = UI_DIR): void {
  const cache = new Map<string, Promise<Asset | null>>();

  const load = async (rel: string): Promise<Asset | null> => {
    let plain: Buffer;
    try {
      plain = await readFile(dir + rel);
    } catch {
      return null;
    }
    const ext = extname(rel).toLowerCase();
    return {
      plain,
      gzip: COMPRESSIBLE.has(ext) && plain.length > 512 ? gzipSync(plain, { level: 9 }) : null,
      etag: `"${createHash('sha256').update(plain).digest('base64url').slice(0, 22)}"`,
      type: CONTENT_TYPES[ext] ?? 'application/octet-stream',
      immutable: HASHED.test(rel),
    };
  };
  const asset = async (rel: string): Promise<Asset | null> => {
    let p = cache.get(rel);
    if (!p) {
      p = load(rel);
      cache.set(rel, p);
    }
    const a = await p;
    if (!a) cache.delete(rel); // built later: looked for again
    return a;
  };

  const send = (req: FastifyRequest, reply: FastifyReply, a: Asset) => {
    reply
      .header('cache-control', a.immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .header('etag', a.etag)
      .header('vary', 'accept-encoding')
      .header('x-content-type-options', 'nosniff')
      .type(a.type);
    if (a.type.startsWith('text/html')) reply.header('content-security-policy', "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'");
    const inm = req.headers['if-none-match'];
    if (inm && inm.split(',').some((t) => t.trim().replace(/^W\//, '') === a.etag)) return reply.code(304).send();
    if (a.gzip && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) return reply.header('content-encoding', 'gzip').send(a.gzip);
    return reply.send(a.plain);
  };

  const index = async (req: FastifyRequest, reply: FastifyReply) => {
    const a = await asset('index.html');
    if (!a) throw new HttpError(503, 'ui_not_built', 'the web UI is not built: run npm run build');
    return send(req, reply, a);
  };

  app.get('/ui', async (_req, reply) => reply.redirect('/ui/', 302));
  app.get('/ui/', index);
  app.get('/ui/*', async (req, reply) => {
    const wild = (req.params as { '*': string })['*'];
    const rel = normalize(decodeURIComponent(wild)).replace(/^(\.\.(\/|\\|$))+/, '');
    if (rel.startsWith('..') || rel.split(sep).includes('..') || rel.startsWith('/')) throw new HttpError(404, 'not_found', 'no such file');
    // A path with an extension is a file (missing → 404, never the page); anything else is a client route.
    if (!extname(rel)) return index(req, reply);
    const a = await asset(rel);
    if (!a) throw new HttpError(404, 'not_found', `no UI file ${rel}`);
    return send(req, reply, a);
  });

  // Browsers opening the server's root land on the UI; API clients keep the JSON index registered at '/'.
  app.addHook('onRequest', (req, reply, done) => {
    if (req.method === 'GET' && (req.url === '/' || req.url.startsWith('/?')) && wantsHtml(req)) {
      reply.redirect('/ui/', 302);
      return;
    }
    done();
  });
}
