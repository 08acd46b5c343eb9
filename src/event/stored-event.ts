// The normalised event as it travels on the bus and lands in the warehouse: flat, snake_case.
// One place defines its columns, so the sink, the query layer and the README cannot drift apart.

export interface StoredEvent {
  event_id: string;
  app_id: string;
  device_id: string;
  user_id: string | null;
  session_id: string | null;
  type: string;
  /** Client (event) time, epoch ms; the server receive time when the client sent none. */
  ts: number;
  /** Server receive time, epoch ms. */
  received_at: number;
  screen_name: string | null;
  button_id: string | null;
  product_id: string | null;
  order_id: string | null;
  price: number | null;
  currency: string | null;
  quantity: number | null;
  duration_ms: number | null;
  network_type: string | null;
  success: boolean | null;
  url: string | null;
  path: string | null;
  referrer: string | null;
  utm_source: string | null;
  utm_medium: string | null;
  utm_campaign: string | null;
  utm_term: string | null;
  utm_content: string | null;
  app_version: string | null;
  app_build: string | null;
  platform: string | null;
  os: string | null;
  os_version: string | null;
  device_model: string | null;
  device_type: string | null;
  browser: string | null;
  browser_version: string | null;
  locale: string | null;
  ip_hash: string | null;
  /** Everything else the client sent, kept verbatim as a JSON object string. */
  props: string;
}

type ColumnType = 'VARCHAR' | 'UUID' | 'TIMESTAMP' | 'DOUBLE' | 'BIGINT' | 'BOOLEAN' | 'JSON';

/** Warehouse columns, in file order, with their DuckDB/Parquet type and meaning (README table is generated from this). */
export const EVENT_COLUMNS: ReadonlyArray<{ name: keyof StoredEvent; type: ColumnType; doc: string }> = [
  { name: 'event_id', type: 'UUID', doc: 'client event id (UUID; other ids are mapped to a UUIDv5), unique per app' },
  { name: 'app_id', type: 'VARCHAR', doc: 'application (Hive partition key); seed 003 `site_id`' },
  { name: 'device_id', type: 'VARCHAR', doc: 'device / anonymous id' },
  { name: 'user_id', type: 'VARCHAR', doc: 'signed-in user, if any' },
  { name: 'session_id', type: 'VARCHAR', doc: 'session, if any' },
  { name: 'type', type: 'VARCHAR', doc: 'event kind (`screenView`, `purchaseComplete`, …, `pageview`, or any custom name; seed 003 `event_name`)' },
  { name: 'ts', type: 'TIMESTAMP', doc: 'client event time (UTC); receive time when absent' },
  { name: 'received_at', type: 'TIMESTAMP', doc: 'server receive time (UTC)' },
  { name: 'screen_name', type: 'VARCHAR', doc: 'screen (screenView, screenExit, buttonTap)' },
  { name: 'button_id', type: 'VARCHAR', doc: 'button (buttonTap)' },
  { name: 'product_id', type: 'VARCHAR', doc: 'product (productView, addToCart)' },
  { name: 'order_id', type: 'VARCHAR', doc: 'order (purchaseComplete)' },
  { name: 'price', type: 'DOUBLE', doc: 'price / order total' },
  { name: 'currency', type: 'VARCHAR', doc: 'ISO 4217 currency' },
  { name: 'quantity', type: 'BIGINT', doc: 'quantity / item count' },
  { name: 'duration_ms', type: 'BIGINT', doc: 'duration (screenExit, sessions)' },
  { name: 'network_type', type: 'VARCHAR', doc: 'wifi / cellular / … (networkChange)' },
  { name: 'success', type: 'BOOLEAN', doc: 'login outcome (userLogin)' },
  { name: 'url', type: 'VARCHAR', doc: 'page URL (web)' },
  { name: 'path', type: 'VARCHAR', doc: 'URL path (web)' },
  { name: 'referrer', type: 'VARCHAR', doc: 'referrer URL (web)' },
  { name: 'utm_source', type: 'VARCHAR', doc: 'UTM source, from the URL' },
  { name: 'utm_medium', type: 'VARCHAR', doc: 'UTM medium' },
  { name: 'utm_campaign', type: 'VARCHAR', doc: 'UTM campaign' },
  { name: 'utm_term', type: 'VARCHAR', doc: 'UTM term' },
  { name: 'utm_content', type: 'VARCHAR', doc: 'UTM content' },
  { name: 'app_version', type: 'VARCHAR', doc: 'app version' },
  { name: 'app_build', type: 'VARCHAR', doc: 'app build' },
  { name: 'platform', type: 'VARCHAR', doc: 'ios / android / web / …' },
  { name: 'os', type: 'VARCHAR', doc: 'operating system (client context, else from the user agent)' },
  { name: 'os_version', type: 'VARCHAR', doc: 'OS version' },
  { name: 'device_model', type: 'VARCHAR', doc: 'device model' },
  { name: 'device_type', type: 'VARCHAR', doc: 'mobile / tablet / desktop / …' },
  { name: 'browser', type: 'VARCHAR', doc: 'browser (from the user agent)' },
  { name: 'browser_version', type: 'VARCHAR', doc: 'browser version' },
  { name: 'locale', type: 'VARCHAR', doc: 'locale, e.g. en-GB' },
  { name: 'ip_hash', type: 'VARCHAR', doc: 'salted SHA-256 of the client IP (truncated); the raw IP is never stored' },
  { name: 'props', type: 'JSON', doc: 'every other field the client sent, verbatim' },
];

const SERIAL_KEYS = EVENT_COLUMNS.map((c) => c.name);

/** The bus payload: compact JSON of the event, nulls left out (readers treat a missing key as NULL), event_id first. */
export function serializeStoredEvent(ev: StoredEvent): string {
  let s = '{';
  for (let i = 0; i < SERIAL_KEYS.length; i++) {
    const k = SERIAL_KEYS[i]!;
    const v = ev[k];
    if (v === null) continue;
    s += `${i === 0 ? '' : ','}"${k}":${typeof v === 'string' ? JSON.stringify(v) : String(v)}`;
  }
  return `${s}}`;
}
