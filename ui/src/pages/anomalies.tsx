// Anomalies: the feed with filters, one anomaly with its explanation and numbers, the entity's events around it
// (its triggering events highlighted), acknowledge / resolve.
import { useEffect, useState } from 'preact/hooks';
import { api, lit, qs } from '../api';
import type { PageProps } from '../main';
import { Badge, Card, ErrorBox, fmtTime } from '../ui';

interface Anomaly {
  id: string;
  appId: string;
  entityType: 'device' | 'user' | 'session' | 'ip';
  entityId: string;
  ts: string | number;
  score: number;
  severity: string;
  source: string;
  category: string;
  explanation: string;
  eventIds: string[];
  details: Record<string, unknown>;
  status: string;
}

const ENTITY_COLUMN = { device: 'device_id', user: 'user_id', session: 'session_id', ip: 'ip_hash' } as const;
const AROUND_MS = 30 * 60_000;

function Timeline({ a }: { a: Anomaly }) {
  const [rows, setRows] = useState<unknown[][] | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    const t = typeof a.ts === 'number' ? a.ts : Date.parse(a.ts);
    const sql = `SELECT ts, type, coalesce(screen_name, path, button_id, product_id, order_id) AS what, success, price, app_version, ip_hash, event_id::VARCHAR AS event_id
FROM events WHERE app_id = ${lit(a.appId)} AND ${ENTITY_COLUMN[a.entityType]} = ${lit(a.entityId)}
AND ts BETWEEN epoch_ms(${t - AROUND_MS}) AND epoch_ms(${t + AROUND_MS}) ORDER BY ts LIMIT 200`;
    setRows(null);
    api<{ rows: unknown[][] }>('/v1/query', { body: { sql } }).then((r) => setRows(r.rows), setError);
  }, [a.id]);
  if (error) return <ErrorBox error={error} />;
  if (!rows) return <p class="muted">Loading the entity's events…</p>;
  if (!rows.length) return <p class="muted">No stored events of this {a.entityType} within 30 minutes (the warehouse may still be catching up).</p>;
  const hits = new Set(a.eventIds);
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label="Entity timeline">
      <table class="data" data-testid="timeline">
        <caption class="sr-only">Events of {a.entityType} {a.entityId} within 30 minutes of the anomaly; its triggering events are highlighted</caption>
        <thead>
          <tr>
            {['time (UTC)', 'type', 'what', 'success', 'price', 'version', 'ip hash'].map((c) => (
              <th scope="col">{c}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr class={hits.has(String(r[7])) ? 'hit' : undefined}>
              <td class="nowrap">{fmtTime(r[0] as string).slice(11, 19)}</td>
              <td>{String(r[1])}</td>
              <td>{r[2] === null ? '' : String(r[2])}</td>
              <td>{r[3] === null ? '' : String(r[3])}</td>
              <td class="num">{r[4] === null ? '' : String(r[4])}</td>
              <td>{r[5] === null ? '' : String(r[5])}</td>
              <td>
                <code>{r[6] === null ? '' : String(r[6]).slice(0, 10)}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="muted">{rows.length} events; highlighted: the events that triggered it.</p>
    </div>
  );
}

function Detail({ id, onStatus }: { id: string; onStatus: (a: Anomaly) => void }) {
  const [a, setA] = useState<Anomaly | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    setA(null);
    api<Anomaly>(`/v1/anomalies/${encodeURIComponent(id)}`).then(setA, setError);
  }, [id]);
  const set = async (status: string) => {
    try {
      await api(`/v1/anomalies/${encodeURIComponent(id)}/status`, { body: { status } });
      const next = { ...a!, status };
      setA(next);
      onStatus(next);
    } catch (e) {
      setError(e);
    }
  };
  if (error) return <ErrorBox error={error} />;
  if (!a) return <p class="muted">Loading…</p>;
  return (
    <Card
      title={`${a.category.replaceAll('_', ' ')} · ${a.entityType} ${a.entityId}`}
      id="anomaly-detail"
      actions={
        <>
          <Badge kind={a.status}>
            <span data-testid="detail-status">{a.status}</span>
          </Badge>
          <button type="button" onClick={() => set('acknowledged')} disabled={a.status === 'acknowledged'}>
            Acknowledge
          </button>
          <button type="button" onClick={() => set('resolved')} disabled={a.status === 'resolved'}>
            Resolve
          </button>
          {a.status !== 'open' && (
            <button type="button" onClick={() => set('open')}>
              Reopen
            </button>
          )}
        </>
      }
    >
      <p class="explanation" data-testid="explanation">
        {a.explanation}
      </p>
      <dl class="kv">
        <dt>severity</dt>
        <dd>
          <Badge kind={a.severity}>{a.severity}</Badge> score {a.score.toFixed(2)}
        </dd>
        <dt>source</dt>
        <dd>
          <code>{a.source}</code>
        </dd>
        <dt>app</dt>
        <dd>{a.appId}</dd>
        <dt>time</dt>
        <dd>{fmtTime(a.ts)}</dd>
        {Object.entries(a.details ?? {}).map(([k, v]) => (
          <>
            <dt>{k}</dt>
            <dd>{typeof v === 'object' ? JSON.stringify(v) : String(v)}</dd>
          </>
        ))}
      </dl>
      <h3>Timeline of the {a.entityType} (±30 min)</h3>
      <Timeline a={a} />
    </Card>
  );
}

export default function Anomalies({ app, rest, navigate }: PageProps) {
  const [f, setF] = useState({ status: 'open', min_severity: '', category: '', entity_type: '', source: '' });
  const [items, setItems] = useState<Anomaly[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const filterQs = (c?: string | null) => qs({ ...f, app_id: app || undefined, limit: 50, cursor: c ?? undefined });

  useEffect(() => {
    setLoading(true);
    setError(null);
    api<{ items: Anomaly[]; nextCursor: string | null }>(`/v1/anomalies${filterQs()}`)
      .then((r) => {
        setItems(r.items);
        setCursor(r.nextCursor);
      }, setError)
      .finally(() => setLoading(false));
  }, [f.status, f.min_severity, f.category, f.entity_type, f.source, app]);

  const more = async () => {
    const r = await api<{ items: Anomaly[]; nextCursor: string | null }>(`/v1/anomalies${filterQs(cursor)}`).catch((e) => (setError(e), null));
    if (r) {
      setItems([...items, ...r.items]);
      setCursor(r.nextCursor);
    }
  };
  const text = (k: 'category' | 'source') => (e: Event) => {
    e.preventDefault();
    const v = (document.getElementById(`f-${k}`) as HTMLInputElement).value.trim();
    setF({ ...f, [k]: v });
  };
  const select = (id: string, k: keyof typeof f, label: string, options: string[], any: string) => (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} value={f[k]} onChange={(e) => setF({ ...f, [k]: e.currentTarget.value })}>
        <option value="">{any}</option>
        {options.map((o) => (
          <option value={o}>{o}</option>
        ))}
      </select>
    </div>
  );

  return (
    <div class="stack">
      <div class="page-head">
        <h1>Anomalies{app ? ` · ${app}` : ''}</h1>
      </div>
      <form class="toolbar" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
        {select('f-status', 'status', 'Status', ['open', 'acknowledged', 'resolved'], 'any')}
        {select('f-sev', 'min_severity', 'Minimum severity', ['low', 'medium', 'high', 'critical'], 'any')}
        {select('f-entity', 'entity_type', 'Entity', ['device', 'user', 'session', 'ip'], 'any')}
        <div class="field">
          <label for="f-category">Category</label>
          <input id="f-category" placeholder="e.g. brute_force" defaultValue={f.category} onChange={text('category')} onKeyDown={(e) => e.key === 'Enter' && text('category')(e)} />
        </div>
        <div class="field">
          <label for="f-source">Source</label>
          <input id="f-source" placeholder="rule:* or model:markov" defaultValue={f.source} onChange={text('source')} onKeyDown={(e) => e.key === 'Enter' && text('source')(e)} />
        </div>
        {loading && (
          <span class="muted" role="status">
            loading…
          </span>
        )}
      </form>
      <ErrorBox error={error} />
      <div class="split-wide">
        <Card title={`Feed (${items.length}${cursor ? '+' : ''})`} id="feed">
          {items.length === 0 && !loading ? (
            <p class="muted">No anomalies match these filters.</p>
          ) : (
            <div class="table-wrap" style={{ maxHeight: '640px' }}>
              <table class="data" data-testid="anomaly-feed">
                <caption class="sr-only">Anomalies, newest first; open one for its explanation and timeline</caption>
                <thead>
                  <tr>
                    <th scope="col">time</th>
                    <th scope="col">severity</th>
                    <th scope="col">category</th>
                    <th scope="col">entity</th>
                    <th scope="col">status</th>
                  </tr>
                </thead>
                <tbody>
                  {items.map((a) => (
                    <tr class={a.id === rest ? 'selected' : undefined}>
                      <td>{fmtTime(a.ts).slice(5, 16)}</td>
                      <td>
                        <Badge kind={a.severity}>{a.severity}</Badge>
                      </td>
                      <td>
                        <a
                          href={`/ui/anomalies/${a.id}`}
                          onClick={(e) => {
                            e.preventDefault();
                            navigate(`anomalies/${a.id}`);
                          }}
                          title={a.explanation}
                        >
                          {a.category.replaceAll('_', ' ')}
                        </a>
                        <div class="muted" style={{ fontSize: '12px' }}>
                          {a.source}
                        </div>
                      </td>
                      <td>
                        {a.entityType} <code>{a.entityId.slice(0, 18)}</code>
                      </td>
                      <td>
                        <Badge kind={a.status}>{a.status}</Badge>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {cursor && (
            <button type="button" onClick={more} style={{ marginTop: '8px' }}>
              Load more
            </button>
          )}
        </Card>
        <div>{rest ? <Detail id={rest} onStatus={(a) => setItems(items.map((x) => (x.id === a.id ? { ...x, status: a.status } : x)))} /> : <p class="notice">Open an anomaly to see why it was raised and what the {'entity'} did around it.</p>}</div>
      </div>
    </div>
  );
}
