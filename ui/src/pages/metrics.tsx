// Metrics: a business series (stored, or a CSV uploaded here with its columns mapped) with the monitor's expected
// band, the crash's onset marked and its impact period shaded, the changes ranked as its cause with reasons, and the
// cumulative cost with its 95 % interval. Sensitivity, lookback and window re-run the analysis as they move.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, qs } from '../api';
import { TimeChart } from '../chart';
import type { PageProps } from '../main';
import { Badge, Card, download, ErrorBox, fmtNum, fmtTime, parseCsv, Stat, toCsv } from '../ui';

interface Interval {
  estimate: number;
  lower: number;
  upper: number;
}
interface Analysis {
  sensitivity: number;
  points: Array<{ ts: string; value: number; expected: number | null; lower: number | null; upper: number | null; anomaly: boolean }>;
  crash: { onset: string; detectedAt: string; direction: string; explanation: string } | null;
  impact: {
    onset: string;
    end: string;
    ongoing: boolean;
    durationMs: number;
    effect: { cumulative: Interval; average: Interval; relative: Interval };
    candidates: Array<{ change: any; score: number; reasons: string[] }>;
  } | null;
  impactError: string | null;
}
interface Mapped {
  name: string;
  header: string[];
  rows: string[][];
}

const CHANGE_KINDS = ['deploy', 'commit', 'pull_request', 'ticket', 'message', 'build', 'config', 'other'];
const CHANGE_FIELDS = [
  { key: 'time', label: 'Time', required: true },
  { key: 'title', label: 'Title', required: true },
  { key: 'id', label: 'Id' },
  { key: 'kind', label: 'Kind' },
  { key: 'service', label: 'Service' },
  { key: 'description', label: 'Description' },
] as const;

/** Epoch ms from an ISO string, epoch seconds or ms; NaN when it is none. */
const toMs = (v: string) => (/^\d+(\.\d+)?$/.test(v.trim()) ? (Number(v) < 1e11 ? Number(v) * 1000 : Number(v)) : Date.parse(v));

/** Picks the column whose name looks like one of `hints`, else the `fallback`-th. */
const guess = (header: string[], hints: RegExp, fallback: number) => {
  const i = header.findIndex((h) => hints.test(h));
  return i >= 0 ? i : Math.min(fallback, header.length - 1);
};

/** Demo files: 6 weeks of hourly revenue with a daily rhythm; a deploy 20 minutes before a 30 % drop 5 days ago. */
function demoFiles(): { metrics: string; changes: string } {
  let s = 42;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const end = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  const start = end - 42 * 86_400_000;
  const drop = end - 5 * 86_400_000 + 10 * 3_600_000;
  const rows: unknown[][] = [];
  for (let t = start; t < end; t += 3_600_000) {
    const h = new Date(t).getUTCHours();
    const daily = 1 + 0.45 * Math.sin(((h - 9) / 24) * 2 * Math.PI);
    const weekly = [0.9, 1, 1.02, 1.03, 1.05, 1.12, 0.95][new Date(t).getUTCDay()]!;
    const v = 1200 * daily * weekly * (1 + (rand() - 0.5) * 0.12) * (t >= drop ? 0.7 : 1);
    rows.push([new Date(t).toISOString(), v.toFixed(2)]);
  }
  const iso = (ms: number) => new Date(ms).toISOString();
  const changes = [
    [iso(drop - 9 * 86_400_000), 'Bump analytics SDK to 4.2', 'commit', 'mobile-app', 'c-101'],
    [iso(drop - 2 * 86_400_000), 'Update FAQ copy on the help page', 'commit', 'web', 'c-102'],
    [iso(drop - 20 * 60_000), 'Deploy checkout-service v2.14.0: new payment provider SDK', 'deploy', 'checkout-service', 'd-214'],
    [iso(drop - 6 * 3_600_000), 'Ticket: tweak search ranking weights', 'ticket', 'search', 'JIRA-881'],
    [iso(drop + 2 * 86_400_000), 'Deploy profile-service v1.3.2', 'deploy', 'profile-service', 'd-132'],
  ];
  return { metrics: toCsv(['hour', 'revenue_usd'], rows), changes: toCsv(['when', 'summary', 'type', 'service', 'ref'], changes) };
}

function ColumnSelect({ id, label, header, value, onChange, optional }: { id: string; label: string; header: string[]; value: number; onChange: (i: number) => void; optional?: boolean }) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} value={value} onChange={(e) => onChange(Number(e.currentTarget.value))}>
        {optional && <option value={-1}>(none)</option>}
        {header.map((h, i) => (
          <option value={i}>{h || `column ${i + 1}`}</option>
        ))}
      </select>
    </div>
  );
}

async function readFile(input: HTMLInputElement): Promise<{ name: string; text: string } | null> {
  const f = input.files?.[0];
  return f ? { name: f.name, text: await f.text() } : null;
}

/** A change log file (CSV, or JSONL of objects) as a header and rows of strings. */
function parseChangeLog(name: string, text: string): Mapped {
  if (/\.jsonl?$/i.test(name) || text.trimStart().startsWith('{')) {
    const objs = text.split(/\r?\n/).filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
    const header = [...new Set(objs.flatMap((o) => Object.keys(o)))];
    return { name, header, rows: objs.map((o) => header.map((h) => (o[h] === undefined || o[h] === null ? '' : typeof o[h] === 'object' ? JSON.stringify(o[h]) : String(o[h])))) };
  }
  const { header, rows } = parseCsv(text);
  return { name, header, rows };
}

export default function Metrics({ app }: PageProps) {
  const [series, setSeries] = useState<Array<{ name: string; appId: string | null; points: number }>>([]);
  const [incidents, setIncidents] = useState<any[]>([]);
  const [source, setSource] = useState<string>(''); // a stored series name, or '@upload'
  const [csv, setCsv] = useState<Mapped | null>(null);
  const [tsCol, setTsCol] = useState(0);
  const [valCol, setValCol] = useState(1);
  const [log, setLog] = useState<Mapped | null>(null);
  const [logMap, setLogMap] = useState<Record<string, number>>({});
  const [useLog, setUseLog] = useState(false);
  const [sensitivity, setSensitivity] = useState(5);
  const [lookback, setLookback] = useState('3d');
  const [window, setWindow] = useState('56d');
  const [result, setResult] = useState<Analysis | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const seq = useRef(0);

  useEffect(() => {
    const q = qs({ app_id: app || undefined });
    Promise.all([api(`/v1/series${q}`), api(`/v1/incidents${q}`)]).then(([s, i]) => {
      setSeries(s.series);
      setIncidents(i.incidents);
      const first = i.incidents[0]?.series ?? s.series[0]?.name;
      if (first && !source) setSource(first);
    }, setError);
  }, [app]);

  const uploadedPoints = useMemo(() => {
    if (!csv) return null;
    const pts = csv.rows.map((r) => ({ timestamp: toMs(r[tsCol] ?? ''), value: Number(r[valCol]) })).filter((p) => Number.isFinite(p.timestamp) && Number.isFinite(p.value));
    return pts;
  }, [csv, tsCol, valCol]);

  const changes = useMemo(() => {
    if (!log || !useLog) return undefined;
    const at = (r: string[], k: string) => (logMap[k] !== undefined && logMap[k]! >= 0 ? (r[logMap[k]!] ?? '').trim() : '');
    return log.rows
      .map((r) => {
        const kind = at(r, 'kind').toLowerCase();
        const ms = toMs(at(r, 'time'));
        const c: Record<string, unknown> = { time: Number.isFinite(ms) ? new Date(ms).toISOString() : '', title: at(r, 'title') };
        if (at(r, 'id')) c.id = at(r, 'id');
        if (CHANGE_KINDS.includes(kind)) c.kind = kind;
        if (at(r, 'service')) c.service = at(r, 'service');
        if (at(r, 'description')) c.description = at(r, 'description');
        return c;
      })
      .filter((c) => c.time && c.title);
  }, [log, logMap, useLog]);

  // Live re-analysis: every knob change re-runs it; only the latest answer is shown.
  useEffect(() => {
    const body: Record<string, unknown> = { sensitivity, lookback, window, changes };
    if (source === '@upload') {
      if (!uploadedPoints || uploadedPoints.length < 10) return;
      body.series = { points: uploadedPoints };
    } else if (source) body.series = source;
    else return;
    const n = ++seq.current;
    setBusy(true);
    const timer = setTimeout(() => {
      api<Analysis>(`/v1/analysis${qs({ app_id: app || undefined })}`, { body })
        .then(
          (r) => {
            if (n === seq.current) {
              setResult(r);
              setError(null);
            }
          },
          (e) => n === seq.current && setError(e),
        )
        .finally(() => n === seq.current && setBusy(false));
    }, 250);
    return () => clearTimeout(timer);
  }, [source, uploadedPoints, changes, sensitivity, lookback, window, app]);

  const chart = useMemo(() => {
    if (!result) return null;
    const x = result.points.map((p) => Date.parse(p.ts) / 1000);
    const markers = [] as Array<{ x: number; label: string; color: string }>;
    const regions = [] as Array<{ from: number; to: number; fill: string }>;
    if (result.crash) markers.push({ x: Date.parse(result.crash.onset) / 1000, label: `crash onset (${result.crash.direction})`, color: '#cf222e' });
    const top = result.impact?.candidates[0];
    if (top && Number.isFinite(toMs(String(top.change.time)))) markers.push({ x: toMs(String(top.change.time)) / 1000, label: `most likely cause: ${top.change.title}`, color: '#8250df' });
    if (result.impact) regions.push({ from: Date.parse(result.impact.onset) / 1000, to: Date.parse(result.impact.end) / 1000, fill: 'rgba(207, 34, 46, 0.08)' });
    return (
      <TimeChart
        title="The series with its expected band, the crash onset and the impact period"
        x={x}
        height={320}
        lines={[
          { label: 'value', values: result.points.map((p) => p.value), color: '#1f6feb', width: 1.5 },
          { label: 'expected', values: result.points.map((p) => p.expected), color: '#57606a', dash: [5, 4], width: 1 },
          { label: 'upper', values: result.points.map((p) => p.upper), color: 'rgba(87,96,106,0.35)', width: 1 },
          { label: 'lower', values: result.points.map((p) => p.lower), color: 'rgba(87,96,106,0.35)', width: 1 },
          { label: 'anomalous', values: result.points.map((p) => (p.anomaly ? p.value : null)), color: '#cf222e', points: true },
        ]}
        band={{ upper: 2, lower: 3, fill: 'rgba(87, 96, 106, 0.12)' }}
        markers={markers}
        regions={regions}
      />
    );
  }, [result]);

  const onCsv = async (e: Event) => {
    const f = await readFile(e.currentTarget as HTMLInputElement);
    if (!f) return;
    const { header, rows } = parseCsv(f.text);
    setCsv({ name: f.name, header, rows });
    setTsCol(guess(header, /time|date|hour|day|^ts$/i, 0));
    setValCol(guess(header, /value|revenue|amount|count|total|usd|sum/i, 1));
    setSource('@upload');
  };
  const onLog = async (e: Event) => {
    const f = await readFile(e.currentTarget as HTMLInputElement);
    if (!f) return;
    try {
      const m = parseChangeLog(f.name, f.text);
      setLog(m);
      setLogMap({
        time: guess(m.header, /time|date|when|at$/i, 0),
        title: guess(m.header, /title|summary|message|name/i, 1),
        id: m.header.findIndex((h) => /^(id|ref|key|sha)$/i.test(h)),
        kind: m.header.findIndex((h) => /kind|type/i.test(h)),
        service: m.header.findIndex((h) => /service|component|repo/i.test(h)),
        description: m.header.findIndex((h) => /desc|body|details/i.test(h)),
      });
      setUseLog(true);
    } catch (err) {
      setError(err);
    }
  };

  const imp = result?.impact;
  const eff = imp?.effect;
  return (
    <div class="stack">
      <div class="page-head">
        <h1>Metrics{app ? ` · ${app}` : ''}</h1>
        <div class="row">
          <button
            type="button"
            onClick={() => {
              download('demo-revenue.csv', demoFiles().metrics);
            }}
          >
            Demo metrics CSV
          </button>
          <button type="button" onClick={() => download('demo-changes.csv', demoFiles().changes)}>
            Demo change log
          </button>
        </div>
      </div>
      <div class="toolbar card" style={{ padding: '10px 12px' }}>
        <div class="field">
          <label for="m-series">Series</label>
          <select id="m-series" value={source} onChange={(e) => setSource(e.currentTarget.value)}>
            <option value="" disabled>
              pick a series
            </option>
            {series.map((s) => (
              <option value={s.name}>
                {s.name} ({s.points} points)
              </option>
            ))}
            {csv && <option value="@upload">uploaded: {csv.name}</option>}
          </select>
        </div>
        <div class="field">
          <label for="m-sens">Sensitivity threshold: {sensitivity.toFixed(1)} σ</label>
          <input id="m-sens" type="range" min={2} max={10} step={0.5} value={sensitivity} onInput={(e) => setSensitivity(Number(e.currentTarget.value))} aria-valuetext={`${sensitivity} standard deviations`} />
        </div>
        <div class="field">
          <label for="m-lookback">Change lookback</label>
          <select id="m-lookback" value={lookback} onChange={(e) => setLookback(e.currentTarget.value)}>
            {['6h', '1d', '3d', '7d', '14d'].map((v) => (
              <option value={v}>{v}</option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="m-window">Baseline window</label>
          <select id="m-window" value={window} onChange={(e) => setWindow(e.currentTarget.value)}>
            {['7d', '14d', '28d', '56d'].map((v) => (
              <option value={v}>{v}</option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="m-csv">Upload metrics CSV</label>
          <input id="m-csv" type="file" accept=".csv,text/csv" onChange={onCsv} />
        </div>
        <div class="field">
          <label for="m-log">Upload change log (CSV or JSONL)</label>
          <input id="m-log" type="file" accept=".csv,.jsonl,.json,text/csv,application/json" onChange={onLog} />
        </div>
        {busy && (
          <span class="muted" role="status">
            analysing…
          </span>
        )}
      </div>
      {(csv || log) && (
        <div class="grid grid-2">
          {csv && (
            <Card title={`Column mapping · ${csv.name} (${csv.rows.length} rows)`} id="csv-map">
              <div class="toolbar">
                <ColumnSelect id="map-ts" label="Timestamp column" header={csv.header} value={tsCol} onChange={setTsCol} />
                <ColumnSelect id="map-value" label="Value column" header={csv.header} value={valCol} onChange={setValCol} />
                <span class="muted" data-testid="csv-points">
                  {uploadedPoints?.length ?? 0} usable points
                </span>
              </div>
            </Card>
          )}
          {log && (
            <Card title={`Change log mapping · ${log.name} (${log.rows.length} rows)`} id="log-map">
              <div class="toolbar">
                {CHANGE_FIELDS.map((f) => (
                  <ColumnSelect id={`map-change-${f.key}`} label={f.label} header={log.header} value={logMap[f.key] ?? -1} optional={!('required' in f)} onChange={(i) => setLogMap({ ...logMap, [f.key]: i })} />
                ))}
                <label class="row">
                  <input type="checkbox" checked={useLog} onChange={(e) => setUseLog(e.currentTarget.checked)} /> use these changes ({changes?.length ?? log.rows.length}) instead of the stored ones
                </label>
              </div>
            </Card>
          )}
        </div>
      )}
      <ErrorBox error={error} />
      {result && (
        <>
          <div class="grid grid-4">
            <Stat label="Crash onset" value={result.crash ? fmtTime(result.crash.onset).slice(0, 16) : 'none found'} sub={result.crash ? `${result.crash.direction}, detected ${fmtTime(result.crash.detectedAt).slice(5, 16)}` : `at ${result.sensitivity} σ`} testid="crash-onset" />
            <Stat
              label="Cumulative effect"
              value={eff ? fmtNum(eff.cumulative.estimate) : '–'}
              sub={eff ? `95 % interval ${fmtNum(eff.cumulative.lower)} to ${fmtNum(eff.cumulative.upper)}` : result.impactError ?? ''}
              testid="cost"
            />
            <Stat label="Relative effect" value={eff ? `${fmtNum(eff.relative.estimate * 100, 1)} %` : '–'} sub={eff ? `95 % ${fmtNum(eff.relative.lower * 100, 1)} to ${fmtNum(eff.relative.upper * 100, 1)} %` : ''} />
            <Stat label="Duration" value={imp ? `${fmtNum(imp.durationMs / 3_600_000, 1)} h` : '–'} sub={imp ? (imp.ongoing ? 'ongoing' : `ended ${fmtTime(imp.end).slice(5, 16)}`) : ''} />
          </div>
          <Card title="Series, expected band and impact" id="metric-chart">
            {chart}
            {result.crash && <p class="muted">{result.crash.explanation}</p>}
          </Card>
          <Card title="Candidate changes, most likely cause first" id="candidates">
            {!imp || imp.candidates.length === 0 ? (
              <p class="muted">{result.crash ? 'No change in the lookback window before the onset.' : 'No crash at this sensitivity: nothing to explain.'}</p>
            ) : (
              <table class="data" data-testid="candidates">
                <caption class="sr-only">Changes ranked as the crash's cause, with reasons</caption>
                <thead>
                  <tr>
                    <th scope="col">#</th>
                    <th scope="col">change</th>
                    <th scope="col">time</th>
                    <th scope="col">score</th>
                    <th scope="col">why</th>
                  </tr>
                </thead>
                <tbody>
                  {imp.candidates.map((c, i) => (
                    <tr class={i === 0 ? 'selected' : undefined}>
                      <td class="num">{i + 1}</td>
                      <td>
                        <strong>{c.change.title}</strong>
                        <div class="muted">
                          {c.change.kind ?? ''} {c.change.service ?? ''} {c.change.risk?.level && <Badge kind={c.change.risk.level === 'high' ? 'high' : 'low'}>risk {c.change.risk.level}</Badge>}
                        </div>
                      </td>
                      <td>{fmtTime(c.change.time).slice(0, 16)}</td>
                      <td class="num">{c.score.toFixed(2)}</td>
                      <td>
                        <ol class="reasons">
                          {c.reasons.map((r) => (
                            <li>{r}</li>
                          ))}
                        </ol>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </Card>
        </>
      )}
      {incidents.length > 0 && (
        <Card title="Incidents" id="incidents">
          <table class="data">
            <caption class="sr-only">Metric crashes the monitor opened</caption>
            <thead>
              <tr>
                <th scope="col">series</th>
                <th scope="col">onset</th>
                <th scope="col">status</th>
                <th scope="col">explanation</th>
              </tr>
            </thead>
            <tbody>
              {incidents.map((i) => (
                <tr>
                  <td>
                    <button type="button" class="link" onClick={() => setSource(i.series)}>
                      {i.series}
                    </button>
                  </td>
                  <td>{fmtTime(i.onset).slice(0, 16)}</td>
                  <td>
                    <Badge kind={i.status === 'open' ? 'open' : 'resolved'}>{i.status}</Badge>
                  </td>
                  <td>{i.explanation}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Card>
      )}
      {!result && !error && <p class="notice">Pick a stored series, or upload a metrics CSV (try the demo files above).</p>}
    </div>
  );
}
