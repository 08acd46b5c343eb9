// Read-only SQL: DuckDB parses the query (json_serialize_sql only serialises SELECT statements) and we walk
// its tree. Allowed: one SELECT over the product's tables and the query's own CTEs, with ordinary functions.
// Refused: writes, DDL, settings, PRAGMA, file/URL readers (table functions, replacement scans), catalogs.
// DuckDB itself also runs with external access off and its configuration locked (defence in depth).

export const QUERYABLE_TABLES = new Set(['events', 'anomalies']);
const ALLOWED_TABLE_FUNCTIONS = new Set(['range', 'generate_series', 'unnest']);
const PLAIN_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DENIED_FUNCTIONS = new Set(['getenv', 'current_setting', 'read_text', 'read_blob', 'query', 'query_table']);

export type GuardResult = { ok: true; tables: Set<string> } | { ok: false; code: 'read_only' | 'sql_error' | 'forbidden_table' | 'forbidden_function'; message: string };

/** A node of DuckDB's serialised parse tree (json_serialize_sql). */
export interface Node {
  [k: string]: unknown;
}

export function checkSerializedSql(serialized: string): GuardResult {
  let tree: { error?: boolean; error_message?: string; error_type?: string; statements?: Node[] };
  try {
    tree = JSON.parse(serialized);
  } catch {
    return { ok: false, code: 'sql_error', message: 'could not parse the query' };
  }
  if (tree.error) {
    const msg = tree.error_message ?? 'invalid SQL';
    if (/Only SELECT statements/i.test(msg)) {
      return { ok: false, code: 'read_only', message: 'only read-only SELECT queries are allowed' };
    }
    return { ok: false, code: 'sql_error', message: msg };
  }
  const statements = tree.statements ?? [];
  if (statements.length !== 1) return { ok: false, code: 'sql_error', message: 'send exactly one statement' };

  const cteNames = new Set<string>();
  collectCteNames(statements[0], cteNames);
  const tables = new Set<string>();
  let verdict: GuardResult = { ok: true, tables };
  walk(statements[0], (node) => {
    if (!verdict.ok) return;
    if (node.type === 'BASE_TABLE') {
      const name = String(node.table_name ?? '');
      if (node.schema_name || node.catalog_name) {
        verdict = { ok: false, code: 'forbidden_table', message: `qualified names are not allowed: ${[node.catalog_name, node.schema_name, name].filter(Boolean).join('.')}` };
      } else if (!PLAIN_IDENTIFIER.test(name)) {
        // A quoted name with a path or an extension is a file to DuckDB (replacement scan), even when a CTE elsewhere
        // in the query has that name: refuse it whatever the scope.
        verdict = { ok: false, code: 'forbidden_table', message: `table names must be plain identifiers: "${name}"` };
      } else if (!QUERYABLE_TABLES.has(name.toLowerCase()) && !cteNames.has(name.toLowerCase())) {
        verdict = { ok: false, code: 'forbidden_table', message: `unknown table "${name}"; queryable: ${[...QUERYABLE_TABLES].join(', ')}` };
      } else if (!cteNames.has(name.toLowerCase())) tables.add(name.toLowerCase());
    } else if (node.type === 'TABLE_FUNCTION') {
      const fn = node.function as Node | undefined;
      const name = String(fn?.function_name ?? '').toLowerCase();
      if (!ALLOWED_TABLE_FUNCTIONS.has(name)) {
        verdict = { ok: false, code: 'forbidden_function', message: `table function ${name}() is not allowed` };
      }
    } else if (node.class === 'FUNCTION') {
      const name = String(node.function_name ?? '').toLowerCase();
      if (DENIED_FUNCTIONS.has(name)) verdict = { ok: false, code: 'forbidden_function', message: `function ${name}() is not allowed` };
    }
  });
  return verdict;
}

function collectCteNames(node: unknown, out: Set<string>): void {
  walk(node, (n) => {
    const map = (n.cte_map as { map?: Array<{ key: string }> } | undefined)?.map;
    if (Array.isArray(map)) for (const e of map) out.add(String(e.key).toLowerCase());
  });
}

/** Visits every object of a serialised parse tree, depth first. */
export function walk(node: unknown, visit: (n: Node) => void): void {
  if (Array.isArray(node)) {
    for (const c of node) walk(c, visit);
  } else if (node && typeof node === 'object') {
    visit(node as Node);
    for (const v of Object.values(node)) if (v && typeof v === 'object') walk(v, visit);
  }
}
