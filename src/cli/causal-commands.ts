// CLI commands of the causal area (registered by main.ts): monitor a CSV series, estimate impact, import changes.
import { readFileSync, writeFileSync } from 'node:fs';
import { SingleBar, Presets } from 'cli-progress';
import type { Command } from 'commander';
import { parseChangesJsonl, parseTime, normaliseChange, type ChangeInput } from '../causal/changes.js';
import { parseControlsCsv, parseSeriesCsv } from '../causal/csv.js';
import { importGit, importGithub, importJenkins, importJira, importSlack, parseSince, type HttpDeps } from '../causal/importers.js';
import { StreamingMonitor } from '../causal/monitor.js';
import { impactReport } from '../causal/service.js';
import { apiKey, postJson, serverUrl, type ClientOptions } from './client.js';

const progress = (label: string, total: number) => {
  // Progress goes to stderr so stdout stays machine-readable.
  const bar = new SingleBar({ format: `${label} [{bar}] {value}/{total}`, stream: process.stderr, hideCursor: true, noTTYOutput: false }, Presets.shades_classic);
  if (process.stderr.isTTY) bar.start(total, 0);
  return { update: (n: number) => process.stderr.isTTY && bar.update(n), stop: () => process.stderr.isTTY && bar.stop() };
};

const fail = (msg: string): never => {
  process.stderr.write(`causality: ${msg}\n`);
  process.exit(2);
};

/** TIME as ISO 8601 or epoch ms/s. */
const timeArg = (v: string, flag: string) => {
  try {
    return parseTime(v, flag);
  } catch {
    return fail(`${flag}: not a time: ${v}`);
  }
};

async function deliver(changes: ChangeInput[], o: ClientOptions & { out?: string }): Promise<void> {
  if (o.out) {
    writeFileSync(o.out, changes.map((c) => JSON.stringify(c)).join('\n') + (changes.length ? '\n' : ''));
    process.stdout.write(`${changes.length} change(s) written to ${o.out}\n`);
    return;
  }
  const url = `${serverUrl(o)}/v1/changes`;
  const key = apiKey(o);
  let created = 0;
  const bar = progress('sending', changes.length);
  for (let i = 0; i < changes.length; i += 500) {
    const r = await postJson(url, key, { changes: changes.slice(i, i + 500) });
    if (r.status !== 200) fail(`POST /v1/changes: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    created += (r.body as { created: number }).created;
    bar.update(Math.min(changes.length, i + 500));
  }
  bar.stop();
  process.stdout.write(`${changes.length} change(s) sent, ${created} new\n`);
}

export function registerCausalCommands(program: Command): void {
  program
    .command('monitor')
    .description('score a series offline, online (each point judged only on the points before it): writes timestamp,value,score,anomaly')
    .requiredOption('--series <file>', 'CSV of timestamp,value')
    .requiredOption('--out <file>', 'output CSV')
    .option('--explain', 'add expected, lower, upper, direction and explanation columns')
    .action((o: { series: string; out: string; explain?: boolean }) => {
      const s = parseSeriesCsv(readFileSync(o.series, 'utf8'));
      const m = new StreamingMonitor();
      const bar = progress('monitor', s.ts.length);
      const rows = [o.explain ? 'timestamp,value,score,anomaly,expected,lower,upper,direction,explanation' : 'timestamp,value,score,anomaly'];
      let anomalies = 0;
      for (let i = 0; i < s.ts.length; i++) {
        const j = m.push(s.ts[i]!, s.values[i]!);
        if (j.anomaly) anomalies++;
        const base = `${s.raw[i]},${s.values[i]},${j.score.toFixed(4)},${j.anomaly ? 1 : 0}`;
        rows.push(o.explain ? `${base},${j.expected ?? ''},${j.lower ?? ''},${j.upper ?? ''},${j.direction ?? ''},"${j.explanation.replaceAll('"', "'")}"` : base);
        if (i % 1000 === 0) bar.update(i);
      }
      bar.stop();
      writeFileSync(o.out, rows.join('\n') + '\n');
      process.stderr.write(`${s.ts.length} points, ${anomalies} anomalous → ${o.out}\n`);
    });

  program
    .command('impact')
    .description('counterfactual impact of a change on a series: effect with 95 % intervals, duration, ranked candidate changes')
    .requiredOption('--series <file>', 'CSV of timestamp,value')
    .requiredOption('--at <time>', 'onset (ISO 8601 or epoch ms), or auto (the first confirmed drop or spike)')
    .option('--end <time>', 'last affected point (default: detected, when the series is back inside its counterfactual band)')
    .option('--controls <file>', 'CSV of timestamp,c1,c2,… series the change did not affect')
    .option('--changes <file>', 'JSON lines of changes (as POST /v1/changes accepts)')
    .option('--lookback <duration>', 'how far before the onset changes are candidates (e.g. 3d)', '3d')
    .option('--segment <labels>', 'the affected segment (e.g. platform=android), for candidate ranking')
    .option('--metric <name>', 'metric name (its words count as component hints)')
    .option('--currency <code>', 'currency of the values, for the summary', '')
    .option('--json', 'print the JSON answer')
    .action((o: { series: string; at: string; end?: string; controls?: string; changes?: string; lookback: string; segment?: string; metric?: string; currency: string; json?: boolean }) => {
      const s = parseSeriesCsv(readFileSync(o.series, 'utf8'));
      const controls = o.controls ? parseControlsCsv(readFileSync(o.controls, 'utf8')) : undefined;
      const changes = o.changes
        ? parseChangesJsonl(readFileSync(o.changes, 'utf8')).map(({ input, change }) => ({ echo: { ...input, id: change.id }, change }))
        : [];
      const segment = o.segment?.includes('=') ? Object.fromEntries(o.segment.split(',').map((kv) => kv.split('=') as [string, string])) : o.segment ?? null;
      const { report, result } = impactReport({
        points: s.ts.map((ts, i) => ({ ts, value: s.values[i]! })),
        at: o.at === 'auto' ? 'auto' : timeArg(o.at, '--at'),
        end: o.end ? timeArg(o.end, '--end') : null,
        controls,
        changes,
        segment,
        metric: o.metric,
        lookbackMs: parseSince(o.lookback),
      });
      if (o.json) {
        process.stdout.write(`${JSON.stringify(report)}\n`);
        return;
      }
      const c = report.effect.cumulative;
      const cur = o.currency ? ` ${o.currency}` : '';
      const f = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(2)}${cur}`;
      const hours = result.durationMs / 3_600_000;
      process.stdout.write(
        [
          `onset     ${report.onset}`,
          `end       ${report.end}${result.ongoing ? ' (ongoing: not recovered by the last point)' : ''}  duration ${hours >= 48 ? `${(hours / 24).toFixed(1)} days` : `${hours.toFixed(1)} h`} (${result.points} points)`,
          `total     ${f(c.estimate)}  95 % [${f(c.lower)}, ${f(c.upper)}]`,
          `average   ${f(report.effect.average.estimate)} per point`,
          `relative  ${(report.effect.relative.estimate * 100).toFixed(1)} %  [${(report.effect.relative.lower * 100).toFixed(1)} %, ${(report.effect.relative.upper * 100).toFixed(1)} %]`,
          `model     ${result.model.seasonality}${result.model.trend ? ' + trend' : ''}${result.model.controls.length ? ` + controls ${result.model.controls.join(', ')}` : ''}, ${result.model.prePoints} points before`,
          '',
          ...(report.candidates.length ? ['candidates (best first):'] : ['no candidate changes in the lookback window']),
          ...report.candidates.slice(0, 10).map((cand, i) => {
            const ch = cand.change as { id: string; title?: string };
            return `${String(i + 1).padStart(2)}. ${cand.score.toFixed(3)}  ${ch.title ?? ch.id}  [${ch.id}]\n      ${cand.reasons.join('; ')}`;
          }),
        ].join('\n') + '\n',
      );
    });

  const changes = program.command('changes').description('change events: import from git or from GitHub, Jira, Slack, Jenkins');
  const clientOpts = (cmd: Command) =>
    cmd
      .option('--url <url>', 'server URL (env CAUSALITY_URL)')
      .option('--key <key>', 'API key (env CAUSALITY_KEY)')
      .option('--data-dir <dir>', 'data directory holding the dev config')
      .option('--out <file>', 'write JSON lines here instead of sending them to the server');

  clientOpts(
    changes
      .command('import-git')
      .description('import commits (with touched paths and size) from a local git repository')
      .requiredOption('--repo <path>', 'repository path')
      .option('--since <duration>', 'how far back (e.g. 30d, 12h, 2w)', '30d')
      .option('--service <name>', 'service name (default: the directory name)'),
  ).action(async (o: ClientOptions & { repo: string; since: string; service?: string; out?: string }) => {
    const list = await importGit(o.repo, Date.now() - parseSince(o.since), o.service);
    await deliver(list, o);
  });

  clientOpts(
    changes
      .command('import')
      .description('pull change history through a source REST API (paginated, rate-limit aware)')
      .requiredOption('--source <source>', 'github | jira | slack | jenkins')
      .option('--since <duration>', 'how far back (e.g. 30d)', '30d')
      .option('--base-url <url>', 'API base URL (github: https://api.github.com, slack: https://slack.com/api; jira and jenkins: your server)')
      .option('--token <token>', 'API token (env GITHUB_TOKEN, JIRA_TOKEN, SLACK_TOKEN, JENKINS_TOKEN)')
      .option('--repo <owner/name>', 'github: repository')
      .option('--email <email>', 'jira: account email (Basic auth with the token)')
      .option('--jql <jql>', 'jira: JQL (default: updated in the window)')
      .option('--channel <id>', 'slack: channel id')
      .option('--job <name>', 'jenkins: job (folder/job for folders)')
      .option('--user <name>', 'jenkins: user (Basic auth with the token)'),
  ).action(async (o: ClientOptions & { source: string; since: string; baseUrl?: string; token?: string; repo?: string; email?: string; jql?: string; channel?: string; job?: string; user?: string; out?: string }) => {
    const since = Date.now() - parseSince(o.since);
    let fetched = 0;
    const deps: HttpDeps = {
      onProgress: (n) => {
        fetched = n;
        if (process.stderr.isTTY) process.stderr.write(`\r${o.source}: ${n} change(s) fetched`);
      },
    };
    const env = process.env;
    let list: ChangeInput[];
    switch (o.source) {
      case 'github':
        if (!o.repo) fail('--repo owner/name is required for github');
        list = await importGithub({ baseUrl: o.baseUrl, token: o.token ?? env.GITHUB_TOKEN, repo: o.repo!, since }, deps);
        break;
      case 'jira':
        if (!o.baseUrl) fail('--base-url is required for jira');
        list = await importJira({ baseUrl: o.baseUrl!, token: o.token ?? env.JIRA_TOKEN, email: o.email ?? env.JIRA_EMAIL, jql: o.jql, since }, deps);
        break;
      case 'slack':
        if (!o.channel) fail('--channel is required for slack');
        list = await importSlack({ baseUrl: o.baseUrl, token: o.token ?? env.SLACK_TOKEN ?? fail('--token or SLACK_TOKEN is required'), channel: o.channel!, since }, deps);
        break;
      case 'jenkins':
        if (!o.baseUrl || !o.job) fail('--base-url and --job are required for jenkins');
        list = await importJenkins({ baseUrl: o.baseUrl!, user: o.user ?? env.JENKINS_USER, token: o.token ?? env.JENKINS_TOKEN, job: o.job!, since }, deps);
        break;
      default:
        return fail(`--source: expected github, jira, slack or jenkins (got ${o.source})`);
    }
    if (process.stderr.isTTY && fetched) process.stderr.write('\n');
    // Validate before sending: what the server would refuse is reported here, with the change's id.
    for (const c of list) normaliseChange(c, null);
    await deliver(list, o);
  });
}
