// Pulling change history through the sources' REST APIs (seed 002's ingest, with pagination and rate limits done
// right): GitHub (Link header), Jira (startAt/maxResults), Slack (cursor), Jenkins (tree API ranges). Every request
// backs off on 429 / exhausted rate limits, honouring Retry-After and X-RateLimit-Reset, and retries 5xx.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { ChangeInput } from './changes.js';

export interface HttpDeps {
  fetch?: typeof fetch;
  /** Waits between retries (injected in tests to record the waits instead of sleeping). */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  maxRetries?: number;
  /** Longest single wait the importer accepts (default 15 minutes). */
  maxWaitMs?: number;
  onProgress?: (fetched: number) => void;
}

export class ImportError extends Error {}

const realSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** GET with backoff: 429, or 403 with X-RateLimit-Remaining: 0, waits as told (Retry-After, else X-RateLimit-Reset); 5xx backs off exponentially. */
export async function getWithBackoff(url: string, headers: Record<string, string>, deps: HttpDeps = {}): Promise<Response> {
  const doFetch = deps.fetch ?? fetch;
  const sleep = deps.sleep ?? realSleep;
  const now = deps.now ?? Date.now;
  const maxRetries = deps.maxRetries ?? 6;
  const maxWait = deps.maxWaitMs ?? 15 * 60_000;
  for (let attempt = 0; ; attempt++) {
    const res = await doFetch(url, { headers });
    const limited = res.status === 429 || (res.status === 403 && res.headers.get('x-ratelimit-remaining') === '0');
    if (res.ok || (!limited && res.status < 500)) return res;
    if (attempt >= maxRetries) return res;
    let wait = Math.min(60_000, 1000 * 2 ** attempt);
    const retryAfter = res.headers.get('retry-after');
    const reset = res.headers.get('x-ratelimit-reset');
    if (limited && retryAfter !== null && /^\d+$/.test(retryAfter.trim())) wait = Number(retryAfter) * 1000;
    else if (limited && retryAfter) wait = Math.max(0, Date.parse(retryAfter) - now());
    else if (limited && reset !== null && /^\d+$/.test(reset)) wait = Math.max(0, Number(reset) * 1000 - now()) + 1000;
    if (wait > maxWait) throw new ImportError(`${url}: rate limited for ${Math.round(wait / 1000)} s (more than the ${Math.round(maxWait / 1000)} s allowed)`);
    await res.body?.cancel();
    await sleep(wait);
  }
}

async function getJson(url: string, headers: Record<string, string>, deps: HttpDeps): Promise<{ body: any; res: Response }> {
  const res = await getWithBackoff(url, { accept: 'application/json', ...headers }, deps);
  if (!res.ok) throw new ImportError(`GET ${url}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
  return { body: await res.json(), res };
}

/** The rel="next" URL of a GitHub Link header. */
export function nextLink(link: string | null): string | null {
  if (!link) return null;
  for (const part of link.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (m) return m[1]!;
  }
  return null;
}

export interface GithubImport {
  baseUrl?: string;
  token?: string;
  /** owner/name */
  repo: string;
  since: number;
}

/** Commits since `since` and deployments created since then. */
export async function importGithub(o: GithubImport, deps: HttpDeps = {}): Promise<ChangeInput[]> {
  const base = (o.baseUrl ?? 'https://api.github.com').replace(/\/$/, '');
  const headers: Record<string, string> = { accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', ...(o.token ? { authorization: `Bearer ${o.token}` } : {}) };
  const out: ChangeInput[] = [];
  const service = o.repo.split('/').pop();
  let url: string | null = `${base}/repos/${o.repo}/commits?since=${encodeURIComponent(new Date(o.since).toISOString())}&per_page=100`;
  while (url) {
    const { body, res } = await getJson(url, headers, deps);
    for (const c of body as any[]) {
      const message: string = c.commit?.message ?? '';
      out.push({
        id: `github:commit:${o.repo}:${c.sha}`,
        source: 'github',
        kind: 'commit',
        service,
        commit: c.sha,
        author: c.author?.login ?? c.commit?.author?.name,
        title: message.split('\n')[0]!.slice(0, 300) || `commit ${String(c.sha).slice(0, 12)}`,
        description: message.includes('\n') ? message.slice(message.indexOf('\n') + 1).trim() || undefined : undefined,
        url: c.html_url,
        time: c.commit?.committer?.date ?? c.commit?.author?.date,
        paths: Array.isArray(c.files) ? c.files.map((f: any) => f.filename) : undefined,
      });
    }
    deps.onProgress?.(out.length);
    url = nextLink(res.headers.get('link'));
  }
  url = `${base}/repos/${o.repo}/deployments?per_page=100`;
  while (url) {
    const { body, res } = await getJson(url, headers, deps);
    let older = false;
    for (const d of body as any[]) {
      if (Date.parse(d.created_at) < o.since) {
        older = true;
        continue;
      }
      out.push({
        id: `github:deployment:${o.repo}:${d.id}`,
        source: 'github',
        kind: 'deploy',
        service,
        component: d.environment,
        commit: d.sha,
        version: d.ref,
        author: d.creator?.login,
        title: `deploy ${d.ref ?? String(d.sha).slice(0, 12)} to ${d.environment ?? 'production'}${d.description ? `: ${d.description}` : ''}`,
        description: d.description ?? undefined,
        url: d.url,
        time: d.created_at,
      });
    }
    deps.onProgress?.(out.length);
    // Deployments come newest first: stop paging once a page reaches past `since`.
    url = older ? null : nextLink(res.headers.get('link'));
  }
  return out;
}

export interface JiraImport {
  baseUrl: string;
  /** API token; with `email` it is sent as Basic (Jira Cloud), alone as Bearer (Data Center PAT). */
  token?: string;
  email?: string;
  jql?: string;
  since: number;
  pageSize?: number;
}

export async function importJira(o: JiraImport, deps: HttpDeps = {}): Promise<ChangeInput[]> {
  const base = o.baseUrl.replace(/\/$/, '');
  const headers: Record<string, string> = o.token
    ? { authorization: o.email ? `Basic ${Buffer.from(`${o.email}:${o.token}`).toString('base64')}` : `Bearer ${o.token}` }
    : {};
  const days = Math.max(1, Math.ceil((Date.now() - o.since) / 86_400_000));
  const jql = o.jql ?? `updated >= -${days}d ORDER BY updated ASC`;
  const pageSize = o.pageSize ?? 50;
  const out: ChangeInput[] = [];
  for (let startAt = 0; ; ) {
    const url = `${base}/rest/api/2/search?jql=${encodeURIComponent(jql)}&startAt=${startAt}&maxResults=${pageSize}&fields=summary,description,status,components,updated,project,labels`;
    const { body } = await getJson(url, headers, deps);
    const issues: any[] = body.issues ?? [];
    for (const i of issues) {
      const f = i.fields ?? {};
      if (Date.parse(f.updated) < o.since) continue;
      out.push({
        id: `jira:${i.key}:${f.updated}`,
        source: 'jira',
        kind: 'ticket',
        service: f.project?.key,
        component: f.components?.[0]?.name,
        title: `${i.key}: ${f.summary ?? ''}${f.status?.name ? ` [${f.status.name}]` : ''}`,
        description: typeof f.description === 'string' ? f.description.slice(0, 20_000) : undefined,
        url: `${base}/browse/${i.key}`,
        time: f.updated,
        segments: Array.isArray(f.labels) ? f.labels : undefined,
      });
    }
    deps.onProgress?.(out.length);
    startAt += issues.length;
    if (!issues.length || startAt >= (body.total ?? 0)) break;
  }
  return out;
}

export interface SlackImport {
  baseUrl?: string;
  token: string;
  channel: string;
  since: number;
}

export async function importSlack(o: SlackImport, deps: HttpDeps = {}): Promise<ChangeInput[]> {
  const base = (o.baseUrl ?? 'https://slack.com/api').replace(/\/$/, '');
  const headers = { authorization: `Bearer ${o.token}` };
  const out: ChangeInput[] = [];
  let cursor = '';
  for (;;) {
    const url = `${base}/conversations.history?channel=${encodeURIComponent(o.channel)}&oldest=${(o.since / 1000).toFixed(6)}&limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const { body } = await getJson(url, headers, deps);
    if (body.ok !== true) throw new ImportError(`Slack conversations.history: ${body.error ?? 'not ok'}`);
    for (const m of body.messages ?? []) {
      if (m.type !== 'message' || (m.subtype && m.subtype !== 'bot_message')) continue;
      const text: string = m.text ?? '';
      out.push({
        id: `slack:${o.channel}:${m.ts}`,
        source: 'slack',
        kind: 'message',
        service: o.channel,
        author: m.user ?? m.username ?? m.bot_id,
        title: text.split('\n')[0]!.slice(0, 300) || '(message)',
        description: text || undefined,
        time: m.ts,
      });
    }
    deps.onProgress?.(out.length);
    cursor = body.has_more ? body.response_metadata?.next_cursor ?? '' : '';
    if (!cursor) break;
  }
  return out;
}

export interface JenkinsImport {
  baseUrl: string;
  user?: string;
  token?: string;
  /** Job name; folders as `folder/job`. */
  job: string;
  since: number;
  pageSize?: number;
}

export async function importJenkins(o: JenkinsImport, deps: HttpDeps = {}): Promise<ChangeInput[]> {
  const base = o.baseUrl.replace(/\/$/, '');
  const headers: Record<string, string> = o.user && o.token ? { authorization: `Basic ${Buffer.from(`${o.user}:${o.token}`).toString('base64')}` } : {};
  const jobPath = o.job.split('/').map((j) => `job/${encodeURIComponent(j)}`).join('/');
  const page = o.pageSize ?? 100;
  const out: ChangeInput[] = [];
  const deploy = /deploy|release|prod/i.test(o.job);
  for (let start = 0; ; start += page) {
    const tree = `builds[number,result,timestamp,url,displayName,changeSets[items[commitId,msg,author[fullName],affectedPaths]]]{${start},${start + page}}`;
    const { body } = await getJson(`${base}/${jobPath}/api/json?tree=${encodeURIComponent(tree)}`, headers, deps);
    const builds: any[] = body.builds ?? [];
    let older = false;
    for (const b of builds) {
      if (b.timestamp < o.since) {
        older = true;
        continue;
      }
      if (b.result === null || b.result === undefined) continue; // still running
      const items: any[] = (b.changeSets ?? []).flatMap((s: any) => s.items ?? []);
      out.push({
        id: `jenkins:${o.job}#${b.number}`,
        source: 'jenkins',
        kind: deploy ? 'deploy' : 'build',
        service: o.job,
        version: b.displayName ?? `#${b.number}`,
        commit: items[items.length - 1]?.commitId,
        author: items[0]?.author?.fullName,
        title: `${o.job} #${b.number} ${b.result}${items.length ? `: ${items.map((i) => i.msg).join('; ')}`.slice(0, 300) : ''}`,
        url: b.url,
        time: b.timestamp,
        paths: items.flatMap((i) => i.affectedPaths ?? []).slice(0, 5000),
      });
    }
    deps.onProgress?.(out.length);
    if (builds.length < page || older) break;
  }
  return out;
}

const run = promisify(execFile);

/** Commits of a local git repository since `since`, with the paths each touched and its size. */
export async function importGit(repo: string, since: number, service?: string): Promise<ChangeInput[]> {
  const sep = '\u001e';
  const { stdout } = await run(
    'git',
    ['-C', repo, 'log', `--since=${new Date(since).toISOString()}`, '--no-merges', '--numstat', `--format=${sep}%H%x1f%an%x1f%aI%x1f%s%x1f%b%x1f`],
    { maxBuffer: 256 * 1024 * 1024 },
  );
  const name = service ?? repo.replace(/\/+$/, '').split('/').pop();
  const out: ChangeInput[] = [];
  for (const chunk of stdout.split(sep)) {
    if (!chunk.trim()) continue;
    const [sha, author, date, subject, body, stats] = chunk.split('\u001f');
    const paths: string[] = [];
    let additions = 0;
    let deletions = 0;
    for (const line of (stats ?? '').split('\n')) {
      const m = /^(\d+|-)\t(\d+|-)\t(.+)$/.exec(line.trim());
      if (!m) continue;
      additions += m[1] === '-' ? 0 : Number(m[1]);
      deletions += m[2] === '-' ? 0 : Number(m[2]);
      paths.push(m[3]!);
    }
    out.push({
      id: `git:${sha}`,
      source: 'git',
      kind: 'commit',
      service: name,
      commit: sha,
      author,
      title: subject ?? '',
      description: body?.trim() || undefined,
      time: date,
      paths,
      size: { additions, deletions, files: paths.length },
    });
  }
  return out;
}

/** `30d`, `12h`, `90m`, `2w` → ms. */
export function parseSince(v: string): number {
  const m = /^(\d+)\s*(m|h|d|w)$/.exec(v.trim());
  if (!m) throw new ImportError(`--since: expected e.g. 30d, 12h, 2w (got ${v})`);
  return Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[m[2] as 'm' | 'h' | 'd' | 'w'];
}
