// Declarative detection rules (YAML or JSON files, or the HTTP API): the zod schema is the one definition, and every
// refusal names the file, the rule and the field. Compiled into predicates and aggregators by rules-compile.ts.
//
//   - id: brute-force-ip
//     kind: window            # event | window | sequence | absence
//     key: ip                 # ip | device | user | session: whose behaviour is counted, and who the anomaly is about
//     where: { type: userLogin, success: false }
//     window: 10m
//     aggregate: count        # count | { sum: price } | { distinct: user_id }
//     threshold: 8            # raise when the aggregate reaches this
//     severity: high
//     category: brute_force
//     cooldown: 30m
import { z } from 'zod';
import YAML from 'yaml';
import { SEVERITIES } from './anomaly.js';

/** `500ms`, `30s`, `10m`, `2h`, `7d` → ms. */
export function parseRuleDuration(v: string | number): number | null {
  if (typeof v === 'number') return v >= 0 && Number.isFinite(v) ? v : null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(v);
  if (!m) return null;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms'];
}

const duration = z
  .union([z.string(), z.number()])
  .refine((v) => parseRuleDuration(v) !== null, { message: 'must be a duration like 30s, 10m, 2h, 7d (or milliseconds)' })
  .transform((v) => parseRuleDuration(v)!);

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
/** One field's test: a bare value means equality. */
export const fieldTestSchema = z.union([
  scalar,
  z
    .object({
      eq: scalar.optional(),
      ne: scalar.optional(),
      in: z.array(scalar).min(1).optional(),
      notIn: z.array(scalar).min(1).optional(),
      gt: z.number().optional(),
      gte: z.number().optional(),
      lt: z.number().optional(),
      lte: z.number().optional(),
      exists: z.boolean().optional(),
      matches: z.string().max(512).optional(),
    })
    .strict()
    .refine((o) => Object.keys(o).length > 0, { message: 'needs at least one of eq, ne, in, notIn, gt, gte, lt, lte, exists, matches' }),
]);
export type FieldTest = z.infer<typeof fieldTestSchema>;

/** Field name → test; all must hold. Fields: event columns (type, price, success, …), `props.<name>`, `model.<score>`, `country`. */
export const conditionSchema = z.record(z.string().min(1).max(128), fieldTestSchema);
export type Condition = z.infer<typeof conditionSchema>;

const key = z.enum(['ip', 'device', 'user', 'session']);

const common = {
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,79}$/, 'must be 1-80 of a-z 0-9 . _ - (lower case)'),
  description: z.string().max(500).optional(),
  enabled: z.boolean().default(true),
  severity: z.enum(SEVERITIES as [string, ...string[]]).default('medium'),
  /** What the rule indicates (brute_force, card_testing, modified_client, …); free text. */
  category: z.string().min(1).max(64).default('rule'),
  /** Apps the rule applies to (default: every app). */
  apps: z.array(z.string().min(1)).min(1).optional(),
  /** Quiet time per entity after the rule raised (default: the window, or 30m). */
  cooldown: duration.optional(),
  /** Fixed score instead of the one derived from how far past the threshold the observation is. */
  score: z.number().min(0).max(1).optional(),
};

const aggregate = z.union([
  z.literal('count'),
  z.object({ sum: z.string().min(1) }).strict(),
  z.object({ distinct: z.string().min(1) }).strict(),
]);

export const ruleSchema = z.discriminatedUnion('kind', [
  z.object({ ...common, kind: z.literal('event'), key, where: conditionSchema }).strict(),
  z
    .object({
      ...common,
      kind: z.literal('window'),
      key,
      where: conditionSchema.optional(),
      window: duration,
      aggregate: aggregate.default('count'),
      threshold: z.number().positive(),
    })
    .strict(),
  z
    .object({
      ...common,
      kind: z.literal('sequence'),
      key,
      /** A … */
      first: conditionSchema,
      /** … then B within `within`. */
      then: conditionSchema,
      within: duration,
    })
    .strict(),
  z
    .object({
      ...common,
      kind: z.literal('absence'),
      key,
      /** B (this event) … */
      event: conditionSchema,
      /** … without a prior A in the last `within` (default: ever, as far as the engine remembers). */
      without: conditionSchema,
      within: duration.optional(),
    })
    .strict(),
]);
export type RuleSpec = z.infer<typeof ruleSchema>;
export type RuleKey = z.infer<typeof key>;

const fileSchema = z.union([z.object({ rules: z.array(z.unknown()) }).strict(), z.array(z.unknown())]);

export class RuleError extends Error {
  constructor(
    readonly file: string,
    readonly field: string,
    readonly detail: string,
  ) {
    super(`${file}: ${field}: ${detail}`);
    this.name = 'RuleError';
  }
}

/** Validates one rule; throws RuleError naming `where` (file, rule index/id) and the field. */
export function parseRule(input: unknown, where = '(rule)', prefix = ''): RuleSpec {
  const r = ruleSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const id = input && typeof input === 'object' && typeof (input as { id?: unknown }).id === 'string' ? ` (${(input as { id: string }).id})` : '';
    const path = issue.path.map(String).join('.');
    let msg = issue.message;
    if (issue.code === 'invalid_union' && issue.path.length === 0) msg = 'kind must be one of event, window, sequence, absence';
    if (/expected one of|Invalid discriminator/i.test(msg) && path === 'kind') msg = 'kind must be one of event, window, sequence, absence';
    if (issue.code === 'unrecognized_keys') msg = `unknown field(s) ${issue.keys.join(', ')}`;
    throw new RuleError(where, `${prefix}${id}${path ? `.${path}` : ''}`, msg);
  }
  return r.data;
}

/** Parses a rules file (YAML or JSON: a list of rules, `{rules: [...]}`, or one rule). */
export function parseRulesText(text: string, file = '(rules)'): RuleSpec[] {
  let doc: unknown;
  try {
    doc = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text, { prettyErrors: true });
  } catch (err) {
    throw new RuleError(file, '(syntax)', (err as Error).message.split('\n')[0]!);
  }
  if (doc === null || doc === undefined) return [];
  let items: unknown[];
  let base = 'rules';
  if (doc && typeof doc === 'object' && !Array.isArray(doc) && 'kind' in (doc as object)) {
    items = [doc];
    base = 'rule';
  } else {
    const f = fileSchema.safeParse(doc);
    if (!f.success) throw new RuleError(file, '(file)', 'must be a list of rules, {rules: [...]}, or one rule with a kind');
    items = Array.isArray(f.data) ? f.data : f.data.rules;
  }
  const specs = items.map((item, i) => parseRule(item, file, base === 'rule' ? 'rule' : `rules[${i}]`));
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.id)) throw new RuleError(file, `rules(${s.id})`, 'duplicate rule id');
    seen.add(s.id);
  }
  return specs;
}
