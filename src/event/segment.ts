// Segment's HTTP Tracking API (track, page, screen, identify, group, alias, batch) mapped onto our envelope, so apps
// instrumented with a Segment SDK send to Causality unchanged. Ingest checks and every consumer use this one mapping.
import { skewCorrectedTimestamp } from './envelope.js';
import { isObject } from './object.js';

export const SEGMENT_TYPES = ['track', 'page', 'screen', 'identify', 'group', 'alias'] as const;
export type SegmentType = (typeof SEGMENT_TYPES)[number];

// Segment's e-commerce and mobile-lifecycle spec events that have a typed kind of ours.
const SPEC_EVENTS: Record<string, string> = {
  'Order Completed': 'purchaseComplete',
  'Product Viewed': 'productView',
  'Product Added': 'addToCart',
  'Signed In': 'userLogin',
  'Signed Out': 'userLogout',
  'Application Opened': 'appStart',
  'Application Backgrounded': 'appBackground',
  'Application Foregrounded': 'appForeground',
};

const defined = (o: Record<string, unknown>) => {
  for (const k of Object.keys(o)) if (o[k] === undefined || o[k] === null) delete o[k];
  return o;
};
const obj = (v: unknown): Record<string, unknown> => (isObject(v) ? v : {});

/** Typed fields of a spec event, from its Segment properties (snake_case per the spec). */
function specFields(kind: string, p: Record<string, unknown>): Record<string, unknown> {
  switch (kind) {
    case 'purchaseComplete':
      return {
        orderId: p.order_id ?? p.orderId,
        totalAmount: p.total ?? p.revenue,
        currency: p.currency,
        itemCount: Array.isArray(p.products) ? p.products.length : undefined,
      };
    case 'productView':
      return { productId: p.product_id ?? p.productId ?? p.sku, price: p.price, currency: p.currency };
    case 'addToCart':
      return { productId: p.product_id ?? p.productId ?? p.sku, quantity: p.quantity, price: p.price, currency: p.currency };
    case 'userLogin':
      return { success: typeof p.success === 'boolean' ? p.success : true, method: p.method };
    default:
      return {};
  }
}

const SPEC_PROPS: Record<string, string[]> = {
  purchaseComplete: ['order_id', 'orderId', 'total', 'revenue', 'currency'],
  productView: ['product_id', 'productId', 'sku', 'price', 'currency'],
  addToCart: ['product_id', 'productId', 'sku', 'quantity', 'price', 'currency'],
  userLogin: ['success', 'method'],
};

/**
 * One Segment message → our flat envelope. `type` is the path's type for single calls (the body need not say it).
 * `context.ip` is dropped: the raw IP is never stored (the request's IP is hashed at the edge).
 */
export function segmentToEnvelope(message: unknown, pathType: SegmentType | null, batchSentAt: unknown, receivedAt: number): unknown {
  if (!isObject(message)) return message;
  const { messageId, anonymousId, userId, type, event, name, properties, traits, context, timestamp, originalTimestamp, sentAt, receivedAt: _clientReceivedAt, integrations, _metadata, writeKey, groupId, previousId, category, ...rest } = message;
  const segType = (pathType ?? type) as SegmentType | undefined;
  const ctx = obj(context);
  const { app, device, os, network, page, campaign, library, locale, userAgent, ip, sessionId, ...ctxRest } = ctx;
  void ip;
  void _clientReceivedAt;
  void writeKey;
  const props: Record<string, unknown> = { ...obj(properties) };
  let kind: string;
  const fields: Record<string, unknown> = {};
  switch (segType) {
    case 'track': {
      const spec = typeof event === 'string' ? SPEC_EVENTS[event] : undefined;
      kind = spec ?? (typeof event === 'string' ? event : '');
      if (spec) {
        Object.assign(fields, specFields(spec, props));
        for (const k of SPEC_PROPS[spec] ?? []) delete props[k];
        props.$segment_event = event;
      }
      break;
    }
    case 'page':
      kind = 'pageview';
      if (name !== undefined) props.name = name;
      if (category !== undefined) props.category = category;
      break;
    case 'screen':
      kind = 'screenView';
      fields.screenName = name ?? props.name;
      if (category !== undefined) props.category = category;
      break;
    case 'identify':
      kind = 'identify';
      if (traits !== undefined) props.traits = traits;
      break;
    case 'group':
      kind = 'group';
      props.groupId = groupId;
      if (traits !== undefined) props.traits = traits;
      break;
    case 'alias':
      kind = 'alias';
      props.previousId = previousId;
      break;
    default:
      // Not a Segment type: left for the envelope check to refuse, naming the field.
      return { ...message, type: typeof type === 'string' && type ? `segment:${type}` : undefined };
  }
  const pg = obj(page);
  const urlOf = props.url ?? pg.url;
  const referrerOf = props.referrer ?? pg.referrer;
  delete props.url;
  delete props.referrer;
  const cmp = obj(campaign);
  const dev = obj(device);
  const net = obj(network);
  const envelope: Record<string, unknown> = {
    ...rest,
    ...fields,
    eventId: messageId,
    deviceId: dev.id ?? anonymousId ?? userId,
    userId,
    sessionId: sessionId ?? props.sessionId ?? props.session_id,
    type: kind || undefined,
    timestamp: skewCorrectedTimestamp(timestamp ?? originalTimestamp, sentAt ?? batchSentAt, receivedAt),
    url: urlOf,
    referrer: referrerOf,
    context: defined({
      ...ctxRest,
      appVersion: obj(app).version,
      appBuild: obj(app).build,
      platform: typeof dev.type === 'string' ? dev.type : undefined,
      os: obj(os).name,
      osVersion: obj(os).version,
      deviceModel: dev.model,
      locale,
      userAgent,
      networkType: net.wifi === true ? 'wifi' : net.cellular === true ? 'cellular' : undefined,
      campaign: Object.keys(cmp).length ? { source: cmp.source, medium: cmp.medium, campaign: cmp.name, term: cmp.term, content: cmp.content } : undefined,
      library,
      integrations,
    }),
    properties: defined(props),
  };
  void _metadata;
  if (Object.keys(props).length === 0) delete envelope.properties;
  return defined(envelope);
}
