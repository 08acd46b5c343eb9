// `npm run eval`: every quality evaluation the project has, each writing its results under eval/results/.
// Suites: detection (issue: behavioural detection) and causal (metric crashes and impact). `npm run eval -- NAME` runs one.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const outDir = join(process.cwd(), 'eval', 'results');
mkdirSync(outDir, { recursive: true });
const only = process.argv[2];
const suites: Record<string, string> = { detection: './detection.js', causal: './causal.js' };
for (const [name, path] of Object.entries(suites)) {
  if (only && only !== name) continue;
  const mod = (await import(path)) as { run(opts: { outDir: string }): Promise<void> };
  await mod.run({ outDir });
}
