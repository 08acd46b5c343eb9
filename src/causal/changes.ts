// Change events: deploys, commits, merged pull requests, ticket transitions, chat messages, builds. One shape for all
// sources; the zod schema is what POST /v1/changes, the JSONL files of `causality impact --changes` and the importers
// accept.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { RiskAssessment } from './risk.js';

export const CHANGE_KINDS = ['deploy', 'commit', 'pull_request', 'ticket', 'message', 'build', 'config', 'other'] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

// No NUL: PostgreSQL text cannot hold one (the store would fail), and no client means one.
const text = (max: number) => z.string().max(max).regex(/^[^\u0000]*$/, 'must not contain a NUL character');

export const changeInputSchema = z.object({
  id: text(300).min(1).optional(),
  service: text(200).optional(),
  component: text(200).optional(),
  version: text(200).optional(),
  commit: text(100).optional(),
  author: text(300).optional(),
  title: text(1000).optional(),
  description: text(20_000).optional(),
  url: text(2000).optional(),
  /** ISO 8601 or epoch ms; default: when it was received. */
  time: z.union([z.string(), z.number()]).optional(),
  paths: z.array(text(1000)).max(5000).optional(),
  source: text(50).optional(),
  kind: z.enum(CHANGE_KINDS).optional(),
  /** Segments the change targets (e.g. platform=android, "android"): used for segment overlap. */
  segments: z.array(text(200)).max(100).optional(),
  size: z.object({ additions: z.number().int().min(0).optional(), deletions: z.number().int().min(0).optional(), files: z.number().int().min(0).optional() }).optional(),
  appId: text(100).optional(),
});
export type ChangeInput = z.infer<typeof changeInputSchema>;

export interface Change {
  id: string;
  appId: string | null;
  source: string;
  kind: ChangeKind;
  service: string | null;
  component: string | null;
  version: string | null;
  commit: string | null;
  author: string | null;
  title: string;
  description: string | null;
  url: string | null;
  /** ISO 8601. */
  time: string;
  paths: string[];
  segments: string[];
  size: { additions?: number; deletions?: number; files?: number } | null;
  risk: RiskAssessment | null;
}

export class ChangeError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/** Epoch ms from ISO 8601, epoch seconds or epoch ms (number or digits). */
export function parseTime(v: string | number, field = 'time'): number {
  if (typeof v === 'number' || /^\d+(\.\d+)?$/.test(v)) {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new ChangeError('not a time', field);
    return n < 1e11 ? Math.round(n * 1000) : Math.round(n);
  }
  const ms = Date.parse(v);
  if (!Number.isFinite(ms)) throw new ChangeError('must be ISO 8601 or epoch ms', field);
  return ms;
}

/** Validated input → stored shape (no risk yet). `appId` is the caller's app (null for admin-wide changes). */
export function normaliseChange(input: ChangeInput, appId: string | null, now = Date.now()): Change {
  const timeMs = input.time === undefined ? now : parseTime(input.time);
  const title =
    input.title?.trim() ||
    (input.version ? `deploy ${input.service ?? input.component ?? ''}@${input.version}`.replace(' @', ' ') : '') ||
    input.description?.split('\n')[0]?.slice(0, 200) ||
    (input.commit ? `commit ${input.commit.slice(0, 12)}` : 'change');
  return {
    id: input.id ?? randomUUID(),
    appId,
    source: input.source ?? 'api',
    kind: input.kind ?? (input.version ? 'deploy' : input.commit ? 'commit' : 'other'),
    service: input.service ?? null,
    component: input.component ?? null,
    version: input.version ?? null,
    commit: input.commit ?? null,
    author: input.author ?? null,
    title,
    description: input.description ?? null,
    url: input.url ?? null,
    time: new Date(timeMs).toISOString(),
    paths: input.paths ?? [],
    segments: input.segments ?? [],
    size: input.size ?? null,
    risk: null,
  };
}

/** Parses changes as JSON lines (one ChangeInput per line; blank lines and # comments skipped). */
export function parseChangesJsonl(text: string, appId: string | null = null): { input: ChangeInput; change: Change }[] {
  const out: { input: ChangeInput; change: Change }[] = [];
  text.split('\n').forEach((line, i) => {
    const l = line.trim();
    if (!l || l.startsWith('#')) return;
    let raw: unknown;
    try {
      raw = JSON.parse(l);
    } catch (e) {
      throw new ChangeError(`line ${i + 1}: not JSON (${(e as Error).message})`, `line ${i + 1}`);
    }
    const parsed = changeInputSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ChangeError(`line ${i + 1}: ${issue.path.join('.')}: ${issue.message}`, issue.path.join('.'));
    }
    out.push({ input: raw as ChangeInput, change: normaliseChange(parsed.data, appId) });
  });
  return out;
}
