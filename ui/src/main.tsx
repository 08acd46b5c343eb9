// The UI's shell: sign-in (admin key or app key, kept in sessionStorage), the navigation, the app picker (admin),
// and a small router over /ui/<page>; each page's code is loaded when first opened.
import { render, type FunctionComponent } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, session, type Who } from './api';
import { ErrorBox } from './ui';
import './style.css';

export interface PageProps {
  who: Who;
  /** App the pages show: an app key's own; the admin's pick ('' = all apps). */
  app: string;
  /** Path below the page, e.g. an anomaly id. */
  rest: string;
  navigate: (to: string) => void;
}

const PAGES: Array<{ id: string; title: string; load: () => Promise<{ default: FunctionComponent<PageProps> }> }> = [
  { id: 'overview', title: 'Overview', load: () => import('./pages/overview') },
  { id: 'explore', title: 'Explore', load: () => import('./pages/explore') },
  { id: 'anomalies', title: 'Anomalies', load: () => import('./pages/anomalies') },
  { id: 'rules', title: 'Rules', load: () => import('./pages/rules') },
  { id: 'metrics', title: 'Metrics', load: () => import('./pages/metrics') },
  { id: 'settings', title: 'Settings', load: () => import('./pages/settings') },
];

const BASE = '/ui/';
const route = () => {
  const [page = '', ...rest] = location.pathname.slice(BASE.length).split('/');
  return { page: PAGES.some((p) => p.id === page) ? page : 'overview', rest: rest.join('/') };
};

function SignIn({ onIn }: { onIn: (w: Who) => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const who = await api<Who>('/v1/apps', { key: key.trim() });
      session.setKey(key.trim());
      onIn(who);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? new ApiError(401, 'invalid_api_key', 'that key is not known to this server') : err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin" id="main">
      <form onSubmit={submit} class="card signin-card" aria-labelledby="signin-title">
        <h1 id="signin-title">
          <span class="logo" aria-hidden="true">◆</span> Causality
        </h1>
        <p class="muted">Sign in with the admin key, or an app key to see that app only. The key stays in this tab.</p>
        <label for="api-key">API key</label>
        <input id="api-key" type="password" autocomplete="current-password" value={key} onInput={(e) => setKey(e.currentTarget.value)} required autoFocus />
        <ErrorBox error={error} />
        <button type="submit" class="primary" disabled={busy || !key.trim()}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function Shell({ who, onOut }: { who: Who; onOut: () => void }) {
  const [r, setR] = useState(route());
  const [app, setApp] = useState(who.appId ?? session.app());
  const [Page, setPage] = useState<{ id: string; C: FunctionComponent<PageProps> } | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);

  useEffect(() => {
    const pop = () => setR(route());
    addEventListener('popstate', pop);
    return () => removeEventListener('popstate', pop);
  }, []);

  useEffect(() => {
    const p = PAGES.find((x) => x.id === r.page)!;
    document.title = `${p.title} · Causality`;
    if (Page?.id === p.id) return;
    p.load().then(
      (m) => setPage({ id: p.id, C: m.default }),
      (e) => setLoadError(e),
    );
  }, [r.page]);

  const navigate = (to: string) => {
    history.pushState(null, '', BASE + to);
    setR(route());
  };
  const link = (e: MouseEvent, to: string) => {
    if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    navigate(to);
  };

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={BASE} onClick={(e) => link(e, 'overview')}>
          <span class="logo" aria-hidden="true">◆</span> Causality
        </a>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map((p) => (
              <li>
                <a href={BASE + p.id} aria-current={r.page === p.id ? 'page' : undefined} onClick={(e) => link(e, p.id)}>
                  {p.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          {who.role === 'admin' ? (
            <>
              <label for="app-pick">App</label>
              <select
                id="app-pick"
                value={app}
                onChange={(e) => {
                  session.setApp(e.currentTarget.value);
                  setApp(e.currentTarget.value);
                }}
              >
                <option value="">all apps</option>
                {who.apps.map((a) => (
                  <option value={a.appId}>{a.appId}</option>
                ))}
              </select>
            </>
          ) : (
            <span>
              app <strong>{who.appId}</strong>
            </span>
          )}
          <button
            type="button"
            onClick={() => {
              session.setKey(null);
              onOut();
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <ErrorBox error={loadError} />
        {Page && Page.id === r.page ? <Page.C key={`${Page.id}|${app}`} who={who} app={app} rest={r.rest} navigate={navigate} /> : <p class="muted">Loading…</p>}
      </main>
    </>
  );
}

function App() {
  const [who, setWho] = useState<Who | null>(null);
  const [checking, setChecking] = useState(!!session.key());
  useEffect(() => {
    if (!session.key()) return;
    api<Who>('/v1/apps')
      .then(setWho, () => session.setKey(null))
      .finally(() => setChecking(false));
  }, []);
  if (checking) return <p class="muted">Loading…</p>;
  return who ? <Shell who={who} onOut={() => setWho(null)} /> : <SignIn onIn={setWho} />;
}

render(<App />, document.getElementById('app')!);
