// Which days of `events` a query can read, from its parsed tree: the warehouse then opens (with S3: fetches) only
// those date partitions. Sound, not clever: a bound is taken only from `ts <op> constant` conjuncts of the WHERE of
// every SELECT that reads events directly; any other use of events (a join, a CTE named events, OR, a computed
// bound) leaves that side open. `date` partitions hold the UTC day of `ts`, so a day bound on ts is one on date.
import { walk, type Node } from './sql-guard.js';

export interface DateBounds {
  /** Inclusive UTC days, YYYY-MM-DD. */
  fromDate?: string;
  toDate?: string;
}

/** A literal day or naive timestamp (no zone: a zone could move it to another UTC day). */
const DAY_LITERAL = /^(\d{4}-\d{2}-\d{2})(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$/;
const DAY_TYPES = new Set(['VARCHAR', 'DATE', 'TIMESTAMP']);

/** The day bounds of `events` in a query serialised by DuckDB's json_serialize_sql (already checked by the guard). */
export function eventsDateBounds(serialized: string): DateBounds {
  let tree: { statements?: Node[] };
  try {
    tree = JSON.parse(serialized);
  } catch {
    return {};
  }
  const root = tree.statements?.[0];
  if (!root) return {};
  let references = 0;
  let shadowed = false;
  const perSelect: DateBounds[] = [];
  walk(root, (n) => {
    const ctes = (n.cte_map as { map?: Array<{ key: string }> } | undefined)?.map;
    if (Array.isArray(ctes) && ctes.some((c) => String(c.key).toLowerCase() === 'events')) shadowed = true;
    if (n.type === 'BASE_TABLE' && String(n.table_name).toLowerCase() === 'events') references++;
    const from = n.from_table as Node | undefined;
    if (n.type === 'SELECT_NODE' && from?.type === 'BASE_TABLE' && String(from.table_name).toLowerCase() === 'events') {
      perSelect.push(boundsOfWhere(n.where_clause as Node | null, String(from.alias || 'events').toLowerCase()));
    }
  });
  if (shadowed || references === 0 || perSelect.length !== references) return {};
  const out: DateBounds = {};
  if (perSelect.every((b) => b.fromDate)) out.fromDate = perSelect.map((b) => b.fromDate!).sort()[0];
  if (perSelect.every((b) => b.toDate)) out.toDate = perSelect.map((b) => b.toDate!).sort().at(-1);
  return out;
}

function boundsOfWhere(where: Node | null, alias: string): DateBounds {
  const b: DateBounds = {};
  const lower = (day: string) => (b.fromDate = b.fromDate && b.fromDate > day ? b.fromDate : day);
  const upper = (day: string) => (b.toDate = b.toDate && b.toDate < day ? b.toDate : day);
  for (const c of conjuncts(where)) {
    if (c.type === 'COMPARE_BETWEEN' && isTs(c.input, alias)) {
      const lo = dayOf(c.lower);
      const hi = dayOf(c.upper);
      if (lo) lower(lo);
      if (hi) upper(hi);
      continue;
    }
    if (c.class !== 'COMPARISON') continue;
    let op = String(c.type);
    let day: string | null = null;
    if (isTs(c.left, alias)) day = dayOf(c.right);
    else if (isTs(c.right, alias)) {
      day = dayOf(c.left);
      op = FLIPPED[op] ?? '';
    }
    if (!day) continue;
    if (op === 'COMPARE_EQUAL' || op === 'COMPARE_GREATERTHAN' || op === 'COMPARE_GREATERTHANOREQUALTO') lower(day);
    if (op === 'COMPARE_EQUAL' || op === 'COMPARE_LESSTHAN' || op === 'COMPARE_LESSTHANOREQUALTO') upper(day);
  }
  return b;
}

const FLIPPED: Record<string, string> = {
  COMPARE_EQUAL: 'COMPARE_EQUAL',
  COMPARE_GREATERTHAN: 'COMPARE_LESSTHAN',
  COMPARE_GREATERTHANOREQUALTO: 'COMPARE_LESSTHANOREQUALTO',
  COMPARE_LESSTHAN: 'COMPARE_GREATERTHAN',
  COMPARE_LESSTHANOREQUALTO: 'COMPARE_GREATERTHANOREQUALTO',
};

function conjuncts(n: Node | null | undefined): Node[] {
  if (!n) return [];
  if (n.type === 'CONJUNCTION_AND') return (n.children as Node[]).flatMap(conjuncts);
  return [n];
}

function isTs(n: unknown, alias: string): boolean {
  const node = n as Node | undefined;
  if (node?.class !== 'COLUMN_REF') return false;
  const names = (node.column_names as string[]).map((s) => s.toLowerCase());
  return (names.length === 1 && names[0] === 'ts') || (names.length === 2 && names[0] === alias && names[1] === 'ts');
}

/** The UTC day of a constant, or of a cast of a constant to DATE/TIMESTAMP; null for anything else. */
function dayOf(n: unknown): string | null {
  let node = n as Node | undefined;
  if (node?.class === 'CAST') {
    if (node.try_cast || !DAY_TYPES.has(String((node.cast_type as Node | undefined)?.id))) return null;
    node = node.child as Node;
  }
  if (node?.class !== 'CONSTANT') return null;
  const value = node.value as { type?: { id?: string }; is_null?: boolean; value?: unknown } | undefined;
  if (!value || value.is_null || !DAY_TYPES.has(String(value.type?.id)) || typeof value.value !== 'string') return null;
  return DAY_LITERAL.exec(value.value.trim())?.[1] ?? null;
}

