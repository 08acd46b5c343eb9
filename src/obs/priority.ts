// Ingest's event loop and its check worker are the latency-critical threads; the warehouse sink, DuckDB and libuv's I/O
// pool do throughput work that may lag under a burst (the durable log buffers it). On Linux each thread has its own
// nice value, so the process lowers every other thread. New threads inherit their creator's value: a periodic pass.
import { readdirSync, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** This thread's Linux thread id (for a worker to report itself as critical), or null elsewhere. */
export function currentThreadId(): number | null {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return null;
  }
}

export function lowerBackgroundThreads(nice: number, critical: ReadonlySet<number> = new Set()): number {
  if (nice <= 0 || process.platform !== 'linux') return 0;
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return 0;
  }
  let lowered = 0;
  for (const t of tids) {
    const tid = Number(t);
    if (tid === process.pid || critical.has(tid)) continue;
    try {
      if (getPriority(tid) < nice) {
        setPriority(tid, nice);
        lowered++;
      }
    } catch {
      // The thread ended, or lowering is not permitted here: leave it.
    }
  }
  return lowered;
}

/** Lowers background threads now and every `everyMs` (threads created later start at the creator's priority). */
export function keepBackgroundThreadsLow(nice: number, critical: () => ReadonlySet<number>, everyMs = 5_000): () => void {
  if (nice <= 0) return () => {};
  lowerBackgroundThreads(nice, critical());
  const timer = setInterval(() => lowerBackgroundThreads(nice, critical()), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
