// Anomalies and rules over HTTP: GET /v1/anomalies (filters, cursor paging), one anomaly, its status; rules as files
// of the live rules directory (the detector hot-reloads them): list, read, validate, write, delete.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { HttpError } from '../http/errors.js';
import { addRouteDocs } from '../http/openapi.js';
import type { createAuthenticator } from '../ingest/edge.js';
import type { StoredEvent } from '../event/stored-event.js';
import { ANOMALY_STATUSES, ENTITY_TYPES, SEVERITIES, type Anomaly } from './anomaly.js';
import { runBacktestBatches } from './backtest.js';
import { CursorError, type AnomalyStore } from './anomaly-store.js';
import { compileRulesText } from './rules-loader.js';
import { RuleError } from './rules-schema.js';

const epochOrIso = z
  .string()
  .transform((v, ctx) => {
    const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
    if (!Number.isFinite(ms)) {
      ctx.addIssue({ code: 'custom', message: 'must be ISO 8601 or epoch ms' });
      return z.NEVER;
    }
    return ms;
  });

export const anomalyQuery = z.object({
  app_id: z.string().optional(),
  entity_type: z.enum(ENTITY_TYPES as [string, ...string[]]).optional(),
  entity_id: z.string().optional(),
  severity: z.enum(SEVERITIES as [string, ...string[]]).optional(),
  min_severity: z.enum(SEVERITIES as [string, ...string[]]).optional(),
  source: z.string().optional(),
  category: z.string().optional(),
  status: z.enum(ANOMALY_STATUSES as [string, ...string[]]).optional(),
  from: epochOrIso.optional(),
  to: epochOrIso.optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  cursor: z.string().optional(),
});
const statusBody = z.object({ status: z.enum(ANOMALY_STATUSES as [string, ...string[]]) });
const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ruleText = z.string().describe('YAML or JSON rules file (see rules/ for examples)');
/** Most events one backtest request replays (the newest are left out beyond; the answer says so). */
export const BACKTEST_MAX_EVENTS = 2_000_000;
const backtestBody = z.object({
  rules: ruleText,
  days: z.number().int().min(1).max(90).default(7),
  app_id: z.string().optional(),
  samples: z.number().int().min(0).max(200).default(20),
});

addRouteDocs(
  { method: 'GET', path: '/v1/anomalies', tag: 'detection', summary: 'Anomalies, newest first, with filters and cursor paging', query: anomalyQuery },
  { method: 'GET', path: '/v1/anomalies/:id', tag: 'detection', summary: 'One anomaly with its explanation' },
  { method: 'POST', path: '/v1/anomalies/:id/status', tag: 'detection', summary: 'Acknowledge or resolve an anomaly', body: statusBody },
  { method: 'GET', path: '/v1/rules', tag: 'detection', summary: 'Rules files in force' },
  { method: 'GET', path: '/v1/rules/:name', tag: 'detection', summary: 'One rules file (text)' },
  { method: 'PUT', path: '/v1/rules/:name', tag: 'detection', summary: 'Create or replace a rules file (validated first; hot-reloaded)', body: ruleText, bodyTypes: ['application/yaml', 'text/plain', 'application/json'] },
  { method: 'DELETE', path: '/v1/rules/:name', tag: 'detection', summary: 'Delete a rules file' },
  { method: 'POST', path: '/v1/rules/validate', tag: 'detection', summary: 'Validate a rules text without saving it', body: ruleText, bodyTypes: ['application/yaml', 'text/plain', 'application/json'] },
  { method: 'POST', path: '/v1/rules/backtest', tag: 'detection', summary: "Backtest a rules text over the warehouse's last N days before enabling it: hits and entities per rule, sample anomalies", body: backtestBody },
);

/** Stored events of the warehouse in time order, in batches (at most maxEvents + 1, the oldest first). */
export type WarehouseEventReader = (q: { appId: string | null; fromMs: number; toMs: number; maxEvents: number }) => AsyncIterable<StoredEvent[]>;

export interface DetectRouteDeps {
  anomalies: AnomalyStore;
  rulesDir: string;
  authenticate: ReturnType<typeof createAuthenticator>;
  /** The warehouse's events for backtests; POST /v1/rules/backtest answers 503 without it. */
  readEvents?: WarehouseEventReader;
  now?: () => number;
}

function parse<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new HttpError(400, 'invalid_field', issue.message, issue.path.join('.') || undefined);
  }
  return r.data;
}

/** A rules body as text: YAML/plain text as sent, JSON re-serialised. */
function bodyText(req: FastifyRequest): string {
  if (typeof req.body === 'string') return req.body;
  if (Buffer.isBuffer(req.body)) return req.body.toString('utf8');
  if (req.rawBody) return req.rawBody.toString('utf8');
  if (req.body !== undefined) return JSON.stringify(req.body);
  throw new HttpError(400, 'missing_field', 'send the rules file as the body');
}

function ruleFileOf(dir: string, name: string): string {
  if (!RULE_NAME.test(name)) throw new HttpError(400, 'invalid_field', 'must be 1-64 of A-Z a-z 0-9 . _ -', 'name');
  const file = /\.(ya?ml|json)$/i.test(name) ? name : `${name}.yaml`;
  return join(dir, file);
}

export function registerDetectRoutes(app: FastifyInstance, { anomalies, rulesDir, authenticate, readEvents, now = Date.now }: DetectRouteDeps): void {
  // Rules files are YAML: taken as text, whatever the content type.
  app.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml'], { parseAs: 'string' }, (_req, body, done) => done(null, body));

  const admin = (req: FastifyRequest) => {
    const p = authenticate(req);
    if (p.appId !== null) throw new HttpError(403, 'admin_only', 'rules are managed with the admin key');
    return p;
  };

  app.get('/v1/anomalies', async (req) => {
    const p = authenticate(req);
    const q = parse(anomalyQuery, req.query);
    if (p.appId && q.app_id && q.app_id !== p.appId) throw new HttpError(403, 'forbidden_app', `this API key reads app ${p.appId} only`, 'app_id');
    try {
      const page = await anomalies.list(
        {
          appId: p.appId ?? q.app_id,
          entityType: q.entity_type as never,
          entityId: q.entity_id,
          severity: q.severity as never,
          minSeverity: q.min_severity as never,
          source: q.source,
          category: q.category,
          status: q.status as never,
          from: q.from,
          to: q.to,
        },
        { limit: q.limit ?? 50, cursor: q.cursor ?? null },
      );
      return page;
    } catch (e) {
      if (e instanceof CursorError) throw new HttpError(400, 'invalid_field', 'not a cursor this API gave', 'cursor');
      throw e;
    }
  });

  app.get('/v1/anomalies/:id', async (req) => {
    const p = authenticate(req);
    const a = await anomalies.get((req.params as { id: string }).id);
    if (!a || (p.appId && a.appId !== p.appId)) throw new HttpError(404, 'not_found', 'no such anomaly');
    return a;
  });

  app.post('/v1/anomalies/:id/status', async (req) => {
    const p = authenticate(req);
    const { id } = req.params as { id: string };
    const { status } = parse(statusBody, req.body);
    const a = await anomalies.get(id);
    if (!a || (p.appId && a.appId !== p.appId)) throw new HttpError(404, 'not_found', 'no such anomaly');
    await anomalies.setStatus(id, status as never);
    return { id, status };
  });

  app.get('/v1/rules', async (req) => {
    admin(req);
    const files = existsSync(rulesDir) ? readdirSync(rulesDir).filter((f) => /\.(ya?ml|json)$/i.test(f)).sort() : [];
    return {
      dir: rulesDir,
      files: files.map((file) => {
        const text = readFileSync(join(rulesDir, file), 'utf8');
        try {
          const rules = compileRulesText(text, file);
          return { file, ok: true, rules: rules.map((r) => ({ id: r.id, severity: r.severity, cooldownMs: r.cooldownMs })) };
        } catch (e) {
          const err = e as RuleError;
          return { file, ok: false, error: { field: err.field, message: err.detail ?? err.message } };
        }
      }),
    };
  });

  app.get('/v1/rules/:name', async (req, reply) => {
    admin(req);
    const file = ruleFileOf(rulesDir, (req.params as { name: string }).name);
    if (!existsSync(file)) throw new HttpError(404, 'not_found', 'no such rules file');
    return reply.type('application/yaml; charset=utf-8').send(readFileSync(file, 'utf8'));
  });

  const validate = (text: string, name: string) => {
    try {
      return compileRulesText(text, name);
    } catch (e) {
      if (e instanceof RuleError) throw new HttpError(400, 'invalid_rule', e.detail, e.field);
      throw new HttpError(400, 'invalid_rule', (e as Error).message);
    }
  };

  app.post('/v1/rules/validate', async (req) => {
    admin(req);
    const rules = validate(bodyText(req), '(request)');
    return { ok: true, rules: rules.map((r) => ({ id: r.id, severity: r.severity, cooldownMs: r.cooldownMs })) };
  });

  // The same engine as live detection over the last N days of stored events; only the rules' own hits are reported
  // (the models run too, as live, but their anomalies are not what is being tried).
  let backtesting = false;
  app.post('/v1/rules/backtest', async (req) => {
    admin(req);
    const b = parse(backtestBody, req.body);
    const rules = validate(b.rules, '(backtest)');
    if (!readEvents) throw new HttpError(503, 'unavailable', 'backtests need the warehouse on this node');
    // One at a time: a backtest holds a scan and a detection engine's state (it yields between batches of events).
    if (backtesting) throw new HttpError(409, 'backtest_running', 'another backtest is running; retry when it is done');
    backtesting = true;
    const started = performance.now();
    const toMs = now();
    const fromMs = toMs - b.days * 86_400_000;
    const ids = new Set(rules.map((r) => `rule:${r.id}`));
    const perRule = new Map<string, { hits: number; entities: Set<string> }>(rules.map((r) => [r.id, { hits: 0, entities: new Set<string>() }]));
    const samples: Anomaly[] = [];
    let run;
    try {
      run = await runBacktestBatches({
        batches: readEvents({ appId: b.app_id ?? null, fromMs, toMs, maxEvents: BACKTEST_MAX_EVENTS + 1 }),
        rules,
        maxEvents: BACKTEST_MAX_EVENTS,
        onAnomaly: (a) => {
          if (!ids.has(a.source)) return;
          const r = perRule.get(a.source.slice(5))!;
          r.hits++;
          r.entities.add(`${a.entityType}:${a.entityId}`);
          if (samples.length < b.samples) samples.push(a);
        },
      });
    } finally {
      backtesting = false;
    }
    return {
      from: new Date(fromMs).toISOString(),
      to: new Date(toMs).toISOString(),
      days: b.days,
      events: run.processed,
      truncated: run.truncated,
      rules: [...perRule].map(([id, r]) => ({ id, hits: r.hits, entities: r.entities.size })),
      samples: samples.map((a) => ({ ...a, ts: new Date(a.ts).toISOString() })),
      elapsedMs: Math.round(performance.now() - started),
    };
  });

  app.put('/v1/rules/:name', async (req, reply) => {
    admin(req);
    const file = ruleFileOf(rulesDir, (req.params as { name: string }).name);
    const text = bodyText(req);
    const rules = validate(text, file);
    const existed = existsSync(file);
    // Whole file or nothing: the watcher never sees a half-written file.
    const tmp = join(rulesDir, `.${Date.now()}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, file);
    return reply.code(existed ? 200 : 201).send({ file: file.slice(rulesDir.length + 1), rules: rules.map((r) => r.id) });
  });

  app.delete('/v1/rules/:name', async (req, reply) => {
    admin(req);
    const file = ruleFileOf(rulesDir, (req.params as { name: string }).name);
    if (!existsSync(file)) throw new HttpError(404, 'not_found', 'no such rules file');
    rmSync(file);
    return reply.code(204).send();
  });
}
