// Unit tests of the event envelope: validation, normalisation into StoredEvent columns, ids, timestamps, URLs.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { v5 as uuidv5, validate as isUuid, version as uuidVersion } from 'uuid';
import {
  KNOWN_KINDS,
  normalizeEvent,
  parseTimestamp,
  parseWebUrl,
  toEventUuid,
  type FieldError,
  type RequestFacts,
} from '../src/event/envelope.js';
import { EVENT_COLUMNS, type StoredEvent } from '../src/event/stored-event.js';

const NOW = Date.UTC(2024, 4, 1, 12, 0, 0); // receive time
const TS = Date.UTC(2024, 4, 1, 10, 0, 0); // client time
const EVENT_ID = '0b4a5c3e-8f2d-4d1a-9e7b-6c5d4e3f2a1b';

const facts = (o: Partial<RequestFacts> = {}): RequestFacts => ({
  appId: 'appA',
  receivedAt: NOW,
  userAgent: null,
  ipHash: 'iphash0123456789',
  ua: null,
  ...o,
});

type Expected = Omit<StoredEvent, 'props'> & { props: Record<string, unknown> };

/** A StoredEvent with every optional column null; props as an object. */
function expected(o: Partial<Expected>): Expected {
  const e: Record<string, unknown> = {};
  for (const c of EVENT_COLUMNS) e[c.name] = null;
  return {
    ...(e as unknown as Expected),
    event_id: EVENT_ID,
    app_id: 'appA',
    device_id: 'dev-1',
    ts: TS,
    received_at: NOW,
    ip_hash: 'iphash0123456789',
    props: {},
    ...o,
  };
}

/** Normalises and returns the event with props parsed, failing the test with the error if it was refused. */
function accepted(input: unknown, f = facts()): Expected {
  const r = normalizeEvent(input, f);
  if (!r.ok) assert.fail(`refused: ${JSON.stringify(r.error)}`);
  assert.equal(typeof r.event.props, 'string', 'props travels as a JSON string');
  return { ...r.event, props: JSON.parse(r.event.props) };
}

function refused(input: unknown, f = facts()): FieldError {
  const r = normalizeEvent(input, f);
  if (r.ok) assert.fail(`accepted: ${JSON.stringify(r.event)}`);
  return r.error;
}

// Each of seed 000's kinds: its body, the columns its typed fields land in, and what stays in props.
const KIND_CASES: Array<{ kind: string; body: Record<string, unknown>; columns: Partial<Expected>; props: Record<string, unknown> }> = [
  { kind: 'screenView', body: { screenName: 'Home', previousScreen: 'Login' }, columns: { screen_name: 'Home' }, props: { previousScreen: 'Login' } },
  { kind: 'screenExit', body: { screenName: 'Home', durationMs: 1500 }, columns: { screen_name: 'Home', duration_ms: 1500 }, props: {} },
  { kind: 'buttonTap', body: { buttonId: 'login', screenName: 'Home' }, columns: { button_id: 'login', screen_name: 'Home' }, props: {} },
  { kind: 'userLogin', body: { userId: 'u-1', method: 'password', success: false }, columns: { user_id: 'u-1', success: false }, props: { method: 'password' } },
  { kind: 'userLogout', body: { userId: 'u-1' }, columns: { user_id: 'u-1' }, props: {} },
  {
    kind: 'productView',
    body: { productId: 'sku-1', price: 19.99, currency: 'usd' },
    columns: { product_id: 'sku-1', price: 19.99, currency: 'USD' },
    props: {},
  },
  {
    kind: 'addToCart',
    body: { productId: 'sku-1', quantity: 2, price: 19.99, currency: 'EUR' },
    columns: { product_id: 'sku-1', quantity: 2, price: 19.99, currency: 'EUR' },
    props: {},
  },
  {
    kind: 'purchaseComplete',
    body: { orderId: 'o-1', totalAmount: 39.98, currency: 'GBP', itemCount: 2 },
    columns: { order_id: 'o-1', price: 39.98, currency: 'GBP', quantity: 2 },
    props: {},
  },
  { kind: 'appStart', body: { coldStart: true }, columns: {}, props: { coldStart: true } },
  { kind: 'appBackground', body: {}, columns: {}, props: {} },
  { kind: 'appForeground', body: {}, columns: {}, props: {} },
  { kind: 'networkChange', body: { networkType: 'wifi' }, columns: { network_type: 'wifi' }, props: {} },
  { kind: 'customEvent', body: { name: 'level_up', params: { level: 3 } }, columns: {}, props: { name: 'level_up', level: 3 } },
];

describe('normalizeEvent: the 13 kinds', () => {
  test('the cases cover every known kind', () => {
    assert.deepEqual(KIND_CASES.map((c) => c.kind).sort(), [...KNOWN_KINDS].sort());
    assert.equal(KNOWN_KINDS.length, 13);
  });

  for (const c of KIND_CASES) {
    const want = expected({ type: c.kind, ...c.columns, props: c.props });

    test(`${c.kind}: nested seed shape`, () => {
      const got = accepted({ eventId: EVENT_ID, appId: 'appA', deviceId: 'dev-1', timestamp: TS, [c.kind]: c.body });
      assert.deepEqual(got, want);
    });

    test(`${c.kind}: flat shape, fields at the top level`, () => {
      const got = accepted({ eventId: EVENT_ID, type: c.kind, deviceId: 'dev-1', timestamp: TS, ...c.body });
      assert.deepEqual(got, want);
    });

    test(`${c.kind}: flat shape, fields under properties`, () => {
      const got = accepted({ eventId: EVENT_ID, type: c.kind, deviceId: 'dev-1', timestamp: TS, properties: c.body });
      assert.deepEqual(got, want);
    });
  }

  test('seed 000 curl event (no eventId, no timestamp): UUIDv7 id, ts = receive time, appId from the body', () => {
    const r = normalizeEvent({ appId: 'my-app', deviceId: 'device-001', screenView: { screenName: 'HomeScreen' } }, facts({ appId: 'my-app' }));
    assert.ok(r.ok);
    assert.ok(isUuid(r.event.event_id));
    assert.equal(uuidVersion(r.event.event_id), 7);
    assert.deepEqual(
      { ...r.event, props: JSON.parse(r.event.props) },
      expected({ event_id: r.event.event_id, app_id: 'my-app', device_id: 'device-001', type: 'screenView', screen_name: 'HomeScreen', ts: NOW }),
    );
  });

  test('admin key (no bound app): appId taken from the event', () => {
    const got = accepted({ eventId: EVENT_ID, appId: 'appB', deviceId: 'dev-1', timestamp: TS, appStart: {} }, facts({ appId: null }));
    assert.deepEqual(got, expected({ app_id: 'appB', type: 'appStart' }));
  });

  test('envelope ids, session and web fields land in their columns', () => {
    const got = accepted({
      eventId: EVENT_ID,
      deviceId: 'dev-1',
      userId: 'u-9',
      sessionId: 's-9',
      timestamp: TS,
      type: 'pageview',
      url: 'https://shop.example/pricing?utm_source=news&utm_medium=email&utm_campaign=spring&utm_term=shoes&utm_content=hero#top',
      referrer: 'https://search.example/?q=x',
    });
    assert.deepEqual(
      got,
      expected({
        user_id: 'u-9',
        session_id: 's-9',
        type: 'pageview',
        url: 'https://shop.example/pricing?utm_source=news&utm_medium=email&utm_campaign=spring&utm_term=shoes&utm_content=hero#top',
        path: '/pricing',
        referrer: 'https://search.example/?q=x',
        utm_source: 'news',
        utm_medium: 'email',
        utm_campaign: 'spring',
        utm_term: 'shoes',
        utm_content: 'hero',
      }),
    );
  });
});

describe('normalizeEvent: unknown fields are kept in props', () => {
  test('nested shape: unknown top-level fields, unknown kind fields, properties/props and context extras', () => {
    const got = accepted({
      eventId: EVENT_ID,
      deviceId: 'dev-1',
      timestamp: TS,
      experiment: 'b',
      nested: { a: [1, 2] },
      properties: { plan: 'pro' },
      props: { tier: 2 },
      screenView: { screenName: 'Home', scrollDepth: 0.8 },
      context: { appVersion: '2.1.0', carrier: 'Vodafone', battery: 0.5 },
    });
    assert.deepEqual(
      got,
      expected({
        type: 'screenView',
        screen_name: 'Home',
        app_version: '2.1.0',
        props: {
          experiment: 'b',
          nested: { a: [1, 2] },
          plan: 'pro',
          tier: 2,
          scrollDepth: 0.8,
          'context.carrier': 'Vodafone',
          'context.battery': 0.5,
        },
      }),
    );
  });

  test('flat shape: unknown top-level fields and properties both land in props', () => {
    const got = accepted({
      eventId: EVENT_ID,
      type: 'buttonTap',
      deviceId: 'dev-1',
      timestamp: TS,
      buttonId: 'buy',
      color: 'red',
      properties: { screenName: 'Cart', abTest: 'x' },
    });
    assert.deepEqual(got, expected({ type: 'buttonTap', button_id: 'buy', screen_name: 'Cart', props: { color: 'red', abTest: 'x' } }));
  });

  test('context: every known field lands in its column; the client context wins over the user agent', () => {
    const got = accepted(
      {
        eventId: EVENT_ID,
        deviceId: 'dev-1',
        timestamp: TS,
        appForeground: {},
        context: {
          appVersion: '2.1.0',
          appBuild: 421,
          platform: 'ios',
          os: 'iOS',
          osVersion: '17.2',
          deviceModel: 'iPhone15,2',
          deviceType: 'mobile',
          locale: 'en-GB',
          networkType: 'cellular',
          sdk: 'causality-swift/1.0',
        },
      },
      facts({ ua: { os: 'Mac OS', osVersion: '14', browser: 'Safari', browserVersion: '17', deviceModel: 'Macintosh', deviceType: 'desktop' } }),
    );
    assert.deepEqual(
      got,
      expected({
        type: 'appForeground',
        app_version: '2.1.0',
        app_build: '421',
        platform: 'ios',
        os: 'iOS',
        os_version: '17.2',
        device_model: 'iPhone15,2',
        device_type: 'mobile',
        locale: 'en-GB',
        network_type: 'cellular',
        browser: 'Safari',
        browser_version: '17',
        props: { 'context.sdk': 'causality-swift/1.0' },
      }),
    );
  });

  test('user-agent facts fill what the client context did not say', () => {
    const got = accepted(
      { eventId: EVENT_ID, deviceId: 'dev-1', timestamp: TS, type: 'pageview', url: '/docs' },
      facts({ ua: { os: 'Android', osVersion: '14', browser: 'Chrome', browserVersion: '120.0', deviceModel: 'Pixel 8', deviceType: 'mobile' } }),
    );
    assert.deepEqual(
      got,
      expected({
        type: 'pageview',
        url: '/docs',
        path: '/docs',
        os: 'Android',
        os_version: '14',
        browser: 'Chrome',
        browser_version: '120.0',
        device_model: 'Pixel 8',
        device_type: 'mobile',
      }),
    );
  });

  test('context.userAgent sent by the client is not silently dropped', () => {
    // A server-side SDK forwards the end user's browser UA in context.userAgent: it must survive somewhere
    // (props, or UA-derived columns), not be accepted and then discarded.
    const ua = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1';
    const got = accepted({ eventId: EVENT_ID, deviceId: 'dev-1', timestamp: TS, type: 'pageview', context: { userAgent: ua } });
    const kept = JSON.stringify(got.props).includes('iPhone OS 17_2') || got.os === 'iOS';
    assert.ok(kept, `context.userAgent vanished: ${JSON.stringify(got)}`);
  });

  test('custom type: any name, all its fields in props', () => {
    const got = accepted({ eventId: EVENT_ID, type: 'level_up', deviceId: 'dev-1', timestamp: TS, level: 3, properties: { world: 'w1' } });
    assert.deepEqual(got, expected({ type: 'level_up', props: { level: 3, world: 'w1' } }));
  });
});

describe('normalizeEvent: refusals name the field', () => {
  const cases: Array<[string, unknown, FieldError, Partial<RequestFacts>?]> = [
    ['missing deviceId', { appId: 'appA', screenView: { screenName: 'Home' } }, { code: 'missing_field', field: 'deviceId', message: 'is required' }],
    [
      'bad appId',
      { appId: 'bad app!', deviceId: 'd', screenView: { screenName: 'Home' } },
      { code: 'invalid_field', field: 'appId', message: 'must be 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit' },
    ],
    [
      'bad currency (nested)',
      { deviceId: 'd', productView: { productId: 'p', currency: 'dollars' } },
      { code: 'invalid_field', field: 'productView.currency', message: 'must be a 3-letter ISO 4217 code' },
    ],
    [
      'bad currency (flat)',
      { deviceId: 'd', type: 'purchaseComplete', totalAmount: 5, currency: 'E' },
      { code: 'invalid_field', field: 'currency', message: 'must be a 3-letter ISO 4217 code' },
    ],
    [
      'missing kind field',
      { deviceId: 'd', buttonTap: { screenName: 'Home' } },
      { code: 'missing_field', field: 'buttonTap.buttonId', message: 'is required' },
    ],
    [
      'timestamp in seconds',
      { deviceId: 'd', screenView: { screenName: 'Home' }, timestamp: 1700000000 },
      { code: 'invalid_field', field: 'timestamp', message: 'is before 2000-01-01: epoch milliseconds expected (seconds given?)' },
    ],
    [
      'garbage timestamp',
      { deviceId: 'd', screenView: { screenName: 'Home' }, timestamp: 'yesterday-ish' },
      { code: 'invalid_field', field: 'timestamp', message: 'must be an ISO 8601 string or epoch milliseconds' },
    ],
    [
      'far-future timestamp',
      { deviceId: 'd', screenView: { screenName: 'Home' }, timestamp: NOW + 30 * 86_400_000 },
      { code: 'invalid_field', field: 'timestamp', message: 'is more than 7 days in the future' },
    ],
    [
      'event for another app',
      { appId: 'appB', deviceId: 'd', screenView: { screenName: 'Home' } },
      { code: 'forbidden_app', field: 'appId', message: 'this API key writes to app appA only' },
    ],
    [
      'admin key without appId',
      { deviceId: 'd', screenView: { screenName: 'Home' } },
      { code: 'missing_field', field: 'appId', message: 'is required with the admin key' },
      { appId: null },
    ],
    [
      'two kinds in one event',
      { deviceId: 'd', screenView: { screenName: 'Home' }, buttonTap: { buttonId: 'b' } },
      { code: 'invalid_field', field: 'buttonTap', message: 'only one event kind per event (also got screenView)' },
    ],
    [
      'type contradicts the nested kind',
      { deviceId: 'd', type: 'buttonTap', screenView: { screenName: 'Home' } },
      { code: 'invalid_field', field: 'type', message: 'says buttonTap but the event carries screenView' },
    ],
    ['not an object', [1, 2], { code: 'invalid_field', field: '(event)', message: 'must be a JSON object' }],
    ['null', null, { code: 'invalid_field', field: '(event)', message: 'must be a JSON object' }],
  ];
  for (const [name, input, error, f] of cases) {
    test(name, () => assert.deepEqual(refused(input, facts(f)), error));
  }

  test('empty deviceId: invalid_field deviceId', () => {
    const e = refused({ deviceId: '', screenView: { screenName: 'Home' } });
    assert.deepEqual([e.code, e.field], ['invalid_field', 'deviceId']);
  });

  test('no type and no kind object: missing_field type', () => {
    const e = refused({ deviceId: 'd', foo: 1 });
    assert.equal(e.code, 'missing_field');
    assert.equal(e.field, 'type');
  });

  test('negative price and non-integer quantity are refused with the field', () => {
    assert.deepEqual(
      { ...refused({ deviceId: 'd', addToCart: { productId: 'p', price: -1 } }), message: '' },
      { code: 'invalid_field', field: 'addToCart.price', message: '' },
    );
    assert.deepEqual(
      { ...refused({ deviceId: 'd', addToCart: { productId: 'p', quantity: 1.5 } }), message: '' },
      { code: 'invalid_field', field: 'addToCart.quantity', message: '' },
    );
  });
});

describe('event ids', () => {
  test('non-UUID eventId → stable UUIDv5; the original is kept in props.$client_event_id', () => {
    const a = accepted({ eventId: 'evt-42', deviceId: 'dev-1', timestamp: TS, appStart: {} });
    const b = accepted({ eventId: 'evt-42', deviceId: 'dev-1', timestamp: TS, appStart: { coldStart: false } });
    assert.equal(a.event_id, b.event_id, 'same app + same client id → same UUID');
    assert.ok(isUuid(a.event_id));
    assert.equal(uuidVersion(a.event_id), 5);
    assert.deepEqual(a, expected({ event_id: a.event_id, type: 'appStart', props: { $client_event_id: 'evt-42' } }));
    assert.equal(a.event_id, toEventUuid('appA', 'evt-42'));
  });

  test('toEventUuid: UUIDs pass through lower-cased; v5 differs per app and per id; none → fresh v7', () => {
    assert.equal(toEventUuid('appA', EVENT_ID.toUpperCase()), EVENT_ID);
    assert.equal(toEventUuid('appB', EVENT_ID), EVENT_ID);
    assert.notEqual(toEventUuid('appA', 'x-1'), toEventUuid('appB', 'x-1'));
    assert.notEqual(toEventUuid('appA', 'x-1'), toEventUuid('appA', 'x-2'));
    assert.equal(toEventUuid('appA', 'x-1'), toEventUuid('appA', 'x-1'));
    const ns = '5b1f9a7e-6a38-4c1e-9d51-0c7a3f0e2b44';
    assert.equal(toEventUuid('appA', 'x-1'), uuidv5('appA\u0000x-1', ns));
    const v7a = toEventUuid('appA', null);
    const v7b = toEventUuid('appA', undefined);
    assert.equal(uuidVersion(v7a), 7);
    assert.notEqual(v7a, v7b);
  });

  test('a UUID eventId is stored as given (lower-cased), without $client_event_id', () => {
    const got = accepted({ eventId: EVENT_ID.toUpperCase(), deviceId: 'dev-1', timestamp: TS, appBackground: {} });
    assert.deepEqual(got, expected({ type: 'appBackground' }));
  });
});

describe('parseTimestamp', () => {
  const now = NOW;
  const cases: Array<[string, unknown, number | null | string]> = [
    ['absent', undefined, null],
    ['null', null, null],
    ['epoch ms number', TS, TS],
    ['epoch ms digit string', String(TS), TS],
    ['fractional ms rounded', TS + 0.6, TS + 1],
    ['ISO 8601 with Z', '2024-05-01T10:00:00.000Z', TS],
    ['ISO 8601 with offset', '2024-05-01T12:00:00+02:00', TS],
    ['2000-01-01 exactly', Date.UTC(2000, 0, 1), Date.UTC(2000, 0, 1)],
    ['6 days ahead', now + 6 * 86_400_000, now + 6 * 86_400_000],
    ['seconds', 1_714_557_600, 'is before 2000-01-01: epoch milliseconds expected (seconds given?)'],
    ['seconds as digit string', '1714557600', 'is before 2000-01-01: epoch milliseconds expected (seconds given?)'],
    ['garbage string', 'not a date', 'must be an ISO 8601 string or epoch milliseconds'],
    ['boolean', true, 'must be an ISO 8601 string or epoch milliseconds'],
    ['NaN', Number.NaN, 'must be an ISO 8601 string or epoch milliseconds'],
    ['Infinity', Number.POSITIVE_INFINITY, 'must be an ISO 8601 string or epoch milliseconds'],
    ['8 days ahead', now + 8 * 86_400_000, 'is more than 7 days in the future'],
  ];
  for (const [name, input, want] of cases) {
    test(name, () => assert.equal(parseTimestamp(input, now), want));
  }
});

describe('parseWebUrl', () => {
  const noUtm = { source: null, medium: null, campaign: null, term: null, content: null };
  test('absolute URL with UTM parameters', () => {
    assert.deepEqual(parseWebUrl('https://example.com/docs/intro?utm_source=google&utm_medium=cpc&utm_campaign=launch&x=1'), {
      path: '/docs/intro',
      utm: { source: 'google', medium: 'cpc', campaign: 'launch', term: null, content: null },
    });
  });
  test('every UTM parameter, URL-decoded', () => {
    assert.deepEqual(parseWebUrl('https://e.com/?utm_source=a%20b&utm_medium=m&utm_campaign=c&utm_term=t&utm_content=k'), {
      path: '/',
      utm: { source: 'a b', medium: 'm', campaign: 'c', term: 't', content: 'k' },
    });
  });
  test('origin only → path /', () => assert.deepEqual(parseWebUrl('https://example.com'), { path: '/', utm: noUtm }));
  test('relative path: query and fragment stripped', () => assert.deepEqual(parseWebUrl('/pricing?plan=pro#faq'), { path: '/pricing', utm: noUtm }));
  test('not a URL → null', () => {
    assert.equal(parseWebUrl('not a url'), null);
    assert.equal(parseWebUrl(''), null);
  });
});
