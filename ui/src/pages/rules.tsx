// Rules: the rules files in force, an editor, validation (the error names its field), a backtest over the
// warehouse's last N days before saving (hits and entities per rule, sample anomalies), save and new file.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import type { PageProps } from '../main';
import { Badge, Card, ErrorBox, fmtInt, fmtTime } from '../ui';

interface RuleFile {
  file: string;
  ok: boolean;
  rules?: Array<{ id: string; severity: string }>;
  error?: { field: string; message: string };
}
interface Backtest {
  from: string;
  to: string;
  days: number;
  events: number;
  truncated: boolean;
  rules: Array<{ id: string; hits: number; entities: number }>;
  samples: Array<{ id: string; source: string; entityType: string; entityId: string; ts: string; explanation: string; severity: string }>;
  elapsedMs: number;
}

const NEW_RULE = `rules:
  - id: many-failed-logins-device
    description: Many failed logins from one device.
    kind: window
    key: device
    where: { type: userLogin, success: false }
    window: 10m
    aggregate: count
    threshold: 6
    severity: high
    category: brute_force
    cooldown: 30m
`;

export default function Rules({ who }: PageProps) {
  const [files, setFiles] = useState<RuleFile[]>([]);
  const [current, setCurrent] = useState<string | null>(null);
  const [newName, setNewName] = useState('');
  const [text, setText] = useState('');
  const [days, setDays] = useState(7);
  const [error, setError] = useState<unknown>(null);
  const [valid, setValid] = useState<string[] | null>(null);
  const [bt, setBt] = useState<Backtest | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);

  const reload = () => api<{ files: RuleFile[] }>('/v1/rules').then((r) => setFiles(r.files), setError);
  useEffect(() => {
    if (who.role === 'admin') reload();
  }, []);

  if (who.role !== 'admin')
    return (
      <div class="stack">
        <h1>Rules</h1>
        <p class="notice">Rules are managed with the admin key. Sign in with it to edit and backtest rules.</p>
      </div>
    );

  const clear = () => {
    setError(null);
    setValid(null);
    setSaved(null);
  };
  const open = async (file: string) => {
    clear();
    setBt(null);
    try {
      setText(await api<string>(`/v1/rules/${encodeURIComponent(file)}`, { raw: true }));
      setCurrent(file);
    } catch (e) {
      setError(e);
    }
  };
  const act = async (what: string, fn: () => Promise<void>) => {
    clear();
    setBusy(what);
    try {
      await fn();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };
  const validate = () =>
    act('validate', async () => {
      const r = await api<{ rules: Array<{ id: string }> }>('/v1/rules/validate', { text });
      setValid(r.rules.map((x) => x.id));
    });
  const backtest = () =>
    act('backtest', async () => {
      setBt(null);
      setBt(await api<Backtest>('/v1/rules/backtest', { body: { rules: text, days } }));
    });
  const save = () =>
    act('save', async () => {
      const name = current ?? newName.trim();
      const r = await api<{ file: string; rules: string[] }>(`/v1/rules/${encodeURIComponent(name)}`, { method: 'PUT', text });
      setSaved(`Saved ${r.file} (${r.rules.length} rules); the detector reloads it now.`);
      setCurrent(r.file);
      reload();
    });

  return (
    <div class="stack">
      <div class="page-head">
        <h1>Rules</h1>
        <span class="muted">Validate and backtest a change before saving it: saving enables it at once.</span>
      </div>
    <div class="split">
      <Card title="Rules files" id="rule-files">
        <ul class="plain" aria-label="Rules files">
          {files.map((f) => (
            <li>
              <button type="button" class="link" onClick={() => open(f.file)} aria-current={current === f.file ? 'true' : undefined}>
                {f.file}
              </button>{' '}
              {f.ok ? <Badge kind="ok">{f.rules!.length} rules</Badge> : <Badge kind="critical">invalid</Badge>}
              <div class="muted" style={{ fontSize: '12px' }}>
                {f.ok ? f.rules!.map((r) => r.id).join(', ') : `${f.error!.field}: ${f.error!.message}`}
              </div>
            </li>
          ))}
        </ul>
        <div class="field" style={{ marginTop: '12px' }}>
          <label for="new-rule-name">New rules file</label>
          <div class="row">
            <input id="new-rule-name" value={newName} onInput={(e) => setNewName(e.currentTarget.value)} placeholder="name, e.g. custom" pattern="[A-Za-z0-9][A-Za-z0-9._-]{0,63}" />
            <button
              type="button"
              disabled={!newName.trim()}
              onClick={() => {
                clear();
                setBt(null);
                setCurrent(null);
                setText(NEW_RULE);
              }}
            >
              Start
            </button>
          </div>
        </div>
      </Card>
      <div class="stack">
        <Card title={current ? `Edit ${current}` : newName ? `New file ${newName}` : 'Editor'} id="rule-editor">
          {!current && !text ? (
            <p class="muted">Open a rules file, or start a new one.</p>
          ) : (
            <>
              <label for="rule-text" class="sr-only">
                Rules (YAML or JSON)
              </label>
              <textarea id="rule-text" class="code" rows={18} spellcheck={false} value={text} onInput={(e) => setText(e.currentTarget.value)} />
              <div class="row" style={{ marginTop: '8px' }}>
                <button type="button" onClick={validate} disabled={!!busy}>
                  {busy === 'validate' ? 'Validating…' : 'Validate'}
                </button>
                <label for="bt-days">Backtest over the last</label>
                <input id="bt-days" type="number" min={1} max={90} value={days} onInput={(e) => setDays(Number(e.currentTarget.value) || 1)} style={{ width: '70px' }} />
                <span>days</span>
                <button type="button" onClick={backtest} disabled={!!busy}>
                  {busy === 'backtest' ? 'Backtesting…' : 'Backtest'}
                </button>
                <button type="button" class="primary" onClick={save} disabled={!!busy || (!current && !newName.trim())}>
                  {busy === 'save' ? 'Saving…' : 'Save and enable'}
                </button>
              </div>
              <ErrorBox error={error} />
              {valid && (
                <p class="success" role="status" data-testid="valid">
                  Valid: {valid.join(', ')}
                </p>
              )}
              {saved && (
                <p class="success" role="status">
                  {saved}
                </p>
              )}
            </>
          )}
        </Card>
        {bt && (
          <Card title={`Backtest: ${fmtInt(bt.events)} events, last ${bt.days} ${bt.days === 1 ? 'day' : 'days'}`} id="backtest">
            <p class="muted">
              {fmtTime(bt.from)} → {fmtTime(bt.to)} · {bt.elapsedMs} ms{bt.truncated ? ' · truncated: only the oldest 2,000,000 events were replayed' : ''}
            </p>
            <table class="data" data-testid="backtest-rules">
              <caption class="sr-only">Hits per rule</caption>
              <thead>
                <tr>
                  <th scope="col">rule</th>
                  <th scope="col">hits</th>
                  <th scope="col">entities</th>
                </tr>
              </thead>
              <tbody>
                {bt.rules.map((r) => (
                  <tr>
                    <td>
                      <code>{r.id}</code>
                    </td>
                    <td class="num">{fmtInt(r.hits)}</td>
                    <td class="num">{fmtInt(r.entities)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {bt.samples.length > 0 && (
              <>
                <h3>Sample anomalies</h3>
                <table class="data">
                  <caption class="sr-only">Sample anomalies the rules raised</caption>
                  <thead>
                    <tr>
                      <th scope="col">time</th>
                      <th scope="col">entity</th>
                      <th scope="col">explanation</th>
                    </tr>
                  </thead>
                  <tbody>
                    {bt.samples.map((s) => (
                      <tr>
                        <td>{fmtTime(s.ts)}</td>
                        <td>
                          {s.entityType} <code>{s.entityId.slice(0, 16)}</code>
                        </td>
                        <td>{s.explanation}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </>
            )}
          </Card>
        )}
      </div>
    </div>
    </div>
  );
}
