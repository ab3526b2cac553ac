import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { OUTLIER_THRESHOLD } from '../../functions/commons/model/accuracy';
import type { JointHistogram } from '../../functions/commons/model/histograms';
import type { Sketch } from '../../functions/commons/model/sketch';
import type { CostBreakdown } from '../../functions/commons/billing/cost';
import {
  confusionCells,
  jointCells,
  MAX_RANK_BARS,
  phaseCounts,
  PHASES,
  sketchBars,
  type reliabilityPoints,
  type TimelineSegment,
} from './report-data';

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

/**
 * Ticks of a symmetric-log axis over [lo, hi] whose magnitudes start at `smallest`: 0 when the
 * axis reaches it, and ±1, 2, 5 × 10^k (±10^k alone when the axis spans more than three decades).
 */
export function logTicks(lo: number, hi: number, smallest: number): number[] {
  const largest = Math.max(Math.abs(lo), Math.abs(hi));
  const [first, last] = [Math.floor(Math.log10(smallest)), Math.ceil(Math.log10(largest))];
  const decades = (last - first) * (lo < 0 && hi > 0 ? 2 : 1);
  const steps = decades > 3 ? [1] : [1, 2, 5];
  const magnitudes = Array.from({ length: last - first + 1 }, (_, i) => steps.map((m) => m * 10 ** (first + i))).flat();
  const ticks = [...magnitudes.map((m) => -m).reverse(), ...(lo <= 0 && hi >= 0 ? [0] : []), ...magnitudes];
  // 10^k computed in floating point: round to the digits a label shows.
  return ticks.filter((t) => t >= lo && t <= hi).map((t) => Number(t.toPrecision(12)));
}

/**
 * A sketch's histogram (report-data's sketchBars): every value drawn, whatever its range, on a
 * symmetric-log axis (linear within the bar at 0, logarithmic beyond, so log-spaced bars are of
 * equal width and negative values mirror positive ones) with log counts, so one object far in a
 * tail shows beside bars of thousands. `bounds` are drawn dashed, and kept inside the axis.
 */
export function sketchSpec(sketch: Sketch, title: string, xTitle: string, bounds: number[] = []): TopLevelSpec {
  const { bars, linearBelow } = sketchBars(sketch);
  const lo = [...bars.map((b) => b.x0), ...bounds].reduce((m, x) => Math.min(m, x), Infinity);
  const hi = [...bars.map((b) => b.x1), ...bounds].reduce((m, x) => Math.max(m, x), -Infinity);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 420,
    height: 220,
    layer: [
      {
        data: { values: bars },
        mark: { type: 'rect', color: '#4e79a7' },
        encoding: {
          x: {
            field: 'x0',
            type: 'quantitative',
            title: xTitle,
            scale: { type: 'symlog', constant: linearBelow, domain: [lo, hi], nice: false },
            // Labels formatted as written (the axis's own format would pick a precision for linear ticks: "1e+1").
            axis: { values: logTicks(lo, hi, linearBelow), labelExpr: "format(datum.value, '~g')", labelOverlap: 'greedy' },
          },
          x2: { field: 'x1' },
          y: { field: 'count', type: 'quantitative', title: 'objects (log scale)', scale: { type: 'symlog' } },
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
    // Records written before ephemeral storage was billed have no such figure.
    ...(cost.lambda.storageUsd ? [{ item: 'Lambda ephemeral storage', usd: cost.lambda.storageUsd, kind: 'CAI (billRun)' }] : []),
    { item: 'Step Functions', usd: cost.stepFunctions.usd, kind: 'CAI (billRun)' },
    { item: 'S3 requests', usd: cost.s3.usd, kind: 'CAI (billRun)' },
    { item: 'DynamoDB', usd: cost.dynamodb.usd, kind: 'CAI (billRun)' },
    ...(cost.kms?.usd ? [{ item: 'KMS requests', usd: cost.kms.usd, kind: 'CAI (billRun)' }] : []),
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

/** Above this many classes the confusion matrix shows no numbers in its cells, nor class names on its axes. */
const MAX_LABELLED_CLASSES = 20;
const MAX_NAMED_AXIS_CLASSES = 40;

/** Rows the true classes, columns the predicted ones; a row's colour is its share of the class, so the diagonal reads as recall. */
export function confusionSpec(classes: string[], confusion: number[][]): TopLevelSpec {
  const k = classes.length;
  const side = Math.min(560, Math.max(180, 40 * k));
  const axis = (title: string) => ({
    type: 'nominal' as const,
    sort: classes,
    title,
    axis: k > MAX_NAMED_AXIS_CLASSES ? { labels: false, ticks: false } : { labelLimit: 140 },
  });
  // Few classes fit their names across; more are turned to fit.
  const across = k <= 6 ? { labelAngle: 0 } : {};
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Confusion matrix: colour the share of the true class${k <= MAX_LABELLED_CLASSES ? ', numbers the objects' : ''}`,
    width: side,
    height: side,
    data: { values: confusionCells(classes, confusion) },
    encoding: {
      x: { field: 'predicted', ...axis('predicted class'), axis: { ...axis('').axis, ...across } },
      y: { field: 'truth', ...axis('true class') },
    },
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: { field: 'share', type: 'quantitative', scale: { domain: [0, 1], scheme: 'blues' }, title: 'share of true class' },
        },
      },
      ...(k <= MAX_LABELLED_CLASSES
        ? [
            {
              mark: { type: 'text' as const, fontSize: 11 },
              encoding: {
                text: { field: 'count', type: 'quantitative' as const, format: ',d' },
                color: { condition: { test: 'datum.share > 0.5', value: 'white' }, value: 'black' },
              },
            },
          ]
        : []),
    ],
  };
}

/** Accuracy against mean confidence per confidence bin, point size the objects in it; a calibrated model lies on the diagonal. */
export function reliabilitySpec(points: ReturnType<typeof reliabilityPoints>): TopLevelSpec {
  const unit = { scale: { domain: [0, 1] } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Reliability: accuracy against confidence (dashed: calibrated)',
    width: 320,
    height: 320,
    layer: [
      {
        data: {
          values: [
            { x: 0, y: 0 },
            { x: 1, y: 1 },
          ],
        },
        mark: { type: 'line', color: '#9e9e9e', strokeDash: [4, 3] },
        encoding: {
          x: { field: 'x', type: 'quantitative', title: 'mean confidence (top class probability)', ...unit },
          y: { field: 'y', type: 'quantitative', title: 'share predicted right', ...unit },
        },
      },
      {
        data: { values: points },
        mark: { type: 'line', color: '#4e79a7' },
        encoding: { x: { field: 'confidence', type: 'quantitative', ...unit }, y: { field: 'accuracy', type: 'quantitative', ...unit } },
      },
      {
        data: { values: points },
        mark: { type: 'point', filled: true, color: '#4e79a7' },
        encoding: {
          x: { field: 'confidence', type: 'quantitative', ...unit },
          y: { field: 'accuracy', type: 'quantitative', ...unit },
          size: { field: 'count', type: 'quantitative', title: 'objects', legend: { orient: 'bottom' } },
        },
      },
    ],
  };
}
