// Settings: apps and their keys (masked), webhook endpoints (create, enable/disable, delete; the signing secret is
// shown once), and dead letters with replay.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import type { PageProps } from '../main';
import { Badge, Card, ErrorBox, fmtTime } from '../ui';

interface Endpoint {
  id: string;
  url: string;
  format: string;
  enabled: boolean;
  description: string | null;
  origin: string;
  secretHint: string;
  filters: { minSeverity?: string; appIds?: string[] };
}
interface Dead {
  id: string;
  endpointId: string;
  anomalyId: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  updatedAt: string;
}

export default function Settings({ who }: PageProps) {
  const [hooks, setHooks] = useState<Endpoint[]>([]);
  const [dead, setDead] = useState<Dead[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [form, setForm] = useState({ url: '', format: 'json', minSeverity: '', description: '' });
  const [secret, setSecret] = useState<{ id: string; secret: string } | null>(null);
  const [msg, setMsg] = useState<string | null>(null);

  const load = () => {
    api<{ items: Endpoint[] }>('/v1/webhooks').then((r) => setHooks(r.items), setError);
    api<{ items: Dead[] }>('/v1/webhooks/dead-letters?limit=100').then((r) => setDead(r.items), setError);
  };
  useEffect(load, []);

  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const r = await api<Endpoint & { secret: string }>('/v1/webhooks', {
        body: { url: form.url, format: form.format, description: form.description || undefined, filters: form.minSeverity ? { minSeverity: form.minSeverity } : {} },
      });
      setSecret({ id: r.id, secret: r.secret });
      setForm({ url: '', format: 'json', minSeverity: '', description: '' });
      load();
    } catch (err) {
      setError(err);
    }
  };
  const act = async (fn: () => Promise<unknown>, done?: string) => {
    setError(null);
    setMsg(null);
    try {
      await fn();
      if (done) setMsg(done);
      load();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <div class="stack">
      <div class="page-head">
        <h1>Settings</h1>
      </div>
      <ErrorBox error={error} />
      {msg && (
        <p class="success" role="status">
          {msg}
        </p>
      )}
      <div class="grid grid-2">
        <Card title="Apps and API keys" id="apps">
          <table class="data">
            <caption class="sr-only">Apps and their keys, masked</caption>
            <thead>
              <tr>
                <th scope="col">app</th>
                <th scope="col">key</th>
                <th scope="col">signed ingest</th>
              </tr>
            </thead>
            <tbody>
              {who.apps.map((a) => (
                <tr>
                  <td>{a.appId}</td>
                  <td>
                    <code>{a.key}</code>
                  </td>
                  <td>{a.signed ? 'HMAC required' : 'no'}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p class="muted">
            Signed in as {who.role === 'admin' ? 'the admin (every app)' : `app ${who.appId}`}. Keys are set in the config file or <code>CAUSALITY_APP_KEYS</code>; they are never shown in full here.
          </p>
        </Card>
        <Card title="New webhook" id="new-webhook">
          <form onSubmit={create} class="stack">
            <div class="field">
              <label for="wh-url">URL</label>
              <input id="wh-url" type="url" required value={form.url} onInput={(e) => setForm({ ...form, url: e.currentTarget.value })} placeholder="https://hooks.example.com/causality" />
            </div>
            <div class="row">
              <div class="field">
                <label for="wh-format">Format</label>
                <select id="wh-format" value={form.format} onChange={(e) => setForm({ ...form, format: e.currentTarget.value })}>
                  <option value="json">JSON</option>
                  <option value="slack">Slack</option>
                </select>
              </div>
              <div class="field">
                <label for="wh-sev">Minimum severity</label>
                <select id="wh-sev" value={form.minSeverity} onChange={(e) => setForm({ ...form, minSeverity: e.currentTarget.value })}>
                  <option value="">any</option>
                  {['low', 'medium', 'high', 'critical'].map((s) => (
                    <option value={s}>{s}</option>
                  ))}
                </select>
              </div>
              <div class="field grow">
                <label for="wh-desc">Description</label>
                <input id="wh-desc" value={form.description} onInput={(e) => setForm({ ...form, description: e.currentTarget.value })} />
              </div>
            </div>
            <div>
              <button type="submit" class="primary">
                Create webhook
              </button>
            </div>
            {secret && (
              <p class="notice" role="status" data-testid="webhook-secret">
                Created <code>{secret.id}</code>. Its signing secret, shown this once: <code>{secret.secret}</code>
              </p>
            )}
          </form>
        </Card>
      </div>
      <Card title="Webhooks" id="webhooks">
        {hooks.length === 0 ? (
          <p class="muted">No webhook endpoints.</p>
        ) : (
          <table class="data" data-testid="webhooks">
            <caption class="sr-only">Webhook endpoints</caption>
            <thead>
              <tr>
                <th scope="col">id</th>
                <th scope="col">url</th>
                <th scope="col">format</th>
                <th scope="col">filters</th>
                <th scope="col">secret</th>
                <th scope="col">state</th>
                <th scope="col">actions</th>
              </tr>
            </thead>
            <tbody>
              {hooks.map((h) => (
                <tr>
                  <td>
                    <code>{h.id}</code>
                  </td>
                  <td>{h.url}</td>
                  <td>{h.format}</td>
                  <td>{Object.keys(h.filters).length ? JSON.stringify(h.filters) : 'all anomalies'}</td>
                  <td>
                    <code>{h.secretHint}</code>
                  </td>
                  <td>{h.enabled ? <Badge kind="ok">enabled</Badge> : <Badge kind="low">disabled</Badge>}</td>
                  <td>
                    <div class="row">
                    {h.origin === 'config' ? (
                      <span class="muted">config file</span>
                    ) : (
                      <>
                        <button type="button" onClick={() => act(() => api(`/v1/webhooks/${encodeURIComponent(h.id)}`, { method: 'PATCH', body: { enabled: !h.enabled } }))}>
                          {h.enabled ? 'Disable' : 'Enable'}
                        </button>
                        <button type="button" class="danger" onClick={() => confirm(`Delete webhook ${h.id}?`) && act(() => api(`/v1/webhooks/${encodeURIComponent(h.id)}`, { method: 'DELETE' }), `Deleted ${h.id}.`)}>
                          Delete
                        </button>
                      </>
                    )}
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
      <Card title={`Dead letters (${dead.length})`} id="dead-letters">
        {dead.length === 0 ? (
          <p class="muted">No dead letters: every delivery either succeeded or is still being retried.</p>
        ) : (
          <table class="data" data-testid="dead-letters">
            <caption class="sr-only">Deliveries that ran out of attempts</caption>
            <thead>
              <tr>
                <th scope="col">delivery</th>
                <th scope="col">endpoint</th>
                <th scope="col">attempts</th>
                <th scope="col">last answer</th>
                <th scope="col">updated</th>
                <th scope="col">actions</th>
              </tr>
            </thead>
            <tbody>
              {dead.map((d) => (
                <tr>
                  <td>
                    <code>{d.id.slice(0, 8)}</code>
                  </td>
                  <td>{d.endpointId}</td>
                  <td class="num">{d.attempts}</td>
                  <td>{d.lastStatus ? `HTTP ${d.lastStatus}` : d.lastError ?? '–'}</td>
                  <td>{fmtTime(d.updatedAt)}</td>
                  <td>
                    <button type="button" onClick={() => act(() => api(`/v1/webhooks/dead-letters/${encodeURIComponent(d.id)}/replay`, { method: 'POST' }), `Replayed ${d.id.slice(0, 8)}.`)}>
                      Replay
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </div>
  );
}
