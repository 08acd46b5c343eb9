// HTTP API of the causal engine: series (pushed or SQL-defined), change events (+ webhooks of GitHub, Jira, Slack,
// Jenkins), incidents, and counterfactual impact. Every route needs a key; an app key reads and writes its own app only,
// the admin key picks an app with `app_id` (none = admin-wide items).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { HttpError } from '../http/errors.js';
import { addRouteDocs } from '../http/openapi.js';
import type { Principal } from '../ingest/edge.js';
import { ChangeError, changeInputSchema, normaliseChange, parseTime, type Change, type ChangeInput } from './changes.js';
import { ImpactError } from './impact.js';
import { detectOnset, monitorSeries } from './monitor.js';
import type { LlmConfig, RiskConfig } from './risk.js';
import { CausalService, impactReport, segmentKey, segmentLabels } from './service.js';
import type { AppScope, CausalStore, StoredPoint } from './store.js';
import { parseWebhook, verifyGithubSignature, verifySlackSignature, WEBHOOK_SOURCES, WebhookError, type WebhookSource } from './webhooks.js';

export interface CausalRouteDeps {
  authenticate: (req: FastifyRequest) => Principal;
  store: CausalStore;
  /** Runs read-only SQL over the warehouse scoped to an app (used by SQL-defined series; see SeriesScheduler). */
  runSql: (sql: string, appId?: string) => Promise<{ columns: string[]; rows: unknown[][] }>;
  now?: () => number;
  risk?: RiskConfig;
  llm?: LlmConfig | null;
  /** Webhook signing secrets; when set, that source's signature is required. */
  webhookSecrets?: Partial<Record<'github' | 'slack', string>>;
  /** Shared service (the scheduler's, say); created from the deps when absent. */
  service?: CausalService;
}

export const SERIES_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
const MAX_POINTS_PER_REQUEST = 100_000;

const timeValue = z.union([z.string().min(1), z.number()]);
const pointSchema = z.object({ timestamp: timeValue, value: z.number(), labels: z.record(z.string(), z.string()).optional() });
const batchSchema = z.object({ points: z.array(pointSchema).min(1).max(MAX_POINTS_PER_REQUEST), labels: z.record(z.string(), z.string()).optional() });
const definitionSchema = z.object({ name: z.string().regex(SERIES_NAME), sql: z.string().min(1).max(20_000), interval: z.union([z.string(), z.number()]), appId: z.string().optional() });
const changesBody = z.union([z.object({ changes: z.array(z.unknown()).min(1).max(10_000) }), z.record(z.string(), z.unknown())]);
const impactSchema = z.object({
  series: z.union([z.string().regex(SERIES_NAME), z.object({ points: z.array(z.object({ timestamp: timeValue, value: z.number() })).min(10).max(200_000) })]),
  segment: z.string().optional(),
  at: timeValue,
  end: timeValue.nullable().optional(),
  controls: z
    .union([
      z.array(z.string().regex(SERIES_NAME)).max(20),
      z.object({ names: z.array(z.string()).min(1).max(20), points: z.array(z.object({ timestamp: timeValue, values: z.array(z.number()) })).max(200_000) }),
    ])
    .optional(),
  changes: z.array(z.unknown()).max(10_000).optional(),
  lookback: timeValue.optional(),
});

const DEFAULT_THRESHOLD_Z = 5;
const analysisSchema = z.object({
  series: impactSchema.shape.series,
  segment: z.string().optional(),
  changes: z.array(z.unknown()).max(10_000).optional(),
  sensitivity: z.number().min(1).max(20).optional().describe('evidence threshold in robust standard deviations (default 5; lower = more sensitive)'),
  lookback: timeValue.optional().describe('how long before the onset a change may be a candidate (e.g. 3d)'),
  window: timeValue.optional().describe('how much history before the onset the counterfactual learns from (e.g. 28d)'),
});

addRouteDocs(
  { method: 'POST', path: '/v1/analysis', tag: 'metrics', summary: 'One-shot analysis of a series (stored or given): expected band per point, the first crash, its ranked candidate changes and its cost', body: analysisSchema },
  { method: 'POST', path: '/v1/series/:name', tag: 'metrics', summary: 'Push points of a business series (one point or {points})', body: z.union([pointSchema, batchSchema]) },
  { method: 'POST', path: '/v1/series', tag: 'metrics', summary: 'Define a series as SQL over the warehouse, evaluated on a schedule', body: definitionSchema },
  { method: 'GET', path: '/v1/series', tag: 'metrics', summary: 'Series and their definitions' },
  { method: 'GET', path: '/v1/series/:name', tag: 'metrics', summary: 'Points of a series (from, to, segment)' },
  { method: 'POST', path: '/v1/changes', tag: 'changes', summary: 'Record change events (deploys, commits, tickets); idempotent on id', body: changesBody },
  { method: 'GET', path: '/v1/changes', tag: 'changes', summary: 'Change events with their risk (from, to, limit)' },
  { method: 'POST', path: '/v1/changes/webhooks/:source', tag: 'changes', summary: 'GitHub, Jira, Slack or Jenkins webhook payloads as change events' },
  { method: 'GET', path: '/v1/incidents', tag: 'metrics', summary: 'Metric crashes (status filter)' },
  { method: 'GET', path: '/v1/incidents/:id', tag: 'metrics', summary: 'One incident: onset, ranked candidate changes, impact' },
  { method: 'POST', path: '/v1/incidents/:id/analyze', tag: 'metrics', summary: 'Re-run root cause and impact for an incident' },
  { method: 'POST', path: '/v1/impact', tag: 'metrics', summary: 'Counterfactual impact of a change at a time, with 95 % intervals and ranked candidates', body: impactSchema },
);

/** `30s`, `5m`, `1h`, `1d` or milliseconds. */
export function parseInterval(v: string | number): number {
  if (typeof v === 'number') return v;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(v);
  if (!m) throw new HttpError(400, 'invalid_field', 'use e.g. 30s, 5m, 1h, 1d', 'interval');
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms']);
}

function invalid(issues: { message: string; path: PropertyKey[] }[], fallback: string): never {
  const issue = issues[0]!;
  throw new HttpError(400, 'invalid_field', issue.message, issue.path.map(String).join('.') || fallback);
}

function time(v: string | number, field: string): number {
  try {
    return parseTime(v, field);
  } catch (e) {
    throw new HttpError(400, 'invalid_field', (e as Error).message, field);
  }
}

export function registerCausalRoutes(app: FastifyInstance, deps: CausalRouteDeps): void {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const service = deps.service ?? new CausalService({ store, now, risk: deps.risk, llm: deps.llm });

  /** The app a request acts on: an app key's own; the admin's `app_id` (query or body) or null. */
  function scopeOf(req: FastifyRequest, bodyApp?: string): { principal: Principal; appId: AppScope } {
    const principal = deps.authenticate(req);
    const q = (req.query ?? {}) as Record<string, unknown>;
    const asked = (typeof q.app_id === 'string' && q.app_id) || bodyApp || null;
    if (principal.appId) {
      if (asked && asked !== principal.appId) throw new HttpError(403, 'forbidden_app', `this API key acts on app ${principal.appId} only`, 'app_id');
      return { principal, appId: principal.appId };
    }
    return { principal, appId: asked };
  }

  const seriesName = (req: FastifyRequest) => {
    const name = (req.params as { name: string }).name;
    if (!SERIES_NAME.test(name)) throw new HttpError(400, 'invalid_field', 'series names are 1–128 of A-Z a-z 0-9 _ . : -', 'name');
    return name;
  };

  app.post('/v1/series/:name', async (req, reply) => {
    const name = seriesName(req);
    // {points:[…]} or one point; validated against the one it is, so errors name the right field.
    const isBatch = !!req.body && typeof req.body === 'object' && 'points' in req.body;
    const parsed = isBatch ? batchSchema.safeParse(req.body) : pointSchema.safeParse(req.body);
    if (!parsed.success) invalid(parsed.error.issues, 'points');
    const { appId } = scopeOf(req);
    const body = parsed.data;
    const raw = 'points' in body ? body.points : [body];
    const shared = 'points' in body ? body.labels : undefined;
    const points: StoredPoint[] = raw.map((p, i) => ({ ts: time(p.timestamp, `points.${i}.timestamp`), value: p.value, segment: segmentKey(p.labels ?? shared) }));
    const r = await service.ingestPoints(appId, name, points);
    return reply.code(202).send({ series: name, appId, accepted: r.stored, incidentsOpened: r.opened.map((i) => i.id), incidentsResolved: r.resolved.map((i) => i.id) });
  });

  app.post('/v1/series', async (req, reply) => {
    const parsed = definitionSchema.safeParse(req.body);
    if (!parsed.success) invalid(parsed.error.issues, 'name');
    const { appId } = scopeOf(req, parsed.data.appId);
    const intervalMs = parseInterval(parsed.data.interval);
    if (!(intervalMs >= 10_000)) throw new HttpError(400, 'invalid_field', 'interval must be at least 10s', 'interval');
    await store.putDefinition({ appId, name: parsed.data.name, sql: parsed.data.sql, intervalMs });
    return reply.code(201).send({ series: parsed.data.name, appId, sql: parsed.data.sql, intervalMs });
  });

  app.get('/v1/series', async (req) => {
    const { principal, appId } = scopeOf(req);
    const asked = (req.query as Record<string, unknown>).app_id;
    // The admin without app_id lists every app's series.
    return { series: await store.listSeries(principal.appId === null && !asked ? undefined : appId) };
  });

  app.get('/v1/series/:name', async (req) => {
    const name = seriesName(req);
    const { appId } = scopeOf(req);
    const q = req.query as Record<string, string | undefined>;
    const from = q.from ? time(q.from, 'from') : undefined;
    const to = q.to ? time(q.to, 'to') : undefined;
    const segment = q.segment ?? '';
    const points = await store.readPoints(appId, name, { from, to, segment });
    if (!points.length && !(await store.listSeries(appId)).some((s) => s.name === name)) throw new HttpError(404, 'not_found', `no series ${name}`, 'name');
    return { series: name, appId, segment, points: points.map((p) => ({ timestamp: new Date(p.ts).toISOString(), value: p.value })) };
  });

  // One after another, as given: a bad entry stops the batch there (the ones before it are stored).
  async function addChanges(appId: AppScope, inputs: unknown[], fieldPrefix: string) {
    const out: Array<{ change: Change; created: boolean }> = [];
    for (const [i, raw] of inputs.entries()) {
      const parsed = changeInputSchema.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new HttpError(400, 'invalid_field', issue.message, `${fieldPrefix}${fieldPrefix ? `${i}.` : ''}${issue.path.map(String).join('.')}`);
      }
      try {
        const r = await service.addChange(appId, parsed.data);
        out.push({ change: r.change, created: r.created });
      } catch (e) {
        if (e instanceof ChangeError) throw new HttpError(400, 'invalid_field', e.message, e.field);
        throw e;
      }
    }
    return out;
  }

  app.post('/v1/changes', async (req, reply) => {
    const parsed = changesBody.safeParse(req.body);
    if (!parsed.success) invalid(parsed.error.issues, 'body');
    const body = parsed.data as { changes?: unknown[]; appId?: unknown };
    if (Array.isArray(body.changes)) {
      const { appId } = scopeOf(req);
      const results = await addChanges(appId, body.changes, 'changes.');
      return reply.code(200).send({ results: results.map((r) => ({ id: r.change.id, created: r.created })), created: results.filter((r) => r.created).length });
    }
    const { appId } = scopeOf(req, typeof body.appId === 'string' ? body.appId : undefined);
    const [r] = await addChanges(appId, [body], '');
    return reply.code(r!.created ? 201 : 200).send({ change: r!.change, created: r!.created });
  });

  app.get('/v1/changes', async (req) => {
    const { principal, appId } = scopeOf(req);
    const q = req.query as Record<string, string | undefined>;
    const from = q.from ? time(q.from, 'from') : undefined;
    const to = q.to ? time(q.to, 'to') : undefined;
    const limit = q.limit ? Number(q.limit) : 1000;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new HttpError(400, 'invalid_field', 'limit is 1–10000', 'limit');
    const all = principal.appId === null && !q.app_id;
    return { changes: await store.listChanges({ appId: all ? undefined : appId, from, to, limit }) };
  });

  // Webhooks keep the raw body (signatures are over the exact bytes): their own JSON parser in their own context.
  void app.register(async (scope) => {
    if (scope.hasContentTypeParser('application/json')) scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
      (req as FastifyRequest).rawBody = body as Buffer;
      try {
        done(null, (body as Buffer).length ? JSON.parse((body as Buffer).toString('utf8')) : {});
      } catch {
        done(new HttpError(400, 'invalid_json', 'body is not valid JSON'), undefined);
      }
    });
    scope.post('/v1/changes/webhooks/:source', async (req, reply) => {
      const source = (req.params as { source: string }).source as WebhookSource;
      if (!WEBHOOK_SOURCES.includes(source)) throw new HttpError(404, 'not_found', `no webhook adapter for ${source} (use ${WEBHOOK_SOURCES.join(', ')})`, 'source');
      // Webhook senders cannot always set headers: the key may come as ?key=.
      const qk = (req.query as Record<string, unknown>).key;
      if (!req.headers['x-api-key'] && !req.headers.authorization && typeof qk === 'string') req.headers['x-api-key'] = qk;
      const raw = req.rawBody ?? Buffer.alloc(0);
      const h = req.headers;
      if (source === 'github' && deps.webhookSecrets?.github && !verifyGithubSignature(deps.webhookSecrets.github, raw, h['x-hub-signature-256'] as string | undefined)) {
        throw new HttpError(401, 'invalid_signature', 'X-Hub-Signature-256 does not match the body', 'X-Hub-Signature-256');
      }
      if (source === 'slack' && deps.webhookSecrets?.slack && !verifySlackSignature(deps.webhookSecrets.slack, raw, h['x-slack-request-timestamp'] as string | undefined, h['x-slack-signature'] as string | undefined, now())) {
        throw new HttpError(401, 'invalid_signature', 'X-Slack-Signature does not match the body or is stale', 'X-Slack-Signature');
      }
      let parsed;
      try {
        parsed = parseWebhook(source, h, req.body);
      } catch (e) {
        if (e instanceof WebhookError) throw new HttpError(400, 'invalid_field', e.message, e.field);
        throw e;
      }
      // Slack's handshake carries no key (it is the URL being verified); answer it before authenticating.
      if (parsed.kind === 'challenge') return reply.send({ challenge: parsed.challenge });
      const { appId } = scopeOf(req);
      const results = await addChanges(appId, parsed.changes, 'changes.');
      return reply.code(200).send({
        source,
        results: results.map((r) => ({ id: r.change.id, created: r.created, risk: r.change.risk?.level ?? null })),
        ...(parsed.ignored ? { ignored: parsed.ignored } : {}),
      });
    });
  });

  app.get('/v1/incidents', async (req) => {
    const { principal, appId } = scopeOf(req);
    const q = req.query as Record<string, string | undefined>;
    if (q.status && q.status !== 'open' && q.status !== 'resolved') throw new HttpError(400, 'invalid_field', 'status is open or resolved', 'status');
    const all = principal.appId === null && !q.app_id;
    return { incidents: await store.listIncidents({ appId: all ? undefined : appId, status: q.status as 'open' | 'resolved' | undefined }) };
  });

  const ownIncident = async (req: FastifyRequest) => {
    const principal = deps.authenticate(req);
    const inc = await store.getIncident((req.params as { id: string }).id);
    if (!inc || (principal.appId !== null && inc.appId !== principal.appId)) throw new HttpError(404, 'not_found', 'no such incident', 'id');
    return inc;
  };
  app.get('/v1/incidents/:id', async (req) => ownIncident(req));
  app.post('/v1/incidents/:id/analyze', async (req) => service.analyseIncident((await ownIncident(req)).id));

  /** Changes given in a body (normalised, echoed back with their id), else the stored ones of the app and admin-wide. */
  async function changesOf(appId: AppScope, given: unknown[] | undefined): Promise<{ echo: unknown; change: ReturnType<typeof normaliseChange> }[]> {
    if (given) {
      return given.map((raw, i) => {
        const p = changeInputSchema.safeParse(raw);
        if (!p.success) invalid(p.error.issues.map((x) => ({ ...x, path: ['changes', i, ...x.path] })), 'changes');
        const change = normaliseChange(p.data as ChangeInput, appId, now());
        return { echo: { ...(raw as object), id: change.id }, change };
      });
    }
    const stored = await store.listChanges({ appId });
    return (appId === null ? stored : [...stored, ...(await store.listChanges({ appId: null }))]).map((c) => ({ echo: c, change: c }));
  }

  // The UI's metrics page: the monitor's expected band and verdicts, the first confirmed crash, and (when there is
  // one) its ranked changes and counterfactual cost, re-run as the sensitivity, lookback and window are tuned.
  app.post('/v1/analysis', async (req) => {
    const parsed = analysisSchema.safeParse(req.body);
    if (!parsed.success) invalid(parsed.error.issues, 'series');
    const b = parsed.data;
    const { appId } = scopeOf(req);
    const segment = b.segment ?? '';
    const points = (
      typeof b.series === 'string'
        ? await store.readPoints(appId, b.series, { segment })
        : b.series.points.map((p, i) => ({ ts: time(p.timestamp, `series.points.${i}.timestamp`), value: p.value }))
    ).sort((x, y) => x.ts - y.ts);
    if (points.length < 10) throw new HttpError(typeof b.series === 'string' && points.length === 0 ? 404 : 400, points.length ? 'invalid_field' : 'not_found', 'need at least 10 points', 'series');
    const t = b.sensitivity ?? DEFAULT_THRESHOLD_Z;
    const thresholds: [number, number, number] = [t + 0.5, t, Math.max(0.5, t - 0.5)];
    const judged = monitorSeries(points, { thresholds });
    const crash = detectOnset(points, { thresholds, directions: ['drop', 'spike'] });
    let impact: unknown = null;
    let impactError: string | null = null;
    if (crash) {
      try {
        const { report, result } = impactReport({
          points,
          at: crash.onset,
          changes: await changesOf(appId, b.changes),
          segment: segmentLabels(segment),
          metric: typeof b.series === 'string' ? b.series : undefined,
          lookbackMs: b.lookback === undefined ? undefined : parseInterval(b.lookback),
          preWindowMs: b.window === undefined ? undefined : parseInterval(b.window),
          risk: deps.risk,
        });
        impact = { ...report, ongoing: result.ongoing, durationMs: result.durationMs, model: result.model };
      } catch (e) {
        if (!(e instanceof ImpactError)) throw e;
        impactError = e.message;
      }
    }
    return {
      sensitivity: t,
      points: judged.map((j) => ({ ts: new Date(j.ts).toISOString(), value: j.value, expected: j.expected, lower: j.lower, upper: j.upper, anomaly: j.anomaly })),
      crash: crash ? { ...crash, onset: new Date(crash.onset).toISOString(), detectedAt: new Date(crash.detectedAt).toISOString() } : null,
      impact,
      impactError,
    };
  });

  app.post('/v1/impact', async (req) => {
    const parsed = impactSchema.safeParse(req.body);
    if (!parsed.success) invalid(parsed.error.issues, 'series');
    const b = parsed.data;
    const { appId } = scopeOf(req);
    const segment = b.segment ?? '';
    const points =
      typeof b.series === 'string'
        ? await store.readPoints(appId, b.series, { segment })
        : b.series.points.map((p, i) => ({ ts: time(p.timestamp, `series.points.${i}.timestamp`), value: p.value }));
    if (typeof b.series === 'string' && points.length === 0) throw new HttpError(404, 'not_found', `no points in series ${b.series}${segment ? ` (segment ${segment})` : ''}`, 'series');
    let controls: { names: string[]; rows: { ts: number; values: number[] }[] } | undefined;
    if (Array.isArray(b.controls)) {
      const names = b.controls;
      const byTs = new Map<number, number[]>();
      for (const [j, n] of names.entries()) {
        const cps = await store.readPoints(appId, n, {});
        if (!cps.length) throw new HttpError(404, 'not_found', `no points in control series ${n}`, `controls.${j}`);
        for (const p of cps) {
          const row = byTs.get(p.ts) ?? new Array(names.length).fill(NaN);
          row[j] = p.value;
          byTs.set(p.ts, row);
        }
      }
      controls = { names, rows: [...byTs].map(([ts, values]) => ({ ts, values })) };
    } else if (b.controls) {
      const c = b.controls;
      controls = { names: c.names, rows: c.points.map((p, i) => ({ ts: time(p.timestamp, `controls.points.${i}.timestamp`), values: p.values })) };
    }
    const lookbackMs = b.lookback === undefined ? undefined : parseInterval(b.lookback);
    const changes = await changesOf(appId, b.changes);
    try {
      const { report, result } = impactReport({
        points,
        at: b.at === 'auto' ? 'auto' : time(b.at, 'at'),
        end: b.end === undefined || b.end === null ? null : time(b.end, 'end'),
        controls,
        changes,
        segment: segmentLabels(segment),
        metric: typeof b.series === 'string' ? b.series : undefined,
        lookbackMs,
        risk: deps.risk,
      });
      return { ...report, ongoing: result.ongoing, durationMs: result.durationMs, model: result.model };
    } catch (e) {
      if (e instanceof ImpactError) throw new HttpError(422, 'impact_unavailable', e.message, 'series');
      throw e;
    }
  });
}
