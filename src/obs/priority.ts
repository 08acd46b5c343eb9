// Ingest's event loop is the latency-critical thread; the warehouse sink, DuckDB and libuv's I/O pool do throughput
// work that may lag under a burst (the durable log buffers it). On Linux each thread has its own nice value, so the
// process lowers every thread but the main one. New threads inherit their creator's value, hence the periodic pass.
import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

export function lowerBackgroundThreads(nice: number): number {
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
    if (tid === process.pid) continue;
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
export function keepBackgroundThreadsLow(nice: number, everyMs = 5_000): () => void {
  if (nice <= 0) return () => {};
  lowerBackgroundThreads(nice);
  const timer = setInterval(() => lowerBackgroundThreads(nice), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
