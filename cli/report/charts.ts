import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { OUTLIER_THRESHOLD } from '../../functions/commons/model/accuracy';
import type { Histogram, JointHistogram } from '../../functions/commons/model/histograms';
import type { CostBreakdown } from '../../functions/commons/billing/cost';
import { histogramBars, jointCells, MAX_RANK_BARS, phaseCounts, PHASES, type TimelineSegment } from './report-data';

/**
 * The report's plots as Vega-Lite specifications, rendered to SVG text in Node by Vega's headless
 * renderer (no browser, no canvas: text widths are estimated), so the HTML carries finished SVG.
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const PHASE_COLORS = ['#9e9e9e', '#b07aa1', '#4e79a7', '#f28e2b', '#59a14f', '#d3d3d3'];
const phaseScale = { domain: [...PHASES], range: PHASE_COLORS };

export function jointSpec(joint: JointHistogram): TopLevelSpec {
  const zMax = joint.hi;
  const steps = 60;
  const lines = Array.from({ length: steps + 1 }, (_, i) => (i / steps) * zMax).flatMap((z) => [
    { z, zhat: z, line: '1:1' },
    { z, zhat: z + OUTLIER_THRESHOLD * (1 + z), line: `+${OUTLIER_THRESHOLD}(1+z)` },
    { z, zhat: z - OUTLIER_THRESHOLD * (1 + z), line: `−${OUTLIER_THRESHOLD}(1+z)` },
  ]);
  const axis = { scale: { domain: [0, zMax] } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Predicted against true redshift (counts per cell, log colour)',
    width: 420,
    height: 420,
    layer: [
      {
        data: { values: jointCells(joint) },
        mark: 'rect',
        encoding: {
          x: { field: 'z0', type: 'quantitative', title: 'true z', ...axis },
          x2: { field: 'z1' },
          y: { field: 'p0', type: 'quantitative', title: 'predicted ẑ', ...axis },
          y2: { field: 'p1' },
          color: { field: 'count', type: 'quantitative', scale: { type: 'log', scheme: 'viridis' }, title: 'objects' },
        },
      },
      {
        data: { values: lines.filter((p) => p.zhat >= 0 && p.zhat <= zMax) },
        mark: { type: 'line', clip: true, strokeWidth: 1.2 },
        encoding: {
          x: { field: 'z', type: 'quantitative', ...axis },
          y: { field: 'zhat', type: 'quantitative', ...axis },
          detail: { field: 'line' },
          strokeDash: { field: 'line', type: 'nominal', title: null, legend: { orient: 'bottom' } },
          color: { value: '#d62728' },
        },
      },
    ],
  };
}

export function histogramSpec(h: Histogram, title: string, xTitle: string, bounds: number[] = []): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 420,
    height: 220,
    layer: [
      {
        data: { values: histogramBars(h) },
        mark: { type: 'rect', color: '#4e79a7' },
        encoding: {
          x: { field: 'x0', type: 'quantitative', title: xTitle, scale: { domain: [h.lo, h.hi] } },
          x2: { field: 'x1' },
          y: { field: 'count', type: 'quantitative', title: 'objects' },
        },
      },
      ...(bounds.length
        ? [
            {
              data: { values: bounds.map((x) => ({ x })) },
              mark: { type: 'rule' as const, color: '#d62728', strokeDash: [4, 3] },
              encoding: { x: { field: 'x', type: 'quantitative' as const } },
            },
          ]
        : []),
    ],
  };
}

export function timelineSpec(segments: TimelineSegment[]): TopLevelSpec {
  const color = {
    field: 'phase',
    type: 'nominal' as const,
    scale: phaseScale,
    title: 'phase',
    legend: { orient: 'bottom' as const, labelLimit: 320 },
  };
  const ranks = new Set(segments.map((s) => s.rank)).size;
  if (ranks <= MAX_RANK_BARS) {
    const cold = segments.filter((s) => s.phase === PHASES[0]).map((s) => ({ rank: s.rank, t: s.start }));
    return {
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      title: `Timeline: one bar per rank (${ranks}), ◆ = cold start`,
      width: 640,
      height: Math.max(120, Math.min(12 * ranks, 600)),
      layer: [
        {
          data: { values: segments },
          mark: 'bar',
          encoding: {
            y: { field: 'rank', type: 'ordinal', title: 'rank', axis: ranks > 40 ? { labels: false, ticks: false } : {} },
            x: { field: 'start', type: 'quantitative', title: 'seconds since the run started' },
            x2: { field: 'end' },
            color,
          },
        },
        {
          data: { values: cold },
          mark: { type: 'point', shape: 'diamond', filled: true, color: 'black', size: 40 },
          encoding: { y: { field: 'rank', type: 'ordinal' }, x: { field: 't', type: 'quantitative' } },
        },
      ],
    };
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Timeline of ${ranks.toLocaleString('en-US')} ranks: how many were in each phase`,
    width: 640,
    height: 260,
    data: { values: phaseCounts(segments) },
    mark: { type: 'area', interpolate: 'step-after' },
    encoding: {
      x: { field: 't', type: 'quantitative', title: 'seconds since the run started' },
      y: { field: 'ranks', type: 'quantitative', stack: 'zero', title: 'ranks' },
      color,
    },
  };
}

export function costSpec(cost: CostBreakdown, prototypeUsd: number | undefined): TopLevelSpec {
  const rows = [
    { item: 'Lambda compute (GB-s)', usd: cost.lambda.computeUsd, kind: 'CAI (billRun)' },
    { item: 'Lambda requests', usd: cost.lambda.requestsUsd, kind: 'CAI (billRun)' },
    { item: 'Step Functions', usd: cost.stepFunctions.usd, kind: 'CAI (billRun)' },
    { item: 'S3 requests', usd: cost.s3.usd, kind: 'CAI (billRun)' },
    { item: 'DynamoDB', usd: cost.dynamodb.usd, kind: 'CAI (billRun)' },
    { item: 'total', usd: cost.totalUsd, kind: 'CAI (billRun)' },
    ...(prototypeUsd !== undefined ? [{ item: "prototype's formula", usd: prototypeUsd, kind: 'prototype' }] : []),
  ];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Cost, USD',
    width: 420,
    height: 24 * rows.length,
    data: { values: rows },
    mark: 'bar',
    encoding: {
      y: { field: 'item', type: 'nominal', sort: null, title: null },
      x: { field: 'usd', type: 'quantitative', title: 'USD' },
      color: { field: 'kind', type: 'nominal', title: null, legend: { orient: 'bottom' } },
      tooltip: [{ field: 'usd', type: 'quantitative', format: '.3e' }],
    },
  };
}
