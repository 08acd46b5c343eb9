// Overview: live events per minute (last hour, refreshed), and for the picked range the events, unique users, page
// views, events by type and over time, and the top screens/pages. One request (one scan) loads the page; the live
// chart then refreshes from the small last-hour events endpoint.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, qs } from '../api';
import { TimeChart } from '../chart';
import type { PageProps } from '../main';
import { Bars, Card, ErrorBox, fmtInt, Stat } from '../ui';

const RANGES = [
  { id: '1h', label: 'Last hour', ms: 3_600_000 },
  { id: '6h', label: 'Last 6 hours', ms: 6 * 3_600_000 },
  { id: '24h', label: 'Last 24 hours', ms: 86_400_000 },
  { id: '7d', label: 'Last 7 days', ms: 7 * 86_400_000 },
  { id: '30d', label: 'Last 30 days', ms: 30 * 86_400_000 },
];
const BUCKET_MS: Record<string, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };

interface EventsAnswer {
  events: number;
  bucket: string;
  from: string;
  to: string;
  over_time: Array<{ t: string; events: number }>;
}

/** GET /v1/metrics/overview: every figure of the page from one scan of the range. */
interface OverviewAnswer extends EventsAnswer {
  pageviews: number;
  unique_users: number;
  unique_devices: number;
  by_type: Array<{ type: string; events: number }>;
  top_pages: Array<{ page: string; views: number }>;
  live: EventsAnswer;
}

/** The range ends at the next whole minute, so repeated loads within a minute hit the server's cache. */
const window = (ms: number) => {
  const to = Math.ceil((Date.now() + 1) / 60_000) * 60_000;
  return { from: new Date(to - ms).toISOString(), to: new Date(to).toISOString() };
};

/** Buckets with no events are zeros, not gaps. */
function filled(a: EventsAnswer): { x: number[]; y: number[] } {
  const step = BUCKET_MS[a.bucket] ?? 60_000;
  const by = new Map(a.over_time.map((p) => [Date.parse(p.t), p.events]));
  const x: number[] = [];
  const y: number[] = [];
  for (let t = Math.floor(Date.parse(a.from) / step) * step; t < Date.parse(a.to); t += step) {
    x.push(t / 1000);
    y.push(by.get(t) ?? 0);
  }
  return { x, y };
}

export default function Overview({ app }: PageProps) {
  const [range, setRange] = useState(() => sessionStorage.getItem('causality.range') ?? '24h');
  const [data, setData] = useState<OverviewAnswer | null>(null);
  const [live, setLive] = useState<EventsAnswer | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);

  useEffect(() => {
    sessionStorage.setItem('causality.range', range);
    const w = window(RANGES.find((r) => r.id === range)!.ms);
    setLoading(true);
    setError(null);
    api<OverviewAnswer>(`/v1/metrics/overview${qs({ ...w, app_id: app || undefined, limit: 10 })}`)
      .then((a) => {
        setData(a);
        setLive(a.live);
      }, setError)
      .finally(() => setLoading(false));
  }, [range, app]);

  useEffect(() => {
    let stop = false;
    const timer = setInterval(
      () =>
        api<EventsAnswer>(`/v1/metrics/events${qs({ ...window(3_600_000), app_id: app || undefined })}`).then(
          (a) => !stop && setLive(a),
          () => undefined,
        ),
      15_000,
    );
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, [app]);

  const series = useMemo(() => (data ? filled(data) : null), [data]);
  const liveSeries = useMemo(() => (live ? filled(live) : null), [live]);
  // The last whole minute (the current one is still filling).
  const perMinute = liveSeries && liveSeries.y.length > 1 ? liveSeries.y[liveSeries.y.length - 2]! : null;
  const rangeLabel = RANGES.find((r) => r.id === range)!.label.toLowerCase();

  return (
    <div class="stack">
      <div class="page-head">
        <h1>Overview{app ? ` · ${app}` : ''}</h1>
        <div class="row">
          <label for="range">Time range</label>
          <select id="range" value={range} onChange={(e) => setRange(e.currentTarget.value)}>
            {RANGES.map((r) => (
              <option value={r.id}>{r.label}</option>
            ))}
          </select>
          {loading && (
            <span class="muted" role="status">
              loading…
            </span>
          )}
        </div>
      </div>
      <ErrorBox error={error} />
      <div class="grid grid-4">
        <Stat label="Events / min (live)" value={perMinute === null ? '–' : fmtInt(perMinute)} sub="last whole minute, refreshed every 15 s" testid="live-rate" />
        <Stat label="Events" value={data ? fmtInt(data.events) : '–'} sub={rangeLabel} testid="stat-events" />
        <Stat label="Unique users" value={data ? fmtInt(data.unique_users) : '–'} sub={data ? `${fmtInt(data.unique_devices)} devices` : ''} testid="stat-users" />
        <Stat label="Page & screen views" value={data ? fmtInt(data.pageviews) : '–'} sub={rangeLabel} testid="stat-views" />
      </div>
      <div class="grid grid-2">
        <Card title="Events per minute · last hour" id="live">
          {liveSeries ? <TimeChart title="Events per minute over the last hour" x={liveSeries.x} lines={[{ label: 'events/min', values: liveSeries.y, color: '#1f6feb', width: 2 }]} height={200} /> : <p class="muted">Loading…</p>}
        </Card>
        <Card title={`Events per ${data?.bucket ?? 'bucket'} · ${rangeLabel}`} id="over-time">
          {series ? <TimeChart title="Events over the picked range" x={series.x} lines={[{ label: 'events', values: series.y, color: '#8250df', width: 2 }]} height={200} /> : <p class="muted">Loading…</p>}
        </Card>
      </div>
      <div class="grid grid-2">
        <Card title="Events by type" id="by-type">
          {data && (data.by_type.length ? <Bars label="Events by type" items={data.by_type.slice(0, 15).map((t) => ({ name: t.type, value: t.events }))} /> : <p class="muted">No events in this range.</p>)}
        </Card>
        <Card title="Top screens and pages" id="top-pages">
          {data && (data.top_pages.length ? <Bars label="Top screens and pages" items={data.top_pages.map((p) => ({ name: p.page, value: p.views }))} /> : <p class="muted">No page or screen views in this range.</p>)}
        </Card>
      </div>
    </div>
  );
}
