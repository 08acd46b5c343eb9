// The CSV shapes of the CLI: series `timestamp,value` and controls `timestamp,c1,c2,…` (header optional; timestamps
// ISO 8601, epoch seconds or epoch ms).
import { parseTime } from './changes.js';

export class CsvError extends Error {}

function lines(text: string): string[][] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(',').map((c) => c.trim().replace(/^"(.*)"$/, '$1')));
}

const isHeader = (cells: string[]) => cells.slice(1).some((c) => c !== '' && !Number.isFinite(Number(c)));

export interface SeriesCsv {
  /** Timestamps as written (echoed in outputs). */
  raw: string[];
  ts: number[];
  values: number[];
}

export function parseSeriesCsv(text: string): SeriesCsv {
  const rows = lines(text);
  if (rows.length && isHeader(rows[0]!)) rows.shift();
  const out: SeriesCsv = { raw: [], ts: [], values: [] };
  rows.forEach((r, i) => {
    if (r.length < 2) throw new CsvError(`row ${i + 1}: expected timestamp,value`);
    let ts: number;
    try {
      ts = parseTime(r[0]!);
    } catch {
      throw new CsvError(`row ${i + 1}: not a timestamp: ${r[0]}`);
    }
    const v = Number(r[1]);
    if (r[1] === '' || !Number.isFinite(v)) throw new CsvError(`row ${i + 1}: not a number: ${r[1]}`);
    out.raw.push(r[0]!);
    out.ts.push(ts);
    out.values.push(v);
  });
  for (let i = 1; i < out.ts.length; i++) if (out.ts[i]! <= out.ts[i - 1]!) throw new CsvError(`row ${i + 1}: timestamps must increase`);
  return out;
}

export function parseControlsCsv(text: string): { names: string[]; rows: { ts: number; values: number[] }[] } {
  const rows = lines(text);
  if (!rows.length) throw new CsvError('controls file is empty');
  const width = rows[0]!.length - 1;
  if (width < 1) throw new CsvError('controls: expected timestamp,c1[,c2…]');
  const names = isHeader(rows[0]!) ? rows.shift()!.slice(1) : Array.from({ length: width }, (_, j) => `c${j + 1}`);
  return {
    names,
    rows: rows.map((r, i) => {
      let ts: number;
      try {
        ts = parseTime(r[0]!);
      } catch {
        throw new CsvError(`controls row ${i + 1}: not a timestamp: ${r[0]}`);
      }
      return { ts, values: names.map((_, j) => (r[j + 1] === undefined || r[j + 1] === '' ? NaN : Number(r[j + 1]))) };
    }),
  };
}
