/**
 * `npm run bench`'s sweeps as SVG plots, written next to its JSON: galaxies/s by batch size and
 * threads; cost and wall time of the prototype's 12.6 GB workload by partition size. The same
 * renderer as `cai report` (Vega-Lite → SVG in Node).
 * `npm run bench:plots -- <inference.json>` redraws them from a saved result (bench/plot-results.ts).
 */
import { writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { renderSvg } from '../cli/report/charts';

export interface SweepCell {
  variant: string;
  threads: number;
  batch: number;
  perSecond: number;
}

interface CostCell {
  memory_mb: number;
  wall_s: number;
  usd: number;
}

export interface CostRow {
  partition_mb: number;
  prototype: { ranks: number; duration_s: number; seed_formula_usd: number; billed_at_10gb_usd: number };
  [config: string]: unknown;
}

/** One row of the scaling measurement: k threads of one session against k workers of one thread. */
export interface ScalingCell {
  precision: string;
  k: number;
  threads_speedup: number;
  workers_speedup: number;
}

export interface BenchResult {
  sweep?: SweepCell[];
  scaling?: ScalingCell[];
  /** CostRow[], as the bench writes it (typed loosely there: one ad-hoc JSON object). */
  cost_12_6gb?: Record<string, unknown>[];
}

export function sweepSpec(sweep: SweepCell[]): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Galaxies/s by batch size and threads (one process, this machine)',
    width: 480,
    height: 300,
    data: { values: sweep.map((c) => ({ ...c, series: `${c.variant}, ${c.threads} thread${c.threads > 1 ? 's' : ''}` })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: 'batch',
        type: 'quantitative',
        scale: { type: 'log', base: 2 },
        title: 'batch size',
        axis: { values: [...new Set(sweep.map((c) => c.batch))] },
      },
      y: { field: 'perSecond', type: 'quantitative', title: 'galaxies/s' },
      color: { field: 'variant', type: 'nominal', title: 'model' },
      // Threads: a dash and a point shape each; the legend shows the shapes (it draws no dashes on points).
      strokeDash: { field: 'threads', type: 'nominal', title: 'threads' },
      shape: { field: 'threads', type: 'nominal', title: 'threads' },
      detail: { field: 'series' },
    },
  };
}

/** Speedup over k = 1 against k, per model: one session of k threads, and k workers (the Lambda's pool); the line of perfect scaling. */
export function scalingSpec(scaling: ScalingCell[]): TopLevelSpec {
  const points = scaling.flatMap((c) => [
    { k: c.k, speedup: c.threads_speedup, series: `${c.precision}, one session of k threads`, precision: c.precision, mode: 'k threads' },
    { k: c.k, speedup: c.workers_speedup, series: `${c.precision}, k workers`, precision: c.precision, mode: 'k workers' },
  ]);
  const ks = [...new Set(scaling.map((c) => c.k))];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Speedup over one core: k threads of one session against k workers (this machine)',
    width: 480,
    height: 300,
    layer: [
      {
        data: { values: ks.map((k) => ({ k, speedup: k })) },
        mark: { type: 'line', color: '#bbbbbb', strokeDash: [2, 2] },
        encoding: { x: { field: 'k', type: 'quantitative' }, y: { field: 'speedup', type: 'quantitative' } },
      },
      {
        data: { values: points },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'k', type: 'quantitative', title: 'k (cores)', axis: { values: ks } },
          y: { field: 'speedup', type: 'quantitative', title: 'speedup over k = 1' },
          color: { field: 'precision', type: 'nominal', title: 'model' },
          strokeDash: { field: 'mode', type: 'nominal', title: 'how' },
          shape: { field: 'mode', type: 'nominal', title: 'how' },
          detail: { field: 'series' },
        },
      },
    ],
  };
}

/** One point per (partition size, configuration): CAI's cheapest memory size for each model × architecture, and the prototype. */
export function costPoints(rows: CostRow[]): { partition_mb: number; config: string; usd: number; wall_s: number | null }[] {
  return rows.flatMap((row) => [
    ...Object.entries(row)
      .filter(([key, value]) => /^(fp32|int8)_(x86_64|arm64)$/.test(key) && typeof value === 'object' && value !== null)
      .map(([key, value]) => {
        const cell = value as CostCell;
        return { partition_mb: row.partition_mb, config: `CAI ${key.replace('_', ' ')}`, usd: cell.usd, wall_s: cell.wall_s };
      }),
    { partition_mb: row.partition_mb, config: "prototype (seed's formula)", usd: row.prototype.seed_formula_usd, wall_s: null },
    { partition_mb: row.partition_mb, config: 'prototype (billed at 10 GB)', usd: row.prototype.billed_at_10gb_usd, wall_s: null },
  ]);
}

export function costSpec(rows: CostRow[], measure: 'usd' | 'wall_s'): TopLevelSpec {
  const points = costPoints(rows).filter((p) => p[measure] !== null);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: measure === 'usd' ? '12.6 GB on Lambda: cost by partition size' : '12.6 GB on Lambda: modelled wall time by partition size',
    width: 480,
    height: 300,
    data: { values: points },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'partition_mb', type: 'quantitative', title: 'partition size (MB)', axis: { values: rows.map((r) => r.partition_mb) } },
      y: { field: measure, type: 'quantitative', title: measure === 'usd' ? 'USD (us-east-1)' : 'seconds' },
      color: { field: 'config', type: 'nominal', title: null, legend: { orient: 'bottom', columns: 2, labelLimit: 300 } },
    },
  };
}

/** Writes <name>-sweep.svg, <name>-scaling.svg, <name>-cost.svg and <name>-wall.svg beside `jsonPath`; returns their paths. */
export async function writeBenchPlots(result: BenchResult, jsonPath: string): Promise<string[]> {
  const stem = join(dirname(jsonPath), basename(jsonPath, '.json'));
  const plots: [string, TopLevelSpec][] = [];
  if (result.sweep?.length) plots.push([`${stem}-sweep.svg`, sweepSpec(result.sweep)]);
  if (result.scaling?.length) plots.push([`${stem}-scaling.svg`, scalingSpec(result.scaling)]);
  if (result.cost_12_6gb?.length) {
    const rows = result.cost_12_6gb as CostRow[];
    plots.push([`${stem}-cost.svg`, costSpec(rows, 'usd')], [`${stem}-wall.svg`, costSpec(rows, 'wall_s')]);
  }
  for (const [path, spec] of plots) await writeFile(path, await renderSvg(spec));
  return plots.map(([path]) => path);
}
