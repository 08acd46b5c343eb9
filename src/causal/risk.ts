// Risk of a change: a deterministic, explainable rule classifier (keywords, touched paths, size, component mapping),
// and optionally an OpenAI-compatible chat-completions model with a timeout that falls back to the rules. One change
// per model request, answered with the change's id, so an answer can never be attached to the wrong change (seed 002
// matched a batch of answers back by position).
import { z } from 'zod';
import type { Change } from './changes.js';

export type RiskLevel = 'HIGH' | 'MEDIUM' | 'LOW';

export interface RiskAssessment {
  level: RiskLevel;
  component: string | null;
  reasons: string[];
  classifier: 'rules' | 'llm';
  /** Rule points behind the level (rules only). */
  points?: number;
}

export interface RiskConfig {
  /** Component → path prefixes/globs (`src/payments/`, `android/**`) and keywords that map a change to it. */
  components?: Record<string, { paths?: string[]; keywords?: string[] }>;
  /** Extra keywords per level, added to the defaults. */
  highKeywords?: string[];
  mediumKeywords?: string[];
}

const HIGH: Array<[RegExp, string]> = [
  [/\bhot-?fix/i, 'hotfix'],
  [/\bmigrat(e|ion|ions)\b/i, 'migration'],
  [/\b(schema|alter table|drop table|ddl)\b/i, 'schema change'],
  [/\b(payments?|billing|checkout|purchase|stripe|paypal|invoice)\b/i, 'payment path'],
  [/\b(rollback|roll back|revert(ed|s)?)\b/i, 'rollback/revert'],
  [/\b(database|db|postgres|mysql|redis|connection pool)\b/i, 'database'],
  [/\b(auth|login|oauth|session|token|password|sso)\b/i, 'authentication'],
  [/\b(feature flag|flag flip|kill ?switch|toggle|disable[ds]?|turn(ed)? off)\b/i, 'flag flip / disable'],
  [/\b(delete[ds]?|remove[ds]? (the )?(endpoint|api|table|column)|drop)\b/i, 'deletion'],
  [/\b(timeout|rate limit|throttl)/i, 'timeouts/limits'],
];
const MEDIUM: Array<[RegExp, string]> = [
  [/\b(refactor|rewrite|restructure)/i, 'refactor'],
  [/\b(upgrade|bump|dependency|dependencies|sdk)\b/i, 'dependency upgrade'],
  [/\b(release|deploy(ed|ment)?|rollout|roll out)\b/i, 'release'],
  [/\b(feat|feature|new)\b/i, 'feature'],
  [/\b(perf|performance|optimi[sz]e|cache|caching)\b/i, 'performance/cache'],
  [/\b(api|endpoint|client|network|retry|async|sync)\b/i, 'API/network'],
  [/\b(config|configuration|setting)s?\b/i, 'configuration'],
];
const LOW: Array<[RegExp, string]> = [
  [/\b(docs?|readme|documentation|changelog)\b/i, 'documentation'],
  [/\b(typo|comment|comments|wording|copy)\b/i, 'cosmetic'],
  [/\b(lint|format|prettier|style)\b/i, 'formatting'],
  [/\b(tests?|spec)\b(?! (fail|broke))/i, 'tests'],
  [/\bchore\b/i, 'chore'],
];
const RISKY_PATHS: Array<[RegExp, string]> = [
  [/(^|\/)(migrations?|db|schema|sql)(\/|$)|\.sql$/i, 'database/migrations'],
  [/(^|\/)(payments?|billing|checkout|purchase)/i, 'payment code'],
  [/(^|\/)(auth|login|session)/i, 'authentication code'],
  [/(^|\/)(config|\.env|settings|flags?)(\/|\.|$)/i, 'configuration'],
  [/(^|\/)(infra|terraform|k8s|kubernetes|helm|deploy)(\/|$)/i, 'infrastructure'],
];
const SAFE_PATH = /(\.(md|rst|txt|png|jpg|svg)$)|(^|\/)(docs?|tests?|__tests__|spec|\.github)\//i;

const PLATFORM_WORDS = ['android', 'ios', 'web', 'windows', 'macos', 'linux', 'backend', 'api'];

function globToRegExp(glob: string): RegExp {
  const esc = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*/g, '\u0000').replace(/\*/g, '[^/]*').replace(/\u0000/g, '.*').replace(/\?/g, '.');
  return new RegExp(glob.includes('*') ? `^${esc}$` : `^${esc}`);
}

export function changeText(c: Pick<Change, 'title' | 'description' | 'service' | 'component' | 'version'>): string {
  return [c.title, c.description ?? '', c.service ?? '', c.component ?? ''].join('\n');
}

/** The component a change belongs to: config mapping (paths, then keywords), then the change's own, then a platform word. */
export function componentOf(change: Change, cfg: RiskConfig = {}): { component: string | null; reason: string | null } {
  const text = changeText(change).toLowerCase();
  for (const [name, rule] of Object.entries(cfg.components ?? {})) {
    const globs = (rule.paths ?? []).map(globToRegExp);
    const hits = change.paths.filter((p) => globs.some((g) => g.test(p)));
    if (hits.length) return { component: name, reason: `touches ${hits[0]}${hits.length > 1 ? ` (+${hits.length - 1})` : ''} → component ${name}` };
  }
  for (const [name, rule] of Object.entries(cfg.components ?? {})) {
    const kw = (rule.keywords ?? []).find((k) => new RegExp(`\\b${k.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`, 'i').test(text));
    if (kw) return { component: name, reason: `mentions "${kw}" → component ${name}` };
  }
  if (change.component) return { component: change.component, reason: null };
  if (change.service) return { component: change.service, reason: null };
  const word = PLATFORM_WORDS.find((w) => new RegExp(`\\b${w}\\b`, 'i').test(text) || change.paths.some((p) => p.toLowerCase().startsWith(`${w}/`)));
  return word ? { component: word, reason: `mentions ${word}` } : { component: null, reason: null };
}

export function classifyRisk(change: Change, cfg: RiskConfig = {}): RiskAssessment {
  // What the change says it does (its component's name alone is not a risk signal; the mapping handles components).
  const text = [change.title, change.description ?? ''].join('\n');
  const reasons: string[] = [];
  let points = 0;
  const extra = (words: string[] | undefined, label: string): Array<[RegExp, string]> =>
    (words ?? []).map((w) => [new RegExp(`\\b${w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`, 'i'), `${label} "${w}"`]);
  const high = [...HIGH, ...extra(cfg.highKeywords, 'configured keyword')].filter(([re]) => re.test(text));
  const medium = [...MEDIUM, ...extra(cfg.mediumKeywords, 'configured keyword')].filter(([re]) => re.test(text));
  const low = LOW.filter(([re]) => re.test(text));
  high.slice(0, 2).forEach(([, why], i) => {
    points += i === 0 ? 3 : 1.5;
    reasons.push(`high-risk keyword: ${why}`);
  });
  if (medium.length) {
    points += medium.length > 1 ? 2 : 1.5;
    reasons.push(`medium-risk keyword: ${medium.slice(0, 2).map(([, w]) => w).join(', ')}`);
  }
  const risky = RISKY_PATHS.filter(([re]) => change.paths.some((p) => re.test(p)));
  if (risky.length) {
    points += 2;
    reasons.push(`touches ${risky.map(([, w]) => w).join(', ')}`);
  }
  const onlySafe = change.paths.length > 0 && change.paths.every((p) => SAFE_PATH.test(p));
  if (onlySafe) {
    points -= 3;
    reasons.push('touches only docs/tests');
  } else if (low.length && !high.length) {
    points -= 2;
    reasons.push(`low-risk wording: ${low.map(([, w]) => w).join(', ')}`);
  }
  const lines = (change.size?.additions ?? 0) + (change.size?.deletions ?? 0);
  const files = change.size?.files ?? change.paths.length;
  if (lines > 1000 || files > 30) {
    points += 2;
    reasons.push(`large change (${lines ? `${lines} lines, ` : ''}${files} files)`);
  } else if (lines > 300 || files > 10) {
    points += 1;
    reasons.push(`sizeable change (${lines ? `${lines} lines, ` : ''}${files} files)`);
  }
  if (change.kind === 'deploy' && !onlySafe) {
    points += 0.5;
    reasons.push('a deploy reaches users directly');
  }
  const { component, reason } = componentOf(change, cfg);
  if (reason) reasons.push(reason);
  const level: RiskLevel = points >= 3 ? 'HIGH' : points >= 1.5 ? 'MEDIUM' : 'LOW';
  if (!reasons.length) reasons.push('no risk signal in title, description, paths or size');
  return { level, component, reasons, classifier: 'rules', points };
}

export interface LlmConfig {
  baseUrl: string;
  apiKey?: string;
  model: string;
  timeoutMs?: number;
  /** Injected for tests; defaults to global fetch. */
  fetch?: typeof fetch;
}

const llmAnswer = z.object({
  id: z.string().optional(),
  risk: z.enum(['HIGH', 'MEDIUM', 'LOW']),
  component: z.string().nullable().optional(),
  reasons: z.array(z.string()).min(1).max(10),
});

/**
 * A classifier that asks an OpenAI-compatible `POST {baseUrl}/chat/completions` and falls back to the rules (with the
 * reason why) on timeout, HTTP error or an answer that is not the JSON asked for.
 */
export function createLlmClassifier(llm: LlmConfig, cfg: RiskConfig = {}): (change: Change) => Promise<RiskAssessment> {
  const doFetch = llm.fetch ?? fetch;
  const url = `${llm.baseUrl.replace(/\/$/, '')}/chat/completions`;
  return async function classifyWithLlm(change: Change): Promise<RiskAssessment> {
    const fallback = (why: string): RiskAssessment => {
      const r = classifyRisk(change, cfg);
      return { ...r, reasons: [...r.reasons, `model unavailable (${why}): rule classifier used`] };
    };
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), llm.timeoutMs ?? 10_000);
    try {
      const res = await doFetch(url, {
        method: 'POST',
        signal: ctrl.signal,
        headers: { 'content-type': 'application/json', ...(llm.apiKey ? { authorization: `Bearer ${llm.apiKey}` } : {}) },
        body: JSON.stringify({
          model: llm.model,
          temperature: 0,
          messages: [
            {
              role: 'system',
              content:
                'You classify the production risk of one software change. Answer with JSON only: ' +
                '{"id": <the change id>, "risk": "HIGH"|"MEDIUM"|"LOW", "component": <affected component or null>, "reasons": [<short reasons>]}.',
            },
            {
              role: 'user',
              content: JSON.stringify({
                id: change.id,
                kind: change.kind,
                title: change.title,
                description: change.description?.slice(0, 4000) ?? null,
                service: change.service,
                component: change.component,
                paths: change.paths.slice(0, 100),
                size: change.size,
              }),
            },
          ],
        }),
      });
      if (!res.ok) return fallback(`HTTP ${res.status}`);
      const body = (await res.json()) as { choices?: Array<{ message?: { content?: string } }> };
      const content = body.choices?.[0]?.message?.content;
      if (typeof content !== 'string') return fallback('no message content');
      const json = /\{[\s\S]*\}/.exec(content)?.[0];
      let parsed: unknown;
      try {
        parsed = JSON.parse(json ?? '');
      } catch {
        return fallback('answer is not JSON');
      }
      const a = llmAnswer.safeParse(parsed);
      if (!a.success) return fallback('answer does not match the schema');
      if (a.data.id !== undefined && a.data.id !== change.id) return fallback('answer is about another change');
      return { level: a.data.risk, component: a.data.component ?? componentOf(change, cfg).component, reasons: a.data.reasons, classifier: 'llm' };
    } catch (e) {
      return fallback(ctrl.signal.aborted ? 'timeout' : (e as Error).message);
    } finally {
      clearTimeout(timer);
    }
  };
}
