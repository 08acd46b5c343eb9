// Prometheus metrics for every role, in one registry per process (served at /metrics).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics(opts: { processMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'causality_process_' });
  const m = {
    registry,
    eventsAccepted: new Counter({ name: 'causality_events_accepted_total', help: 'Events acknowledged durable', labelNames: ['app_id', 'route'], registers: [registry] }),
    eventsDuplicate: new Counter({ name: 'causality_events_duplicate_total', help: 'Events answered as duplicates (idempotent retry)', labelNames: ['app_id'], registers: [registry] }),
    eventsRejected: new Counter({ name: 'causality_events_rejected_total', help: 'Events refused, by reason (field validation, app binding)', labelNames: ['reason'], registers: [registry] }),
    eventsDropped: new Counter({ name: 'causality_events_dropped_total', help: 'Events dropped on purpose, by reason (bot)', labelNames: ['reason'], registers: [registry] }),
    requestsRefused: new Counter({ name: 'causality_requests_refused_total', help: 'Ingest requests refused whole, by HTTP status and code', labelNames: ['status', 'code'], registers: [registry] }),
    ingestBatchSize: new Histogram({ name: 'causality_ingest_batch_events', help: 'Events per ingest request', buckets: [1, 2, 5, 10, 50, 100, 250, 500, 1000], registers: [registry] }),
    fsyncSeconds: new Histogram({ name: 'causality_bus_fsync_seconds', help: 'Group commit write+fdatasync duration', buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1], registers: [registry] }),
    fsyncRecords: new Histogram({ name: 'causality_bus_group_commit_records', help: 'Records per group commit', buckets: [1, 10, 100, 1000, 5000, 20000, 100000], registers: [registry] }),
    busEndOffset: new Gauge({ name: 'causality_bus_end_offset', help: 'Next offset of the event log', registers: [registry] }),
    consumerLag: new Gauge({ name: 'causality_consumer_lag_records', help: 'Records between a consumer position and the log end', labelNames: ['consumer'], registers: [registry] }),
    sinkFlushSeconds: new Histogram({ name: 'causality_sink_flush_seconds', help: 'Warehouse sink batch write duration', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry] }),
    sinkFlushEvents: new Histogram({ name: 'causality_sink_flush_events', help: 'Events per warehouse write', buckets: [1, 10, 100, 1000, 10000, 50000, 200000], registers: [registry] }),
    sinkUnbuildable: new Counter({ name: 'causality_sink_unbuildable_total', help: 'Appended events that failed to rebuild (never expected)', registers: [registry] }),
    sinkEventsWritten: new Counter({ name: 'causality_sink_events_written_total', help: 'Events written to Parquet', registers: [registry] }),
    sinkDuplicatesSkipped: new Counter({ name: 'causality_sink_duplicates_skipped_total', help: 'Replayed or repeated event ids not written again', registers: [registry] }),
    compactions: new Counter({ name: 'causality_compactions_total', help: 'Partitions compacted', registers: [registry] }),
    queryDuration: new Histogram({ name: 'causality_query_seconds', help: 'SQL and metrics query duration', labelNames: ['endpoint'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10], registers: [registry] }),
    queryRefused: new Counter({ name: 'causality_query_refused_total', help: 'Queries refused, by reason', labelNames: ['reason'], registers: [registry] }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
