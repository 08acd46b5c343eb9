// uPlot time-series chart as a preact component: lines, an optional band (lower–upper), vertical markers and shaded
// regions (a crash's onset, its impact period). Resizes with its container.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Line {
  label: string;
  values: Array<number | null>;
  color: string;
  dash?: number[];
  width?: number;
  /** Drawn as points only (e.g. anomalous points). */
  points?: boolean;
}

export interface ChartProps {
  /** Epoch seconds. */
  x: number[];
  lines: Line[];
  /** Indexes into `lines` of the band's upper and lower edges, filled between. */
  band?: { upper: number; lower: number; fill: string };
  markers?: Array<{ x: number; label: string; color: string }>;
  regions?: Array<{ from: number; to: number; fill: string }>;
  height?: number;
  title: string;
  yLabel?: string;
}

export function TimeChart(p: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const extras = useRef({ markers: p.markers, regions: p.regions });
  extras.current = { markers: p.markers, regions: p.regions };

  useEffect(() => {
    const el = box.current!;
    const overlay: uPlot.Plugin = {
      hooks: {
        drawClear: (u) => {
          const { ctx, bbox } = u;
          for (const r of extras.current.regions ?? []) {
            const a = u.valToPos(r.from, 'x', true);
            const b = u.valToPos(r.to, 'x', true);
            ctx.fillStyle = r.fill;
            ctx.fillRect(Math.max(a, bbox.left), bbox.top, Math.min(b, bbox.left + bbox.width) - Math.max(a, bbox.left), bbox.height);
          }
        },
        draw: (u) => {
          const { ctx, bbox } = u;
          (extras.current.markers ?? []).forEach((m) => {
            const px = Math.round(u.valToPos(m.x, 'x', true));
            if (px < bbox.left || px > bbox.left + bbox.width) return;
            ctx.save();
            ctx.strokeStyle = m.color;
            ctx.lineWidth = 2 * devicePixelRatio;
            ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
            ctx.beginPath();
            ctx.moveTo(px, bbox.top);
            ctx.lineTo(px, bbox.top + bbox.height);
            ctx.stroke();
            ctx.restore();
          });
        },
      },
    };
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: p.height ?? 260,
      plugins: [overlay],
      legend: { show: true },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: '#57606a', grid: { stroke: '#eaeef2' }, ticks: { stroke: '#d0d7de' } },
        { stroke: '#57606a', grid: { stroke: '#eaeef2' }, ticks: { stroke: '#d0d7de' }, label: p.yLabel, size: 60 },
      ],
      series: [
        {},
        ...p.lines.map((l) => ({
          label: l.label,
          stroke: l.color,
          width: l.width ?? 1.5,
          dash: l.dash,
          spanGaps: false,
          ...(l.points ? { paths: () => null, points: { show: true, size: 7, fill: l.color, stroke: l.color } } : { points: { show: false } }),
        })),
      ],
      bands: p.band ? [{ series: [p.band.upper + 1, p.band.lower + 1], fill: p.band.fill }] : undefined,
    };
    const u = new uPlot(opts, [p.x, ...p.lines.map((l) => l.values)] as uPlot.AlignedData, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: p.height ?? 260 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // A new shape of data (other lines) rebuilds the chart; new values of the same lines only redraw.
  }, [p.lines.map((l) => l.label).join('|'), !!p.band, p.height]);

  useEffect(() => {
    plot.current?.setData([p.x, ...p.lines.map((l) => l.values)] as uPlot.AlignedData);
  }, [p.x, p.lines, p.markers, p.regions]);

  // Marker labels are text below the chart (canvas text would overlap when markers are close, and is not readable).
  return (
    <figure class="chart">
      <div ref={box} role="img" aria-label={p.title} />
      {p.markers?.length ? (
        <figcaption class="markers">
          {p.markers.filter((m) => Number.isFinite(m.x)).map((m) => (
            <span>
              <span class="swatch" style={{ borderColor: m.color }} aria-hidden="true" /> {m.label} · {new Date(m.x * 1000).toISOString().replace('T', ' ').slice(0, 16)}Z
            </span>
          ))}
        </figcaption>
      ) : null}
    </figure>
  );
}
