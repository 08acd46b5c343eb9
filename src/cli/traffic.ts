// Seed-style dev commands: send one event, a batch, or a load at a target rate (uniform or varied) with progress.
import { SingleBar, Presets } from 'cli-progress';
import type { Command } from 'commander';
import { createLiveTraffic } from '../generate/live.js';
import { uniformEvent } from '../generate/traffic.js';
import { apiKey, postJson, serverUrl, type ClientOptions } from './client.js';

export function registerTrafficCommands(program: Command, clientOptions: (c: Command) => Command): void {
  clientOptions(
    program
      .command('send')
      .description('send one event (or --batch N events) and print the answer')
      .option('--app <appId>', 'app id', 'demo')
      .option('--batch [n]', 'send a batch of n events (default 10)')
      .option('--event <json>', 'send this JSON event instead of a generated one'),
  ).action(async (o: ClientOptions & { app: string; batch?: string | boolean; event?: string }) => {
    const url = serverUrl(o);
    const key = apiKey(o);
    const next = createLiveTraffic({ appIds: [o.app], devices: 20, seed: Date.now() % 100000 });
    const r =
      o.batch !== undefined
        ? await postJson(`${url}/v1/events/batch`, key, { events: Array.from({ length: o.batch === true ? 10 : Number(o.batch) }, () => next()) })
        : await postJson(`${url}/v1/events/ingest`, key, { event: o.event ? JSON.parse(o.event) : next() });
    process.stdout.write(`HTTP ${r.status}\n${JSON.stringify(r.body, null, 2)}\n`);
    if (r.status >= 400) process.exit(1);
  });

  clientOptions(
    program
      .command('load')
      .description('send events at --rate per second for --duration seconds (uniform, or --random for varied traffic)')
      .option('--app <appId>', 'app id', 'demo')
      .option('--rate <n>', 'events per second', '1000')
      .option('--duration <s>', 'seconds', '10')
      .option('--batch-size <n>', 'events per request', '100')
      .option('--concurrency <n>', 'requests in flight', '8')
      .option('--random', 'behavioural traffic from the labelled generator (sessions, logins, purchases, attacks mixed in)')
      .option('--anomaly-rate <r>', 'with --random: attack instances per normal session', '0.02')
      .option('--seed <n>', 'random seed', '1'),
  ).action(async (o: ClientOptions & { app: string; rate: string; duration: string; batchSize: string; concurrency: string; random?: boolean; seed: string; anomalyRate: string }) => {
    const url = `${serverUrl(o)}/v1/events/batch`;
    const key = apiKey(o);
    const rate = Number(o.rate);
    const total = Math.round(rate * Number(o.duration));
    const batchSize = Math.max(1, Math.min(Number(o.batchSize), 1000));
    const varied = o.random ? createLiveTraffic({ appIds: [o.app], devices: 500, seed: Number(o.seed), rate, anomalyRate: Number(o.anomalyRate) }) : null;
    let made = 0;
    const nextEvent = () => (varied ? varied() : uniformEvent(o.app, made));
    const bar = new SingleBar({ format: 'load |{bar}| {value}/{total} events | {rate} ev/s | errors {errors}', hideCursor: true }, Presets.shades_classic);
    bar.start(total, 0, { rate: 0, errors: 0 });
    const started = Date.now();
    let sent = 0;
    let errors = 0;
    const worker = async () => {
      while (made < total) {
        const n = Math.min(batchSize, total - made);
        const due = started + (made / rate) * 1000;
        made += n;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const events = Array.from({ length: n }, nextEvent);
        try {
          const r = await postJson(url, key, { events });
          if (r.status >= 400) errors += n;
          else sent += n;
        } catch {
          errors += n;
        }
        bar.update(sent + errors, { rate: Math.round((sent / Math.max(1, Date.now() - started)) * 1000), errors });
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Number(o.concurrency)) }, worker));
    bar.stop();
    const secs = (Date.now() - started) / 1000;
    process.stdout.write(`sent ${sent} events in ${secs.toFixed(1)} s (${Math.round(sent / secs)} ev/s), ${errors} failed\n`);
    if (errors > 0) process.exit(1);
  });
}
