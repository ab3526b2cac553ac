import type { CardOutput } from '../../functions/commons/model/card';
import {
  JOINT_BINS,
  mergeRedshiftHistograms,
  redshiftHistograms,
  Z_MAX,
  type RedshiftHistograms,
} from '../../functions/commons/model/histograms';
import { sketchCount, sketchOf } from '../../functions/commons/model/sketch';
import {
  mergeOutputStatistics,
  outputStatistics,
  type OutputStatistics,
  type RegressionStatistics,
  type ScoreStatistics,
} from '../../functions/commons/model/task-statistics';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { buildReport } from '../../cli/report/html';
import { logTicks, sketchSpec } from '../../cli/report/charts';
import { MAX_SKETCH_BARS, phaseCounts, PHASES, sketchBars, timelineSegments, type RankTiming } from '../../cli/report/report-data';

describe('redshift histograms', () => {
  const predicted = [0.05, 0.1, 0.1, 0.3, 0.7, -0.01, NaN, 0.2];
  const truth = [0.05, 0.12, 0.4, 0.3, 0.1, 0.02, 0.1, 0.5];

  test('every finite prediction is in the sketch, wherever it lies; the ẑ-vs-z cells count what lies outside them', () => {
    const h = redshiftHistograms(predicted, truth);
    expect(sketchCount(h.predicted)).toBe(7);
    expect(h.nonFinite).toBe(1);
    // 0.7 (beyond Z_MAX) and −0.01 are drawn: a bar holds each.
    const { bars } = sketchBars(h.predicted);
    for (const x of [0.7, -0.01, 0.1]) expect(bars.some((b) => b.x0 < x && x <= b.x1 + 1e-15 * Math.abs(x))).toBe(true);
    expect(bars.reduce((s, b) => s + b.count, 0)).toBe(7);
    const cells = h.joint!.cells;
    expect(Object.values(cells).reduce((s, c) => s + c, 0) + h.joint!.outside).toBe(7);
    expect(h.joint!.outside).toBe(2);
    const bin = (z: number) => Math.floor((z / Z_MAX) * JOINT_BINS);
    expect(cells[`${bin(0.3)},${bin(0.3)}`]).toBe(1);
  });

  test('without labels no ẑ-vs-z cells are kept', () => {
    const h = redshiftHistograms(predicted, null);
    expect(h.joint).toBeNull();
    expect(sketchCount(h.predicted)).toBe(7);
  });

  test('merging the halves gives the whole, as the summarizer adds ranks', () => {
    const whole = redshiftHistograms(predicted, truth);
    const merged = mergeRedshiftHistograms(
      mergeRedshiftHistograms(null, redshiftHistograms(predicted.slice(0, 3), truth.slice(0, 3))),
      redshiftHistograms(predicted.slice(3), truth.slice(3)),
    );
    expect(merged).toEqual(whole);
    // An unlabelled rank adds to the predicted sketch only.
    const withUnlabelled = mergeRedshiftHistograms(structuredClone(whole), redshiftHistograms([0.1], null));
    expect(sketchCount(withUnlabelled!.predicted)).toBe(8);
    expect(withUnlabelled!.joint).toEqual(whole.joint);
  });
});

describe("a sketch's bars: the report draws every value", () => {
  // A score model's hold-out run: most scores near 1, outliers up to 47.6, in three ranks.
  const ranks = [
    [0.8, 1.1, 1.2, 0.95, 1.3, 2.5],
    [1.05, 0.9, 12.4, 1.15],
    [47.6, 1.0, 0.85],
  ];
  const score: CardOutput = { task: 'score' };
  const merged = ranks
    .map((values, i) => outputStatistics(score, Float32Array.from(values), `${i}.pt`) as ScoreStatistics)
    .reduce<OutputStatistics | null>((a, b) => mergeOutputStatistics(a, b), null) as ScoreStatistics;

  test('a bar covers 47.6, and the bars hold every score', () => {
    const { bars } = sketchBars(merged.sketch);
    const top = bars.at(-1)!;
    expect(top.x0).toBeLessThan(Math.fround(47.6));
    expect(top.x1).toBeGreaterThanOrEqual(Math.fround(47.6));
    expect(top.count).toBe(1);
    expect(bars.reduce((s, b) => s + b.count, 0)).toBe(13);
    // Log-spaced and ascending, none overlapping.
    for (let i = 1; i < bars.length; i++) expect(bars[i].x0).toBeGreaterThanOrEqual(bars[i - 1].x1 * (1 - 1e-12));
    // The chart's axis spans them all.
    const x = (sketchSpec(merged.sketch, 's', 'score') as { layer: { encoding: { x: { scale: { domain: number[] } } } }[] }).layer[0]
      .encoding.x.scale.domain;
    expect(x[0]).toBeLessThanOrEqual(0.8);
    expect(x[1]).toBeGreaterThanOrEqual(47.6);
  });

  test('negative values lie left of zero, and zeros have a bar of their own that overlaps no other', () => {
    const { bars, nearZero, linearBelow } = sketchBars(sketchOf([-20, -0.5, 0, 0, 0, 0.25, 3]));
    expect(bars.map((b) => b.count)).toEqual([1, 1, 3, 1, 1]);
    expect(bars[0].x0).toBeLessThan(-20);
    expect(nearZero).toEqual({ below: linearBelow, count: 3, zeros: 3 });
    expect(bars[2]).toEqual({ x0: 0, x1: linearBelow, count: 3 });
    expect(linearBelow).toBeLessThan(0.25 / 1.9);
    for (let i = 1; i < bars.length; i++) expect(bars[i].x0).toBeGreaterThanOrEqual(bars[i - 1].x1);
  });

  test('magnitudes far below the largest are drawn in the bar at 0, either side of it, and counted', () => {
    const { bars, nearZero } = sketchBars(sketchOf([1e-9, -1e-8, 0, 0.1, -0.05, 0.2]));
    expect(nearZero!.count).toBe(3);
    expect(nearZero!.zeros).toBe(1);
    // Four decades under 0.2: the bar at 0 reaches 2·10⁻⁵, within a bar's width.
    expect(nearZero!.below).toBeGreaterThan(1e-5);
    expect(nearZero!.below).toBeLessThan(2e-5);
    expect(bars.map((b) => b.count)).toEqual([1, 3, 1, 1]);
    expect(bars[1]).toEqual({ x0: -nearZero!.below, x1: nearZero!.below, count: 3 });
    for (let i = 1; i < bars.length; i++) expect(bars[i].x0).toBeGreaterThanOrEqual(bars[i - 1].x1);
  });

  test('many buckets are grouped into at most MAX_SKETCH_BARS log-spaced bars, every value still in one', () => {
    const values = Array.from({ length: 5000 }, (_, i) => 10 ** (-3 + (6 * i) / 4999) * (i % 2 ? 1 : -1));
    const { bars, group } = sketchBars(sketchOf(values));
    expect(group).toBeGreaterThan(1);
    expect(bars.length).toBeLessThanOrEqual(MAX_SKETCH_BARS + 2);
    expect(bars.reduce((s, b) => s + b.count, 0)).toBe(5000);
    expect(bars[0].x0).toBeLessThanOrEqual(-(10 ** 3) * 0.99);
    expect(bars.at(-1)!.x1).toBeGreaterThanOrEqual(10 ** 3 * 0.99);
  });

  test('symmetric-log ticks: 0 where the axis crosses it, powers of ten either side', () => {
    expect(logTicks(0.8, 47.6, 0.8)).toEqual([1, 2, 5, 10, 20]);
    expect(logTicks(-20, 3, 0.25)).toEqual([-10, -1, -0.1, 0, 0.1, 1]);
  });
});

const run = (ranks: number): RunRecord => ({
  runId: 'r-1',
  recordType: 'run',
  status: 'SUCCEEDED',
  startedAt: '2026-01-01T00:00:00.000Z',
  finishedAt: '2026-01-01T00:01:00.000Z',
  payloadUri: 's3://c/p.json',
  payload: {},
  dataset: 'd/p/',
  warnings: [],
  partitions: ranks,
  ranks,
  samples: ranks * 10,
  predictions: ranks * 10,
});

const rank = (i: number, startS: number, cold: boolean): RankTiming => ({
  rank: i,
  samples: 10,
  init_s: cold ? 0.5 : 0,
  cold_start: cold,
  started_at: new Date(Date.parse('2026-01-01T00:00:00.000Z') + startS * 1000).toISOString(),
  wall_s: { total: 4, download: 1.5, open: 0.2, inference: 2.5, read_wait: 0.8, upload: 0.3 },
});

describe('the timeline', () => {
  test('lays each rank out from its start: INIT before it when cold, then S3 waits, inference, upload, the rest', () => {
    const segments = timelineSegments(run(2), [rank(0, 1, true), rank(1, 2, false)]);
    expect(segments.filter((s) => s.rank === 0).map((s) => [s.phase, +s.start.toFixed(3), +s.end.toFixed(3)])).toEqual([
      ['INIT (cold start)', 0.5, 1],
      ['download (waiting on S3)', 1, 2],
      ['inference', 2, 4.5],
      ['upload', 4.5, 4.8],
      ['other', 4.8, 5],
    ]);
    expect(segments.filter((s) => s.rank === 1)[0].start).toBe(2);
  });

  test("a run model's load comes first in the rank's wall time, and is not counted again in the rest", () => {
    const loaded = { ...rank(0, 1, false), wall_s: { ...rank(0, 1, false).wall_s, total: 5.5, model_load: 1.5 } };
    expect(timelineSegments(run(1), [loaded]).map((s) => [s.phase, +s.start.toFixed(3), +s.end.toFixed(3)])).toEqual([
      ['model load (a run model)', 1, 2.5],
      ['download (waiting on S3)', 2.5, 3.5],
      ['inference', 3.5, 6],
      ['upload', 6, 6.3],
      ['other', 6.3, 6.5],
    ]);
  });

  test("a cold rank's pause before its first read comes first, before a run model's load, and is not counted again in the rest", () => {
    const cold = rank(0, 1, true);
    const waited = { ...cold, wall_s: { ...cold.wall_s, total: 6, model_load: 1.5, first_read_wait: 0.5 } };
    expect(timelineSegments(run(1), [waited]).map((s) => [s.phase, +s.start.toFixed(3), +s.end.toFixed(3)])).toEqual([
      ['INIT (cold start)', 0.5, 1],
      ['other', 1, 1.5],
      ['model load (a run model)', 1.5, 3],
      ['download (waiting on S3)', 3, 4],
      ['inference', 4, 6.5],
      ['upload', 6.5, 6.8],
      ['other', 6.8, 7],
    ]);
  });

  test('aggregated over time bins, it keeps every rank-second', () => {
    const ranks = Array.from({ length: 5000 }, (_, i) => rank(i, (i % 1000) * 0.05, i % 7 === 0));
    const segments = timelineSegments(run(5000), ranks);
    const counts = phaseCounts(segments, 50);
    expect(counts).toHaveLength(50 * PHASES.length);
    const width = counts[1].t - counts[0].t;
    for (const phase of PHASES) {
      const busy = segments.filter((s) => s.phase === phase).reduce((s, x) => s + x.end - x.start, 0);
      const counted = counts.filter((c) => c.phase === phase).reduce((s, c) => s + c.ranks * width, 0);
      expect(counted).toBeCloseTo(busy, 6);
    }
  });
});

describe('buildReport', () => {
  const regression: CardOutput = { task: 'regression', label: 2 };
  // ẑ of 3.2 lies far beyond the ẑ-vs-z cells: the predicted and residual plots draw it.
  const labelled = outputStatistics(
    regression,
    Float32Array.from([0.1, 0.2, 0.15, 3.2]),
    'p.pt',
    Float32Array.from([0.11, 0.18, 0.3, 0.2]),
  );
  const histograms = (labelled as RegressionStatistics).histograms;
  const accuracy = { samples: 3, excluded: 0, mae: 0.05, mse: 0.004, bias: -0.01, precision: 0.02, r2: 0.5, outlierFraction: 0 };

  test('a labelled run: accuracy table, ẑ-vs-z and residual plots, predicted histogram with its quantiles, timeline', async () => {
    const html = await buildReport({
      run: { ...run(2), accuracy },
      histograms,
      ranks: [rank(0, 1, true), rank(1, 2, false)],
      statistics: { redshift: labelled },
    });
    for (const id of ['plot-joint', 'plot-residual', 'plot-predicted', 'plot-timeline']) {
      expect(html).toMatch(new RegExp(`<figure class="plot" id="${id}"><svg[^>]*>`));
    }
    expect(html).toMatch(/<th>NMAD \(1\.48 · median \|Δz\|\/\(1\+z\)\)<\/th><td>0\.\d{4}<\/td>/);
    // The predicted values' quantiles, the largest (3.2) within 0.5 %.
    const max = Number(html.match(/<th>quantiles \(each within 0\.5 %\)<\/th><td>min \S+ · .* · max (\S+)<\/td>/)![1]);
    expect(Math.abs(max / 3.2 - 1)).toBeLessThanOrEqual(0.005);
    // Self-contained: nothing is fetched (the only URLs are SVG's namespace names).
    expect(html.match(/(?:src|href)=/g)).toBeNull();
    expect(html).not.toMatch(/<script/);
  });

  test('an unlabelled run has no accuracy section but still its predicted histogram', async () => {
    const html = await buildReport({ run: run(1), histograms: redshiftHistograms([0.1, 0.2], null), ranks: [rank(0, 0, true)] });
    expect(html).not.toMatch(/id="accuracy"|plot-joint|plot-residual/);
    expect(html).toMatch(/id="plot-predicted"><svg/);
  });

  test('a run whose summary.json has the fixed-bin histograms of before sketches is reported, without those plots', async () => {
    const fixedBins = { predicted: { lo: 0, hi: 0.6, counts: [1, 2], below: 0, above: 0 }, nonFinite: 0, joint: null };
    const html = await buildReport({ run: run(1), histograms: fixedBins as unknown as RedshiftHistograms, ranks: [rank(0, 0, true)] });
    expect(html).toMatch(/<section id="predicted">.*a run from before CAI kept sketches\): no plot\./s);
    expect(html).not.toMatch(/plot-predicted/);
  });

  test('a labelled run from before ranks wrote histograms keeps its accuracy table, without plots', async () => {
    const html = await buildReport({ run: { ...run(1), accuracy }, histograms: null, ranks: [rank(0, 0, true)] });
    expect(html).toMatch(/id="accuracy".*<th>MAE<\/th><td>0\.0500<\/td>/s);
    expect(html).not.toMatch(/plot-joint|plot-residual|plot-predicted/);
    expect(html).toMatch(/wrote no histograms/);
  });

  test('5,000 ranks are drawn as ranks per phase over time, not 5,000 bars', async () => {
    const ranks = Array.from({ length: 5000 }, (_, i) => rank(i, (i % 1000) * 0.05, i % 7 === 0));
    const html = await buildReport({ run: run(5000), histograms, ranks });
    expect(html).toMatch(/Timeline of 5,000 ranks: how many were in each phase/);
    expect(html.length).toBeLessThan(2_000_000);
  });
});
