// Builds the web tracker (browser code, src/tracker/tracker.ts) into dist/tracker/t.js: one minified IIFE.
// Run after `tsc -p tsconfig.json` (npm run build): node dist/src/tracker/build.js
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../../../', import.meta.url));

await build({
  absWorkingDir: repo,
  entryPoints: ['src/tracker/tracker.ts'],
  outfile: 'dist/tracker/t.js',
  bundle: true,
  minify: true,
  format: 'iife',
  // Browsers since 2019 (sendBeacon, fetch keepalive); newer syntax (?., ??=) is lowered.
  target: 'es2019',
  legalComments: 'none',
  logLevel: 'warning',
}).catch(() => process.exit(1)); // esbuild has printed the errors
