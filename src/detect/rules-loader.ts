// Rules from a directory of YAML/JSON files, with hot reload: fs.watch, debounced; a file that fails to parse or
// compile keeps its previous rules (the others update) and the error is reported with the file and field.
import { cpSync, existsSync, readdirSync, readFileSync, watch, type FSWatcher } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { compileRules, type CompiledRule } from './rules-engine.js';
import { RuleError, parseRulesText } from './rules-schema.js';

const RULE_FILE = /\.(ya?ml|json)$/i;

/** Parses and compiles one rules text (throws RuleError naming the file and field). */
export function compileRulesText(text: string, file: string): CompiledRule[] {
  return compileRules(parseRulesText(text, file), file);
}

export interface RulesLoad {
  rules: CompiledRule[];
  files: string[];
  errors: RuleError[];
}

function ruleFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => RULE_FILE.test(f) && !f.startsWith('.'))
    .sort();
}

/**
 * Loads every rules file of `dir`. `previous` holds each file's last good rules: a file that now fails keeps them.
 * Rule ids must be unique across files (a later file repeating an id is an error for that file).
 */
export function loadRulesDir(dir: string, previous: Map<string, CompiledRule[]> = new Map()): RulesLoad & { good: Map<string, CompiledRule[]> } {
  const good = new Map<string, CompiledRule[]>();
  const errors: RuleError[] = [];
  const files = ruleFiles(dir);
  const ids = new Set<string>();
  for (const f of files) {
    let rules: CompiledRule[];
    try {
      rules = compileRulesText(readFileSync(join(dir, f), 'utf8'), f);
      const dup = rules.find((r) => ids.has(r.id));
      if (dup) throw new RuleError(f, `rules(${dup.id})`, 'rule id already defined in another file');
    } catch (err) {
      errors.push(err instanceof RuleError ? err : new RuleError(f, '(file)', (err as Error).message));
      const prev = previous.get(f);
      if (!prev) continue;
      rules = prev.filter((r) => !ids.has(r.id));
    }
    for (const r of rules) ids.add(r.id);
    good.set(f, rules);
  }
  return { rules: [...good.values()].flat(), files, errors, good };
}

/** Loads a directory and fails on the first error (the CLI's `--rules DIR`). */
export function loadRulesDirStrict(dir: string): CompiledRule[] {
  const r = loadRulesDir(dir);
  if (r.errors.length > 0) throw r.errors[0];
  return r.rules;
}

export interface RulesWatcher {
  current(): CompiledRule[];
  close(): void;
}

/**
 * Watches `dir`: calls `onRules` with the full rule set after the initial load and after every change (debounced),
 * and `onError` for each file that failed (its previous rules stay in force).
 */
export function watchRules(
  dir: string,
  o: { onRules: (rules: CompiledRule[]) => void; onError?: (err: RuleError) => void; debounceMs?: number },
): RulesWatcher {
  let good = new Map<string, CompiledRule[]>();
  let rules: CompiledRule[] = [];
  const reload = () => {
    let r: ReturnType<typeof loadRulesDir>;
    try {
      r = loadRulesDir(dir, good);
    } catch (err) {
      o.onError?.(new RuleError(dir, '(directory)', (err as Error).message));
      return;
    }
    good = r.good;
    rules = r.rules;
    for (const e of r.errors) o.onError?.(e);
    o.onRules(rules);
  };
  reload();
  let timer: NodeJS.Timeout | null = null;
  let watcher: FSWatcher | null = watch(dir, { persistent: false }, (_event, file) => {
    if (file && !RULE_FILE.test(String(file))) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      reload();
    }, o.debounceMs ?? 200);
  });
  return {
    current: () => rules,
    close() {
      if (timer) clearTimeout(timer);
      watcher?.close();
      watcher = null;
    },
  };
}

/** The rules shipped with the package (rules/ at the repository root). */
export const SHIPPED_RULES_DIR = fileURLToPath(new URL('../../../rules', import.meta.url));

/** A live rules directory starts as a copy of the shipped rules (then it is the user's: never overwritten). */
export function seedRulesDir(dir: string): void {
  if (existsSync(dir)) return;
  cpSync(SHIPPED_RULES_DIR, dir, { recursive: true });
}
