// Small shared pieces: formatting, an error box, a card, a data table, a status badge.
import type { ComponentChildren } from 'preact';
import { ApiError } from './api';

export const fmtInt = (n: unknown) => (typeof n === 'number' ? n.toLocaleString('en-US') : String(n ?? '–'));
export const fmtNum = (n: number | null | undefined, digits = 2) =>
  n === null || n === undefined || !Number.isFinite(n) ? '–' : Math.abs(n) >= 1000 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits);
export const fmtTime = (iso: string | number | null | undefined) => {
  if (iso === null || iso === undefined) return '–';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace('T', ' ').slice(0, 19) + 'Z';
};

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as Error;
  const field = error instanceof ApiError && error.field ? error.field : null;
  return (
    <div class="error" role="alert">
      <strong>{error instanceof ApiError ? error.code : 'error'}</strong>
      {field && (
        <>
          {' '}
          in <code data-testid="error-field">{field}</code>
        </>
      )}
      : {e.message}
    </div>
  );
}

export function Card({ title, children, actions, id }: { title: string; children: ComponentChildren; actions?: ComponentChildren; id?: string }) {
  const hid = id ? `${id}-title` : undefined;
  return (
    <section class="card" aria-labelledby={hid} id={id}>
      <header class="card-head">
        <h2 id={hid}>{title}</h2>
        {actions && <div class="card-actions">{actions}</div>}
      </header>
      <div class="card-body">{children}</div>
    </section>
  );
}

export function Stat({ label, value, sub, testid }: { label: string; value: ComponentChildren; sub?: ComponentChildren; testid?: string }) {
  return (
    <div class="stat">
      <div class="stat-label">{label}</div>
      <div class="stat-value" data-testid={testid}>
        {value}
      </div>
      {sub && <div class="stat-sub">{sub}</div>}
    </div>
  );
}

export function Badge({ kind, children }: { kind: string; children: ComponentChildren }) {
  return <span class={`badge badge-${kind}`}>{children}</span>;
}

export function DataTable({ columns, rows, caption, max = 500 }: { columns: string[]; rows: unknown[][]; caption: string; max?: number }) {
  const shown = rows.slice(0, max);
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label={caption}>
      <table class="data">
        <caption class="sr-only">{caption}</caption>
        <thead>
          <tr>
            {columns.map((c) => (
              <th scope="col">{c}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {shown.map((r) => (
            <tr>
              {r.map((v) => (
                <td class={typeof v === 'number' ? 'num' : undefined}>{cell(v)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {rows.length > max && <p class="muted">showing {max} of {fmtInt(rows.length)} rows (the CSV export has them all)</p>}
    </div>
  );
}

const cell = (v: unknown) => (v === null || v === undefined ? <span class="muted">null</span> : typeof v === 'object' ? JSON.stringify(v) : typeof v === 'number' ? fmtInt(v) : String(v));

/** Horizontal bars for a ranked list (by type, top pages). */
export function Bars({ items, label }: { items: Array<{ name: string; value: number }>; label: string }) {
  const max = Math.max(1, ...items.map((i) => i.value));
  return (
    <ul class="bars" aria-label={label}>
      {items.map((i) => (
        <li>
          <span class="bar-name" title={i.name}>
            {i.name}
          </span>
          <span class="bar-track">
            <span class="bar-fill" style={{ width: `${(100 * i.value) / max}%` }} />
          </span>
          <span class="bar-value">{fmtInt(i.value)}</span>
        </li>
      ))}
    </ul>
  );
}

/** Saves text as a file in the browser. */
export function download(name: string, text: string, type = 'text/csv') {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** RFC 4180 CSV of columns and rows. */
export function toCsv(columns: string[], rows: unknown[][]): string {
  const esc = (v: unknown) => {
    const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
    return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [columns, ...rows].map((r) => r.map(esc).join(',')).join('\n') + '\n';
}

/** Parses CSV text (quotes, escaped quotes, CRLF) into a header and rows. */
export function parseCsv(text: string): { header: string[]; rows: string[][] } {
  const out: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      field = '';
      if (row.some((x) => x !== '')) out.push(row);
      row = [];
    } else field += c;
  }
  row.push(field);
  if (row.some((x) => x !== '')) out.push(row);
  const [header = [], ...rows] = out;
  return { header: header.map((h) => h.trim()), rows };
}
