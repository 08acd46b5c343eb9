// Parquet layout: events/app_id=<app>/date=<YYYY-MM-DD>/<kind><from>-<to>.parquet, where [from, to) is the range of
// bus offsets the sink batch (b) or compaction (c) covered. Names make recovery and dedupe deterministic:
// - a file whose `from` >= the sink's committed offset is an orphan of a crashed batch (deleted on start);
// - a file whose range lies inside a compacted file's range in the same partition is superseded.

export const EVENTS_PREFIX = 'events';

export interface PartFile {
  key: string;
  bytes: number;
  partition: string; // events/app_id=…/date=…
  kind: 'b' | 'c';
  from: number;
  to: number;
}

const NAME = /^(b|c)(\d{20})-(\d{20})(?:-\d+)?\.parquet$/;

export const pad = (n: number) => String(n).padStart(20, '0');

export function parsePartFile(key: string, bytes: number): PartFile | null {
  const i = key.lastIndexOf('/');
  const m = NAME.exec(key.slice(i + 1));
  if (!m) return null;
  return { key, bytes, partition: key.slice(0, i), kind: m[1] as 'b' | 'c', from: Number(m[2]), to: Number(m[3]) };
}

/** Splits files into the live set (what queries read) and the superseded ones (safe to delete). */
export function resolveLiveFiles(files: PartFile[], committedOffset = Infinity): { live: PartFile[]; superseded: PartFile[]; orphans: PartFile[] } {
  const live: PartFile[] = [];
  const superseded: PartFile[] = [];
  const orphans: PartFile[] = [];
  const byPartition = new Map<string, PartFile[]>();
  for (const f of files) {
    if (f.from >= committedOffset) {
      orphans.push(f);
      continue;
    }
    const list = byPartition.get(f.partition) ?? [];
    list.push(f);
    byPartition.set(f.partition, list);
  }
  for (const list of byPartition.values()) {
    const compacted = list.filter((f) => f.kind === 'c');
    for (const f of list) {
      const cover = compacted.find((c) => c !== f && c.from <= f.from && f.to <= c.to && (c.to - c.from > f.to - f.from || f.kind === 'b'));
      (cover ? superseded : live).push(f);
    }
  }
  return { live, superseded, orphans };
}
