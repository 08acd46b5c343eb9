// Explore: read-only SQL over `events` (and `anomalies`), results as a table and a chart, saved queries, CSV export.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api } from '../api';
import { TimeChart } from '../chart';
import type { PageProps } from '../main';
import { Bars, Card, DataTable, download, ErrorBox, fmtInt, toCsv } from '../ui';

const DEFAULT_SQL = `SELECT date_trunc('hour', ts) AS hour, count(*) AS events, count(DISTINCT device_id) AS devices
FROM events
WHERE ts > now() - INTERVAL 1 DAY
GROUP BY 1 ORDER BY 1`;

interface Result {
  columns: string[];
  types: string[];
  rows: unknown[][];
  truncated: boolean;
  elapsedMs: number;
}
interface Saved {
  id: string;
  name: string;
  sql: string;
  appId: string | null;
}

const NUMERIC = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|DECIMAL.*)$/;
const TIME = /^(TIMESTAMP.*|DATE)$/;
const PALETTE = ['#1f6feb', '#8250df', '#bf3989', '#1a7f37', '#bc4c00'];

/** A chart when the result has a shape for one: time + numbers → lines; a label + a number → bars. */
function ResultChart({ r }: { r: Result }) {
  const nums = r.types.map((t, i) => (NUMERIC.test(t) && i > 0 ? i : -1)).filter((i) => i > 0);
  if (!r.rows.length || !nums.length) return <p class="muted">No chart: the result needs a first column and a numeric column.</p>;
  if (TIME.test(r.types[0]!)) {
    const rows = [...r.rows].sort((a, b) => Date.parse(String(a[0])) - Date.parse(String(b[0])));
    const x = rows.map((row) => Date.parse(String(row[0])) / 1000);
    const lines = nums.slice(0, 5).map((i, k) => ({ label: r.columns[i]!, values: rows.map((row) => (row[i] === null ? null : Number(row[i]))), color: PALETTE[k]! }));
    return <TimeChart title="Query result over time" x={x} lines={lines} height={240} />;
  }
  const i = nums[0]!;
  return <Bars label="Query result" items={r.rows.slice(0, 30).map((row) => ({ name: String(row[0]), value: Number(row[i]) }))} />;
}

export default function Explore(_: PageProps) {
  const [sql, setSql] = useState(() => sessionStorage.getItem('causality.sql') ?? DEFAULT_SQL);
  const [result, setResult] = useState<Result | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [running, setRunning] = useState(false);
  const [saved, setSaved] = useState<Saved[]>([]);
  const [name, setName] = useState('');
  const [saveMsg, setSaveMsg] = useState<string | null>(null);

  const loadSaved = () => api<{ items: Saved[] }>('/v1/queries/saved').then((r) => setSaved(r.items), setError);
  useEffect(() => {
    loadSaved();
  }, []);

  const run = async () => {
    setRunning(true);
    setError(null);
    sessionStorage.setItem('causality.sql', sql);
    try {
      setResult(await api<Result>('/v1/query', { body: { sql } }));
    } catch (e) {
      setError(e);
    } finally {
      setRunning(false);
    }
  };
  const save = async (e: Event) => {
    e.preventDefault();
    setSaveMsg(null);
    try {
      const q = await api<Saved>('/v1/queries/saved', { body: { name, sql } });
      setSaveMsg(`Saved “${q.name}”.`);
      setName('');
      loadSaved();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (q: Saved) => {
    await api(`/v1/queries/saved/${encodeURIComponent(q.id)}`, { method: 'DELETE' }).catch(setError);
    loadSaved();
  };

  const chart = useMemo(() => (result ? <ResultChart r={result} /> : null), [result]);

  return (
    <div class="stack">
      <div class="page-head">
        <h1>Explore</h1>
      </div>
    <div class="split">
      <Card title="Saved queries" id="saved">
        {saved.length === 0 && <p class="muted">None yet: write a query, name it and save it.</p>}
        <ul class="plain saved-list" aria-label="Saved queries">
          {saved.map((q) => (
            <li class="row">
              <button type="button" class="link" onClick={() => setSql(q.sql)} title={q.sql}>
                {q.name}
              </button>
              <button type="button" class="danger" aria-label={`Delete saved query ${q.name}`} onClick={() => remove(q)}>
                ×
              </button>
            </li>
          ))}
        </ul>
        <form onSubmit={save} class="field" style={{ marginTop: '12px' }}>
          <label for="save-name">Save the current query as</label>
          <div class="row">
            <input id="save-name" value={name} onInput={(e) => setName(e.currentTarget.value)} required maxLength={200} placeholder="name" />
            <button type="submit" disabled={!name.trim()}>
              Save
            </button>
          </div>
          {saveMsg && (
            <p class="success" role="status">
              {saveMsg}
            </p>
          )}
        </form>
      </Card>
      <div class="stack">
        <Card
          title="SQL"
          id="sql"
          actions={
            <span class="muted">
              tables: <code>events</code>, <code>anomalies</code> · Ctrl+Enter runs
            </span>
          }
        >
          <label for="sql-editor" class="sr-only">
            SQL query
          </label>
          <textarea
            id="sql-editor"
            class="code"
            rows={8}
            spellcheck={false}
            value={sql}
            onInput={(e) => setSql(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
                e.preventDefault();
                run();
              }
            }}
          />
          <div class="row" style={{ marginTop: '8px' }}>
            <button type="button" class="primary" onClick={run} disabled={running || !sql.trim()}>
              {running ? 'Running…' : 'Run'}
            </button>
            <button type="button" onClick={() => result && download('causality-query.csv', toCsv(result.columns, result.rows))} disabled={!result}>
              Export CSV
            </button>
            {result && (
              <span class="muted" role="status" data-testid="result-summary">
                {fmtInt(result.rows.length)} rows{result.truncated ? ' (truncated at the row limit)' : ''} in {result.elapsedMs} ms
              </span>
            )}
          </div>
          <ErrorBox error={error} />
        </Card>
        {result && (
          <>
            <Card title="Chart" id="result-chart">
              {chart}
            </Card>
            <Card title="Rows" id="result-rows">
              <DataTable caption="Query result" columns={result.columns} rows={result.rows} />
            </Card>
          </>
        )}
      </div>
    </div>
    </div>
  );
}
