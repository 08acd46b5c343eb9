-- Causality's warehouse as a Trino table (Hive connector), over the same Parquet files DuckDB reads.
-- Layout: <bucket>/<S3_PREFIX>/events/app_id=<app>/date=<YYYY-MM-DD>/*.parquet (zstd; columns by name).
-- Replace s3://causality/events with s3://<S3_BUCKET>/<S3_PREFIX>/events (no prefix: s3://<S3_BUCKET>/events).
-- The catalog is assumed to be named `hive`; Trino's S3 settings must point at the same endpoint and keys.
-- app_id and date are in the object path only (Hive partitions), so they come last here.
-- event_id is a Parquet UUID (16 bytes), which Hive tables declare as varbinary; format it with
-- cast(regexp_replace(lower(to_hex(event_id)), '^(.{8})(.{4})(.{4})(.{4})(.{12})$', '$1-$2-$3-$4-$5') AS uuid).
-- props is a JSON object as text: json_extract_scalar(props, '$.plan').

CREATE SCHEMA IF NOT EXISTS hive.causality
WITH (location = 's3://causality/');

CREATE TABLE IF NOT EXISTS hive.causality.events (
  event_id        varbinary,
  device_id       varchar,
  user_id         varchar,
  session_id      varchar,
  type            varchar,
  ts              timestamp,
  received_at     timestamp,
  screen_name     varchar,
  button_id       varchar,
  product_id      varchar,
  order_id        varchar,
  price           double,
  currency        varchar,
  quantity        bigint,
  duration_ms     bigint,
  network_type    varchar,
  success         boolean,
  url             varchar,
  path            varchar,
  referrer        varchar,
  utm_source      varchar,
  utm_medium      varchar,
  utm_campaign    varchar,
  utm_term        varchar,
  utm_content     varchar,
  app_version     varchar,
  app_build       varchar,
  platform        varchar,
  os              varchar,
  os_version      varchar,
  device_model    varchar,
  device_type     varchar,
  browser         varchar,
  browser_version varchar,
  locale          varchar,
  ip_hash         varchar,
  props           varchar,
  app_id          varchar,
  "date"          date
)
WITH (
  external_location = 's3://causality/events',
  format = 'PARQUET',
  partitioned_by = ARRAY['app_id', 'date']
);

-- New partitions (a new app or a new day) appear after a sync; run it on a schedule (e.g. every few minutes).
-- FULL also forgets partitions whose files are gone.
CALL hive.system.sync_partition_metadata(schema_name => 'causality', table_name => 'events', mode => 'FULL');

-- Trino reads every object of a partition. Causality's own queries skip superseded files during the minute after a
-- compaction and orphans of a crashed batch until the sink restarts; Trino does not, so in those windows count
-- distinct event_id when exact counts matter:
-- SELECT type, count(DISTINCT event_id) AS events FROM hive.causality.events WHERE "date" >= DATE '2026-12-01' GROUP BY type;
