// Seed 000's binary envelope: `application/x-protobuf` bodies (proto/causality/v1/events.proto) decoded into the JSON
// envelope before the usual checks, so answers, validation and stored columns are the same as for JSON. The log keeps
// the JSON form (consumers read one format); the HMAC signature is checked over the bytes as sent.
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import protobuf from 'protobufjs';
import { HttpError } from '../http/errors.js';

export const PROTO_FILE = fileURLToPath(new URL('../../../proto/causality/v1/events.proto', import.meta.url));

let types: { event: protobuf.Type; batch: protobuf.Type } | null = null;
function protoTypes() {
  if (!types) {
    const root = protobuf.loadSync(PROTO_FILE);
    types = { event: root.lookupType('causality.v1.Event'), batch: root.lookupType('causality.v1.EventBatch') };
  }
  return types;
}

// map<string,string> values carry JSON text for numbers, booleans, objects; anything else stays a string.
function jsonValues(m: unknown): Record<string, unknown> | undefined {
  if (!m || typeof m !== 'object') return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m as Record<string, string>)) {
    try {
      out[k] = /^[\d\-[{tfn"]/.test(v) ? JSON.parse(v) : v;
    } catch {
      out[k] = v;
    }
  }
  return out;
}

function toEnvelope(e: Record<string, unknown>): Record<string, unknown> {
  if (e.properties) e.properties = jsonValues(e.properties);
  const custom = e.customEvent as Record<string, unknown> | undefined;
  if (custom?.params) custom.params = jsonValues(custom.params);
  return e;
}

/** A protobuf body of `path` as the JSON body the same route takes; 400 naming the problem when it does not decode. */
export function protobufToJsonBody(path: string, bytes: Buffer): Buffer {
  const { event, batch } = protoTypes();
  const type = path === '/v1/events/ingest' ? event : path === '/v1/events/batch' ? batch : null;
  if (!type) throw new HttpError(415, 'unsupported_media_type', 'application/x-protobuf is taken by /v1/events/ingest (Event) and /v1/events/batch (EventBatch)');
  let obj: Record<string, unknown>;
  try {
    obj = type.toObject(type.decode(bytes), { longs: Number, defaults: false, oneofs: false }) as Record<string, unknown>;
  } catch (e) {
    throw new HttpError(400, 'invalid_protobuf', `body is not a valid ${type.name} message: ${(e as Error).message}`);
  }
  const json = type === batch ? { events: ((obj.events as Record<string, unknown>[] | undefined) ?? []).map(toEnvelope), sentAt: obj.sentAt } : toEnvelope(obj);
  return Buffer.from(JSON.stringify(json));
}

/** Adds the protobuf body parser to the ingest routes' context. */
export function installProtobufParser(app: FastifyInstance): void {
  app.addContentTypeParser(['application/x-protobuf', 'application/protobuf'], { parseAs: 'buffer' }, (req, body, done) => {
    req.rawBody = body as Buffer;
    try {
      done(null, protobufToJsonBody(req.routeOptions.url ?? req.url, body as Buffer));
    } catch (e) {
      done(e as Error);
    }
  });
}
