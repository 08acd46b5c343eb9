// Webhook test helpers: a real local HTTP receiver (node:http on 127.0.0.1, port 0) whose behaviour a test switches
// (answer, fail, hang, 429, down), that verifies every signature it gets; and small anomaly/endpoint factories.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Anomaly } from '../src/detect/anomaly.js';
import { verifyDelivery, type WebhookEndpoint } from '../src/react/webhook.js';

export interface Received {
  deliveryId: string;
  attempt: number;
  headers: IncomingMessage['headers'];
  raw: string;
  body: any;
  /** The signature verified with the receiver's secret. */
  verified: boolean;
  at: number;
}

/** What the receiver does with a request: a status (+ headers), hang (never answers) or drop (destroy the socket). */
export type Reply = { status: number; headers?: Record<string, string> } | 'hang' | 'drop';

export interface Receiver {
  url: string;
  port: number;
  /** Every request that reached the handler, in order (including the ones answered with an error). */
  requests: Received[];
  /** Requests answered 2xx, by delivery id (a count above 1 is a duplicate, same id). */
  accepted: Map<string, Received[]>;
  /** Decides each answer; default 200. */
  reply: (r: Received) => Reply;
  /** Stops listening (connections refused) until `up()`; the port is kept. */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startReceiver(secret: string, reply: (r: Received) => Reply = () => ({ status: 200 })): Promise<Receiver> {
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();
  let port = 0;
  const r: Receiver = {
    url: '',
    port: 0,
    requests: [],
    accepted: new Map(),
    reply,
    async down() {
      await new Promise<void>((res) => {
        server.close(() => res());
        for (const s of sockets) s.destroy();
      });
    },
    async up() {
      server = make();
      await new Promise<void>((res) => server.listen(port, '127.0.0.1', () => res()));
    },
    async close() {
      for (const h of hanging) h.destroy();
      if (server.listening) await r.down();
    },
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: any = null;
      try {
        body = JSON.parse(raw);
      } catch {
        /* kept raw */
      }
      const rec: Received = {
        deliveryId: String(req.headers['x-causality-delivery']),
        attempt: Number(req.headers['x-causality-attempt']),
        headers: req.headers,
        raw,
        body,
        verified: verifyDelivery(secret, { signature: req.headers['x-causality-signature'] as string, timestamp: req.headers['x-causality-timestamp'] as string }, raw),
        at: Date.now(),
      };
      r.requests.push(rec);
      const what = r.reply(rec);
      if (what === 'hang') {
        hanging.add(res);
        return;
      }
      if (what === 'drop') {
        req.socket.destroy();
        return;
      }
      if (what.status >= 200 && what.status < 300) r.accepted.set(rec.deliveryId, [...(r.accepted.get(rec.deliveryId) ?? []), rec]);
      res.writeHead(what.status, { 'content-type': 'text/plain', ...(what.headers ?? {}) });
      res.end('ok');
    });
  };
  const make = () => {
    const s = createServer(handle);
    s.keepAliveTimeout = 60_000;
    // A failed assertion before close() must not keep the test process alive.
    s.unref();
    s.on('connection', (sock) => {
      sock.unref();
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
    });
    return s;
  };
  let server: Server = make();
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  port = (server.address() as AddressInfo).port;
  r.port = port;
  r.url = `http://127.0.0.1:${port}/hook`;
  return r;
}

export const SECRET = 'test-webhook-secret-0123456789';

export function endpoint(o: Partial<WebhookEndpoint> & { id: string; url: string }): WebhookEndpoint {
  return { secret: SECRET, format: 'json', filters: {}, enabled: true, description: null, maxPerMinute: null, origin: 'api', createdAt: 0, updatedAt: 0, ...o };
}

let n = 0;
export function anomaly(o: Partial<Anomaly> = {}): Anomaly {
  n++;
  return {
    id: `anom-${process.pid}-${n}`,
    appId: 'shop',
    entityType: 'device',
    entityId: `dev-${n}`,
    deviceId: `dev-${n}`,
    userId: null,
    sessionId: null,
    ipHash: null,
    ts: Date.UTC(2026, 10, 2, 9) + n,
    score: 0.9,
    severity: 'high',
    source: 'rule:credential-stuffing-device',
    category: 'brute_force',
    explanation: '12 failed logins in 60 s from one device (expected at most 5)',
    eventIds: [`e-${n}`],
    details: { failures: 12 },
    ...o,
  };
}
