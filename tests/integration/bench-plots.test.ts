import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { costPoints, writeBenchPlots, type CostRow, type ScalingCell, type SweepCell } from '../../bench/plots';
import { ROOT } from '../../local/paths';
import { spawnSync } from 'node:child_process';
import { tempFolder } from '../helpers/temp';

const sweep: SweepCell[] = [16, 32, 64].flatMap((batch) =>
  [1, 2].flatMap((threads) =>
    ['fp32', 'int8'].map((variant) => ({ variant, threads, batch, perSecond: (variant === 'int8' ? 250 : 110) * threads - batch / 8 })),
  ),
);
const scaling: ScalingCell[] = ['fp32', 'int8'].flatMap((precision) =>
  [1, 2].map((k) => ({ precision, k, threads_speedup: k === 1 ? 1 : 1.6, workers_speedup: k === 1 ? 1 : 1.9 })),
);
const cell = (usd: number, wall: number) => ({ memory_mb: 1769, ranks: 100, duration_s: 10, wall_s: wall, usd });
const costs: CostRow[] = [25, 100].map((partition_mb) => ({
  partition_mb,
  fp32_x86_64: cell(0.18, 40 + partition_mb / 10),
  fp32_arm64: cell(0.14, 40 + partition_mb / 10),
  int8_x86_64: cell(0.09, 20 + partition_mb / 10),
  int8_arm64: cell(0.07, 20 + partition_mb / 10),
  prototype: { ranks: 130, duration_s: 25, seed_formula_usd: 0.38, billed_at_10gb_usd: 0.55 },
}));

/** Points drawn in a Vega SVG: each line's symbols are one <path> each inside a mark-symbol group. */
const symbols = (svg: string) => {
  const group = /<g class="mark-symbol role-mark[^"]*"[^>]*>(.*?)<\/g>/s.exec(svg);
  return group ? (group[1].match(/<path /g) ?? []).length : 0;
};

test('the sweep, the scaling and the cost by partition size are drawn, one point per measurement', async () => {
  const dir = tempFolder('cai-bench-plots-');
  const json = join(dir, 'inference.json');
  const written = await writeBenchPlots({ sweep, scaling, cost_12_6gb: costs }, json);
  expect(written).toEqual(['sweep', 'scaling', 'cost', 'wall'].map((n) => join(dir, `inference-${n}.svg`)));
  const [sweepSvg, scalingSvg, costSvg, wallSvg] = written.map((p) => readFileSync(p, 'utf8'));
  // Two points (k threads, k workers) per model and k.
  expect(symbols(scalingSvg)).toBe(scaling.length * 2);
  expect(scalingSvg).toContain('k workers');
  expect(sweepSvg).toMatch(/^<svg /);
  expect(symbols(sweepSvg)).toBe(sweep.length);
  // Four CAI configurations and the prototype's two costs at each partition size; wall time is CAI's only.
  expect(costPoints(costs)).toHaveLength(12);
  expect(symbols(costSvg)).toBe(12);
  expect(symbols(wallSvg)).toBe(8);
  expect(costSvg).toContain("prototype (seed's formula)");
  expect(sweepSvg).toContain('batch size');
});

test('npm run bench:plots redraws them from a saved JSON; a JSON with nothing to plot is an error', () => {
  const dir = tempFolder('cai-bench-plots-');
  const json = join(dir, 'saved.json');
  writeFileSync(json, JSON.stringify({ sweep }));
  const ok = spawnSync(process.execPath, [join(ROOT, 'dist', 'bench', 'plot-results.js'), json], { encoding: 'utf8' });
  expect(ok.status).toBe(0);
  expect(ok.stdout).toBe(`${join(dir, 'saved-sweep.svg')}\n`);
  writeFileSync(json, JSON.stringify({ ratio_fp32: 1.2 }));
  const empty = spawnSync(process.execPath, [join(ROOT, 'dist', 'bench', 'plot-results.js'), json], { encoding: 'utf8' });
  expect(empty.status).toBe(1);
  expect(empty.stderr).toBe(`bench: ${json} has no sweep and no cost_12_6gb to plot\n`);
});
