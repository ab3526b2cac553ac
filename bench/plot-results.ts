/**
 * `npm run bench:plots -- <inference.json>`: redraws a saved `npm run bench` result's plots beside
 * it (an entry of its own: bench/inference.ts bundles bench/plots.ts, so no main block lives there).
 */
import { readFile } from 'node:fs/promises';
import { writeBenchPlots, type BenchResult } from './plots';

const [jsonPath] = process.argv.slice(2);
(async () => {
  if (!jsonPath) throw new Error('usage: npm run bench:plots -- <inference.json>');
  const written = await writeBenchPlots(JSON.parse(await readFile(jsonPath, 'utf8')) as BenchResult, jsonPath);
  if (!written.length) throw new Error(`${jsonPath} has no sweep and no cost_12_6gb to plot`);
  for (const path of written) process.stdout.write(`${path}\n`);
})().catch((error: Error) => {
  process.stderr.write(`bench: ${error.message}\n`);
  process.exit(error.message.startsWith('usage') ? 2 : 1);
});
