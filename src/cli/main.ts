// The `causality` command line.
import { Command, Option } from 'commander';
import Table from 'cli-table3';
import { loadConfig } from '../config.js';
import { startNode } from '../node.js';
import { VERSION } from '../version.js';
import { apiKey, postJson, serverUrl, type ClientOptions } from './client.js';
import { registerTrafficCommands } from './traffic.js';
import { registerDetectCommands } from './detect-commands.js';
import { registerCausalCommands } from './causal-commands.js';
import { registerDemoCommand } from './demo.js';

const program = new Command();
program.name('causality').description('Self-hosted behavioural event platform').version(VERSION);

const clientOptions = (cmd: Command) =>
  cmd
    .option('--url <url>', 'server URL (env CAUSALITY_URL)', undefined)
    .option('--key <key>', 'API key (env CAUSALITY_KEY; default: the local dev config admin key)')
    .option('--data-dir <dir>', 'data directory holding the dev config');

interface RunOptions {
  dataDir?: string;
  config?: string;
  port?: number;
  host?: string;
  role?: string;
  partition?: number;
}

/** Starts a node (every role, or the ones asked for) and stops it cleanly on SIGINT/SIGTERM. */
async function runNode(o: RunOptions): Promise<void> {
  const { config, createdDevConfig } = loadConfig({
    dataDir: o.dataDir,
    configPath: o.config,
    port: o.port,
    host: o.host,
    ...(o.role ? { roles: o.role } : {}),
    ...(o.partition !== undefined ? { detectorPartition: o.partition } : {}),
  });
  if (createdDevConfig) {
    const app = config.apps[0]!;
    process.stdout.write(
      `\nFirst run: wrote a dev config to ${config.configPath}\n` +
        `  app "${app.appId}" key: ${app.key}\n  admin key:      ${config.adminKey}\n\n`,
    );
  }
  const node = await startNode(config);
  process.stdout.write(`Causality listening on ${node.url} (roles: ${[...node.roles].join(', ')}; data in ${config.dataDir})\n`);
  if (node.roles.has('query')) process.stdout.write(`Web UI: ${node.url.replace('://0.0.0.0', '://localhost')}/ui/ (sign in with the admin key)\n`);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    node.log.info({ signal }, 'shutting down: flushing to the warehouse');
    await node.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

const nodeOptions = (cmd: Command) =>
  cmd
    .option('--data-dir <dir>', 'data directory (env CAUSALITY_DATA_DIR)', undefined)
    .option('--config <file>', 'config file (env CAUSALITY_CONFIG)')
    .addOption(new Option('--port <n>', 'listen port (env PORT)').argParser((v) => Number(v)))
    .option('--host <host>', 'listen address (env HOST)');

nodeOptions(program.command('up').description('run every role (ingest, durable log, warehouse sink, detection, reactions, query) in one process')).action(
  (o: RunOptions) => runNode({ ...o, role: 'all' }),
);

nodeOptions(
  program
    .command('serve')
    .description('run some roles in this process, on the backends configured (CAUSALITY_BUS, DATABASE_URL, S3_*): see docs/deploy.md')
    .option('--role <roles>', 'comma list of ingest, sink, detect, react, query, or all (env CAUSALITY_ROLE; default all)')
    .addOption(new Option('--partition <n>', 'the bus partition this detector owns (env DETECTOR_PARTITION)').argParser((v) => Number(v))),
).action((o: RunOptions) => runNode(o));

clientOptions(
  program
    .command('query')
    .description('run read-only SQL over the warehouse (table: events) and print a table')
    .argument('<sql>', 'SELECT … FROM events …')
    .option('--json', 'print the JSON answer'),
).action(async (sql: string, o: ClientOptions & { json?: boolean }) => {
  const r = await postJson(`${serverUrl(o)}/v1/query`, apiKey(o), { sql });
  if (r.status !== 200) {
    process.stderr.write(`${JSON.stringify(r.body)}\n`);
    process.exit(1);
  }
  const body = r.body as { columns: string[]; rows: unknown[][]; truncated: boolean; elapsedMs: number };
  if (o.json) {
    process.stdout.write(`${JSON.stringify(body)}\n`);
    return;
  }
  const table = new Table({ head: body.columns, style: { head: [], border: [] } });
  for (const row of body.rows) table.push(row.map((v) => (v === null ? 'NULL' : typeof v === 'object' ? JSON.stringify(v) : String(v))));
  process.stdout.write(`${table.toString()}\n${body.rows.length} row(s)${body.truncated ? ' (truncated)' : ''} in ${body.elapsedMs} ms\n`);
});

registerTrafficCommands(program, clientOptions);
registerDetectCommands(program);
registerCausalCommands(program);
registerDemoCommand(program);

program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`causality: ${err.message}\n`);
  process.exit(1);
});
