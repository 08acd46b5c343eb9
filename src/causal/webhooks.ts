// Webhook adapters: the payloads GitHub, Jira, Slack and Jenkins actually send, turned into change inputs. Every change
// gets a natural id (commit sha, PR number, changelog id, message ts, build number), so a redelivered webhook is a no-op.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { ChangeInput } from './changes.js';

export type WebhookSource = 'github' | 'jira' | 'slack' | 'jenkins';
export const WEBHOOK_SOURCES: readonly WebhookSource[] = ['github', 'jira', 'slack', 'jenkins'];

export type WebhookResult =
  | { kind: 'changes'; changes: ChangeInput[]; ignored?: string }
  /** Slack's url_verification handshake: answer with the challenge. */
  | { kind: 'challenge'; challenge: string };

export class WebhookError extends Error {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

type Obj = Record<string, any>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : typeof v === 'number' ? String(v) : undefined);
const firstLine = (s: string) => s.split('\n')[0]!.slice(0, 300);
const rest = (s: string) => {
  const i = s.indexOf('\n');
  return i < 0 ? undefined : s.slice(i + 1).trim() || undefined;
};

export function parseWebhook(source: WebhookSource, headers: Record<string, string | string[] | undefined>, body: unknown): WebhookResult {
  switch (source) {
    case 'github':
      return parseGithub(String(headers['x-github-event'] ?? ''), obj(body));
    case 'jira':
      return parseJira(obj(body));
    case 'slack':
      return parseSlack(obj(body));
    case 'jenkins':
      return parseJenkins(obj(body));
  }
}

/** GitHub: push (one change per commit), pull_request closed+merged, deployment. Other events are acknowledged and ignored. */
export function parseGithub(event: string, p: Obj): WebhookResult {
  const repo = obj(p.repository);
  const service = str(repo.name) ?? str(repo.full_name);
  const repoName = str(repo.full_name) ?? service ?? 'repo';
  if (event === 'push') {
    const commits = Array.isArray(p.commits) ? (p.commits as Obj[]) : [];
    const branch = str(p.ref)?.replace(/^refs\/heads\//, '');
    return {
      kind: 'changes',
      changes: commits.map((c) => {
        const message = str(c.message) ?? '';
        const author = obj(c.author);
        return {
          id: `github:commit:${repoName}:${str(c.id)}`,
          source: 'github',
          kind: 'commit',
          service,
          commit: str(c.id),
          author: str(author.username) ?? str(author.name),
          title: firstLine(message) || `commit ${str(c.id)?.slice(0, 12)}`,
          description: rest(message),
          url: str(c.url),
          time: str(c.timestamp),
          version: branch,
          paths: [...(c.added ?? []), ...(c.removed ?? []), ...(c.modified ?? [])].filter((x: unknown) => typeof x === 'string'),
        } satisfies ChangeInput;
      }),
      ...(commits.length ? {} : { ignored: 'push without commits' }),
    };
  }
  if (event === 'pull_request') {
    const pr = obj(p.pull_request);
    if (p.action !== 'closed' || pr.merged !== true) return { kind: 'changes', changes: [], ignored: `pull_request ${str(p.action) ?? ''} (only merged pull requests are changes)` };
    return {
      kind: 'changes',
      changes: [
        {
          id: `github:pr:${repoName}#${str(pr.number)}`,
          source: 'github',
          kind: 'pull_request',
          service,
          commit: str(pr.merge_commit_sha),
          author: str(obj(pr.user).login),
          title: str(pr.title) ?? `pull request #${str(pr.number)}`,
          description: str(pr.body),
          url: str(pr.html_url),
          time: str(pr.merged_at),
          version: str(obj(pr.base).ref),
          size: {
            ...(typeof pr.additions === 'number' ? { additions: pr.additions } : {}),
            ...(typeof pr.deletions === 'number' ? { deletions: pr.deletions } : {}),
            ...(typeof pr.changed_files === 'number' ? { files: pr.changed_files } : {}),
          },
        },
      ],
    };
  }
  if (event === 'deployment') {
    const d = obj(p.deployment);
    const env = str(d.environment) ?? 'production';
    return {
      kind: 'changes',
      changes: [
        {
          id: `github:deployment:${repoName}:${str(d.id)}`,
          source: 'github',
          kind: 'deploy',
          service,
          component: env,
          commit: str(d.sha),
          version: str(d.ref),
          author: str(obj(d.creator).login),
          title: `deploy ${str(d.ref) ?? str(d.sha)?.slice(0, 12) ?? ''} to ${env}${str(d.description) ? `: ${str(d.description)}` : ''}`,
          description: str(d.description),
          url: str(repo.html_url) ? `${str(repo.html_url)}/deployments` : str(d.url),
          time: str(d.created_at),
        },
      ],
    };
  }
  return { kind: 'changes', changes: [], ignored: `GitHub event ${event || '(none)'} is not a change` };
}

/** Jira Cloud/Server: jira:issue_updated (incl. transitions via the changelog) and jira:issue_created. */
export function parseJira(p: Obj): WebhookResult {
  const event = str(p.webhookEvent) ?? '';
  if (event !== 'jira:issue_updated' && event !== 'jira:issue_created') return { kind: 'changes', changes: [], ignored: `Jira event ${event || '(none)'} is not a change` };
  const issue = obj(p.issue);
  const f = obj(issue.fields);
  const key = str(issue.key);
  if (!key) throw new WebhookError('issue.key is missing', 'issue.key');
  const items = Array.isArray(obj(p.changelog).items) ? (obj(p.changelog).items as Obj[]) : [];
  const status = items.find((i) => i.field === 'status');
  const transition = status ? ` (${str(status.fromString) ?? '?'} → ${str(status.toString) ?? '?'})` : '';
  const self = str(issue.self);
  const url = self && /\/rest\/api\//.test(self) ? `${self.slice(0, self.indexOf('/rest/api/'))}/browse/${key}` : self;
  const components = Array.isArray(f.components) ? (f.components as Obj[]).map((c) => str(c.name)).filter(Boolean) : [];
  const description = typeof f.description === 'string' ? f.description : f.description ? adfText(f.description) : undefined;
  return {
    kind: 'changes',
    changes: [
      {
        id: `jira:${key}:${str(obj(p.changelog).id) ?? str(p.timestamp) ?? 'created'}`,
        source: 'jira',
        kind: 'ticket',
        service: str(obj(f.project).key),
        component: components[0],
        author: str(obj(p.user).displayName) ?? str(obj(p.user).name),
        title: `${key}: ${str(f.summary) ?? ''}${transition}`.slice(0, 1000),
        description: description?.slice(0, 20_000),
        url,
        time: typeof p.timestamp === 'number' ? p.timestamp : str(f.updated),
        segments: Array.isArray(f.labels) ? (f.labels as unknown[]).filter((l): l is string => typeof l === 'string').slice(0, 100) : undefined,
      },
    ],
  };
}

/** Plain text of an Atlassian Document Format body (Jira Cloud API v3). */
function adfText(node: unknown): string {
  const n = obj(node);
  if (typeof n.text === 'string') return n.text;
  return Array.isArray(n.content) ? (n.content as unknown[]).map(adfText).join(n.type === 'doc' ? '\n' : '') : '';
}

const SLACK_IGNORED_SUBTYPES = new Set(['message_changed', 'message_deleted', 'channel_join', 'channel_leave', 'channel_topic', 'channel_purpose', 'message_replied']);

/** Slack Events API: url_verification, and event_callback with message events (bot messages included: deploy bots). */
export function parseSlack(p: Obj): WebhookResult {
  if (p.type === 'url_verification') {
    const challenge = str(p.challenge);
    if (!challenge) throw new WebhookError('challenge is missing', 'challenge');
    return { kind: 'challenge', challenge };
  }
  if (p.type !== 'event_callback') return { kind: 'changes', changes: [], ignored: `Slack payload type ${str(p.type) ?? '(none)'}` };
  const e = obj(p.event);
  if (e.type !== 'message') return { kind: 'changes', changes: [], ignored: `Slack event ${str(e.type) ?? '(none)'} is not a message` };
  if (e.subtype && SLACK_IGNORED_SUBTYPES.has(e.subtype)) return { kind: 'changes', changes: [], ignored: `message subtype ${e.subtype}` };
  const text = str(e.text) ?? '';
  const ts = str(e.ts);
  if (!ts) throw new WebhookError('event.ts is missing', 'event.ts');
  const channel = str(e.channel) ?? 'channel';
  return {
    kind: 'changes',
    changes: [
      {
        id: `slack:${channel}:${ts}`,
        source: 'slack',
        kind: 'message',
        service: channel,
        author: str(e.user) ?? str(e.username) ?? str(e.bot_id),
        title: firstLine(text) || '(message)',
        description: text || undefined,
        time: ts,
      },
    ],
  };
}

/** Jenkins Notification plugin: a change per finished build (phase COMPLETED or FINALIZED; one id for both). */
export function parseJenkins(p: Obj): WebhookResult {
  const b = obj(p.build);
  const phase = str(b.phase) ?? '';
  if (phase !== 'COMPLETED' && phase !== 'FINALIZED') return { kind: 'changes', changes: [], ignored: `build phase ${phase || '(none)'}` };
  const job = str(p.name) ?? str(p.display_name);
  const number = str(b.number);
  if (!job || !number) throw new WebhookError('name and build.number are required', job ? 'build.number' : 'name');
  const scm = obj(b.scm);
  const changes = Array.isArray(scm.changes) ? (scm.changes as unknown[]).filter((x): x is string => typeof x === 'string') : [];
  const status = str(b.status) ?? 'UNKNOWN';
  const deploy = /deploy|release|prod/i.test(job);
  return {
    kind: 'changes',
    changes: [
      {
        id: `jenkins:${job}#${number}`,
        source: 'jenkins',
        kind: deploy ? 'deploy' : 'build',
        service: job,
        version: str(b.display_name) ?? `#${number}`,
        commit: str(scm.commit),
        title: `${job} #${number} ${status}${str(scm.branch) ? ` (${str(scm.branch)})` : ''}`,
        description: str(b.log)?.slice(-4000),
        url: str(b.full_url),
        time: typeof b.timestamp === 'number' ? b.timestamp : undefined,
        paths: changes.length ? changes : undefined,
      },
    ],
  };
}

const safeEqual = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);

/** GitHub: X-Hub-Signature-256 = sha256=HMAC-SHA256(secret, raw body). */
export function verifyGithubSignature(secret: string, raw: Buffer, header: string | undefined): boolean {
  if (!header?.startsWith('sha256=')) return false;
  const expected = createHmac('sha256', secret).update(raw).digest();
  return safeEqual(Buffer.from(header.slice(7), 'hex'), expected);
}

/** Slack: X-Slack-Signature = v0=HMAC-SHA256(secret, `v0:${X-Slack-Request-Timestamp}:${raw body}`), within 5 minutes. */
export function verifySlackSignature(secret: string, raw: Buffer, timestamp: string | undefined, header: string | undefined, now = Date.now()): boolean {
  if (!timestamp || !header?.startsWith('v0=')) return false;
  const ts = Number(timestamp);
  if (!Number.isFinite(ts) || Math.abs(now / 1000 - ts) > 300) return false;
  const expected = createHmac('sha256', secret).update(`v0:${timestamp}:`).update(raw).digest();
  return safeEqual(Buffer.from(header.slice(3), 'hex'), expected);
}
