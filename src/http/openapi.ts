// The OpenAPI 3.1 contract, built from the same zod schemas that validate requests (JSON Schema 2020-12 via
// z.toJSONSchema), served at /openapi.json and rendered at /docs (swagger-ui, bundled: no CDN). Every route the
// server registers must have an entry in ROUTE_DOCS; a test keeps them in step.
import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { z } from 'zod';
import { envelopeSchema, KIND_SCHEMAS, timestampSchema } from '../event/envelope.js';

export type JsonSchema = Record<string, unknown>;

export interface RouteDoc {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  tag: string;
  summary: string;
  description?: string;
  /** Request body schema (zod), and the content types it is taken in. */
  body?: z.ZodType;
  bodyTypes?: string[];
  /** Query parameters (a zod object). */
  query?: z.ZodObject;
  /** Success status and what it returns. */
  ok?: { status: number; description: string; schema?: z.ZodType; contentType?: string };
  /** No key needed. */
  public?: boolean;
}

const toSchema = (s: z.ZodType): JsonSchema => {
  const j = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  delete j.$schema;
  return j;
};

// A client event: the flat shape, or the nested one with one kind object (seed 000).
const nestedKinds = Object.fromEntries(Object.entries(KIND_SCHEMAS).map(([k, s]) => [k, s.optional()]));
export const eventDocSchema = envelopeSchema.extend(nestedKinds).describe(
  'One event. Flat (`type` + fields) or nested (one kind object such as `screenView`). Unknown fields are kept in `props`.',
);

const fieldError = z.object({ code: z.string(), field: z.string(), message: z.string() });
const eventResult = z.union([
  z.object({ status: z.enum(['accepted', 'duplicate']), eventId: z.string() }),
  z.object({ index: z.number().int(), status: z.literal('rejected'), error: fieldError }),
]);
export const batchAnswer = z.object({
  accepted: z.number().int(),
  duplicate: z.number().int(),
  rejected: z.number().int(),
  results: z.array(eventResult).describe('one per event, in request order'),
});
const singleAnswer = z.object({ status: z.enum(['accepted', 'duplicate']), eventId: z.string() });

// Seed 003's collect body (mapped onto the envelope before the same checks).
const collectEvent = z.object({
  site_id: z.string().optional().describe('app id (optional with an app key)'),
  event_name: z.string().optional().describe('default pageview'),
  url: z.string().optional(),
  referrer: z.string().optional(),
  user_id: z.string().optional(),
  session_id: z.string().optional(),
  device_id: z.string().optional().describe('anonymous id; derived from site, IP hash and UA when absent'),
  ts: z.union([z.number(), z.string()]).optional().describe('epoch ms or ISO 8601'),
  props: z.record(z.string(), z.unknown()).optional(),
});

// Segment's message (HTTP Tracking API), as Segment documents it.
const segmentMessage = z.object({
  type: z.enum(['track', 'page', 'screen', 'identify', 'group', 'alias']).optional().describe('required in a batch; implied by the path otherwise'),
  messageId: z.string().optional().describe('idempotency key → event id'),
  anonymousId: z.string().optional(),
  userId: z.string().optional(),
  event: z.string().optional().describe('track: the event name (spec e-commerce events map to typed kinds)'),
  name: z.string().optional().describe('page / screen name'),
  properties: z.record(z.string(), z.unknown()).optional(),
  traits: z.record(z.string(), z.unknown()).optional(),
  groupId: z.string().optional(),
  previousId: z.string().optional(),
  context: z.record(z.string(), z.unknown()).optional(),
  timestamp: timestampSchema.optional(),
  sentAt: timestampSchema.optional().describe('clock-skew correction'),
});

const errorSchema = toSchema(z.object({ error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }) }));

const INGEST_TYPES = ['application/json', 'text/plain'];
const ingestDescription =
  'Acked means durable: 202 only after the events are fsynced to the log. Bodies may be gzip/deflate/br encoded (Content-Encoding).';

/** Routes of the core server (ingest, query, ops). Other areas add theirs with `addRouteDocs`. */
export const ROUTE_DOCS: RouteDoc[] = [
  { method: 'POST', path: '/v1/events/ingest', tag: 'ingest', summary: 'Ingest one event', description: ingestDescription, body: z.union([eventDocSchema, z.object({ event: eventDocSchema })]), bodyTypes: [...INGEST_TYPES, 'application/x-protobuf'], ok: { status: 202, description: 'stored (or a duplicate of a stored event)', schema: singleAnswer } },
  { method: 'POST', path: '/v1/events/batch', tag: 'ingest', summary: 'Ingest a batch (answers per event)', description: ingestDescription, body: z.object({ events: z.array(eventDocSchema), sentAt: timestampSchema.optional() }), bodyTypes: [...INGEST_TYPES, 'application/x-protobuf'], ok: { status: 202, description: 'per-event results', schema: batchAnswer } },
  { method: 'POST', path: '/v1/collect', tag: 'ingest', summary: "Seed 003's web collect body (one event or an array)", description: `${ingestDescription} Browsers may send the key as ?key=.`, body: z.union([collectEvent, z.array(collectEvent), z.object({ events: z.array(collectEvent) })]), bodyTypes: INGEST_TYPES, ok: { status: 202, description: 'stored', schema: z.union([singleAnswer, batchAnswer]) } },
  { method: 'POST', path: '/v1/batch', tag: 'segment', summary: 'Segment batch', description: 'Segment HTTP Tracking API; auth: HTTP Basic with the write key as user name.', body: z.object({ batch: z.array(segmentMessage), sentAt: timestampSchema.optional(), context: z.record(z.string(), z.unknown()).optional() }), bodyTypes: INGEST_TYPES, ok: { status: 202, description: 'per-event results', schema: batchAnswer } },
  ...(['track', 'page', 'screen', 'identify', 'group', 'alias'] as const).map(
    (t): RouteDoc => ({ method: 'POST', path: `/v1/${t}`, tag: 'segment', summary: `Segment ${t}`, body: segmentMessage, bodyTypes: INGEST_TYPES, ok: { status: 202, description: 'stored', schema: singleAnswer } }),
  ),
  { method: 'GET', path: '/healthz', tag: 'ops', summary: 'Health, log offsets and sink lag', public: true },
  { method: 'GET', path: '/metrics', tag: 'ops', summary: 'Prometheus metrics', public: true, ok: { status: 200, description: 'Prometheus text format', contentType: 'text/plain' } },
  { method: 'GET', path: '/', tag: 'ops', summary: 'Index of the service', public: true },
  { method: 'GET', path: '/openapi.json', tag: 'ops', summary: 'This document', public: true },
  { method: 'GET', path: '/t.js', tag: 'ingest', summary: 'The first-party web tracker (script tag)', public: true, ok: { status: 200, description: 'JavaScript', contentType: 'application/javascript' } },
  { method: 'GET', path: '/proto/events.proto', tag: 'ingest', summary: 'The protobuf envelope', public: true, ok: { status: 200, description: 'proto3 source', contentType: 'text/plain' } },
];

export function addRouteDocs(...docs: RouteDoc[]): void {
  for (const d of docs) if (!ROUTE_DOCS.some((r) => r.method === d.method && r.path === d.path)) ROUTE_DOCS.push(d);
}

/** Fastify's `:param` → OpenAPI's `{param}`. */
const openApiPath = (p: string) => p.replace(/:(\w+)/g, '{$1}');

export function buildOpenApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const d of ROUTE_DOCS) {
    const params: unknown[] = [...d.path.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (d.query) {
      for (const [name, s] of Object.entries(d.query.shape)) {
        params.push({ name, in: 'query', required: !(s as z.ZodType).safeParse(undefined).success, schema: toSchema(s as z.ZodType) });
      }
    }
    const ok = d.ok ?? { status: 200, description: 'OK' };
    const op: Record<string, unknown> = {
      tags: [d.tag],
      summary: d.summary,
      ...(d.description ? { description: d.description } : {}),
      ...(params.length ? { parameters: params } : {}),
      ...(d.public ? { security: [] } : {}),
      responses: {
        [ok.status]: {
          description: ok.description,
          ...(ok.schema || ok.contentType ? { content: { [ok.contentType ?? 'application/json']: ok.schema ? { schema: toSchema(ok.schema) } : {} } } : {}),
        },
        '4XX': { description: 'bad input, named in the error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } },
      },
    };
    if (d.body) {
      const schema = toSchema(d.body);
      op.requestBody = { required: true, content: Object.fromEntries((d.bodyTypes ?? ['application/json']).map((t) => [t, t === 'application/x-protobuf' ? { schema: { type: 'string', format: 'binary', description: 'see /proto/events.proto' } } : { schema }])) };
    }
    (paths[openApiPath(d.path)] ??= {})[d.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Causality API', version, description: 'Self-hosted behavioural event platform: ingest, SQL over the warehouse, detection, metric crashes and their impact.' },
    components: {
      schemas: { Error: errorSchema },
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        bearer: { type: 'http', scheme: 'bearer' },
        segmentWriteKey: { type: 'http', scheme: 'basic', description: 'Segment SDKs: the write key (an app key) as user name' },
        queryKey: { type: 'apiKey', in: 'query', name: 'key', description: 'browsers (no preflight)' },
      },
    },
    security: [{ apiKey: [] }, { bearer: [] }, { segmentWriteKey: [] }, { queryKey: [] }],
    paths,
  };
}

/** Serves /openapi.json and the rendered reference at /docs. Call after every route is registered. */
export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  let doc: Record<string, unknown> | null = null;
  const document = () => (doc ??= buildOpenApiDocument(version));
  app.get('/openapi.json', async () => document());
  await app.register(swagger, { mode: 'static', specification: { document: document() as never } });
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { url: '/openapi.json' } as never });
}
