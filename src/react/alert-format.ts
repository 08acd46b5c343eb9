// What a receiver gets: the generic JSON alert (the anomaly with its explanation, the delivery id, and the group it
// stands for) or a Slack incoming-webhook message. Built from the stored delivery and anomaly only, so every retry of
// one delivery id sends the same bytes (only the signature's timestamp changes).
import type { Anomaly } from '../detect/anomaly.js';
import type { AlertFormat } from './webhook.js';

/** The delivery fields a body is made from. */
export interface AlertDelivery {
  id: string;
  endpointId: string;
  /** How many anomalies of this endpoint + entity + source this alert stands for (1 unless grouped). */
  anomalyCount: number;
  /** Their ids (the first ones, at most 50). */
  anomalyIds: string[];
  /** Event time of the newest one. */
  lastTs: number;
  createdAt: number;
}

/** The anomaly as sent: everything the detector said, and when the store first saw it. */
export type AlertAnomaly = Anomaly & { createdAt: number };

export interface JsonAlert {
  deliveryId: string;
  type: 'anomaly';
  endpointId: string;
  createdAt: string;
  anomaly: Omit<AlertAnomaly, 'ts' | 'createdAt'> & { ts: string; createdAt: string };
  group: { count: number; anomalyIds: string[]; lastTs: string; truncated: boolean };
}

export function jsonAlert(d: AlertDelivery, a: AlertAnomaly): JsonAlert {
  return {
    deliveryId: d.id,
    type: 'anomaly',
    endpointId: d.endpointId,
    createdAt: new Date(d.createdAt).toISOString(),
    anomaly: { ...a, ts: new Date(a.ts).toISOString(), createdAt: new Date(a.createdAt).toISOString() },
    group: { count: d.anomalyCount, anomalyIds: d.anomalyIds, lastTs: new Date(d.lastTs).toISOString(), truncated: d.anomalyCount > d.anomalyIds.length },
  };
}

const SEVERITY_ICON: Record<string, string> = { low: ':information_source:', medium: ':warning:', high: ':rotating_light:', critical: ':fire:' };
// Slack's mrkdwn treats these three as control characters.
const esc = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/** A Slack incoming-webhook message (`text` fallback + Block Kit blocks). */
export function slackAlert(d: AlertDelivery, a: AlertAnomaly) {
  const more = d.anomalyCount > 1 ? ` (${d.anomalyCount} anomalies grouped)` : '';
  const title = `${SEVERITY_ICON[a.severity] ?? ''} ${a.severity.toUpperCase()} ${a.category} on ${a.entityType} ${a.entityId} in app ${a.appId}${more}`.trim();
  return {
    text: esc(`${title}: ${a.explanation}`),
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: `*${esc(title)}*\n${esc(a.explanation)}` } },
      {
        type: 'section',
        fields: [
          { type: 'mrkdwn', text: `*Source*\n\`${esc(a.source)}\`` },
          { type: 'mrkdwn', text: `*Score*\n${a.score.toFixed(2)}` },
          { type: 'mrkdwn', text: `*Event time*\n${new Date(a.ts).toISOString()}` },
          { type: 'mrkdwn', text: `*Anomaly*\n\`${a.id}\`` },
        ],
      },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `delivery ${d.id}` }] },
    ],
  };
}

export function renderAlert(format: AlertFormat, d: AlertDelivery, a: AlertAnomaly): string {
  return JSON.stringify(format === 'slack' ? slackAlert(d, a) : jsonAlert(d, a));
}
