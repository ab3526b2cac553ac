import { JOINT_BINS, mergeRedshiftHistograms, redshiftHistograms, Z_BINS, Z_MAX } from '../../functions/commons/model/histograms';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { buildReport } from '../../cli/report/html';
import { phaseCounts, PHASES, timelineSegments, type RankTiming } from '../../cli/report/report-data';

const total = (counts: number[]) => counts.reduce((s, c) => s + c, 0);

describe('redshift histograms', () => {
  const predicted = [0.05, 0.1, 0.1, 0.3, 0.7, -0.01, NaN, 0.2];
  const truth = [0.05, 0.12, 0.4, 0.3, 0.1, 0.02, 0.1, 0.5];

  test('count every finite prediction once, with what falls outside the range', () => {
    const h = redshiftHistograms(predicted, truth);
    expect(total(h.predicted.counts)).toBe(5);
    expect(h.predicted.above).toBe(1);
    expect(h.predicted.below).toBe(1);
    expect(h.nonFinite).toBe(1);
    expect(h.predicted.counts[Math.floor((0.1 / Z_MAX) * Z_BINS)]).toBe(2);
    // Δz/(1+z) of (0.7, 0.1) is 0.545: beyond the residual range.
    expect(total(h.residual!.counts) + h.residual!.below + h.residual!.above).toBe(7);
    expect(h.residual!.above).toBe(1);
    const cells = h.joint!.cells;
    expect(Object.values(cells).reduce((s, c) => s + c, 0) + h.joint!.outside).toBe(7);
    const bin = (z: number) => Math.floor((z / Z_MAX) * JOINT_BINS);
    expect(cells[`${bin(0.3)},${bin(0.3)}`]).toBe(1);
  });

  test('without labels only the predicted histogram is kept', () => {
    const h = redshiftHistograms(predicted, null);
    expect(h.residual).toBeNull();
    expect(h.joint).toBeNull();
    expect(total(h.predicted.counts)).toBe(5);
  });

  test('merging the halves gives the whole, as the summarizer adds ranks', () => {
    const whole = redshiftHistograms(predicted, truth);
    const merged = mergeRedshiftHistograms(
      mergeRedshiftHistograms(null, redshiftHistograms(predicted.slice(0, 3), truth.slice(0, 3))),
      redshiftHistograms(predicted.slice(3), truth.slice(3)),
    );
    expect(merged).toEqual(whole);
    // An unlabelled rank adds to the predicted histogram only.
    const withUnlabelled = mergeRedshiftHistograms(structuredClone(whole), redshiftHistograms([0.1], null));
    expect(withUnlabelled!.predicted.counts[Math.floor((0.1 / Z_MAX) * Z_BINS)]).toBe(3);
    expect(withUnlabelled!.joint).toEqual(whole.joint);
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
  const histograms = redshiftHistograms([0.1, 0.2, 0.15], [0.11, 0.18, 0.3]);
  const accuracy = { samples: 3, excluded: 0, mae: 0.05, mse: 0.004, bias: -0.01, precision: 0.02, r2: 0.5, outlierFraction: 0 };

  test('a labelled run: accuracy table, ẑ-vs-z and residual plots, predicted histogram, timeline', async () => {
    const html = await buildReport({ run: { ...run(2), accuracy }, histograms, ranks: [rank(0, 1, true), rank(1, 2, false)] });
    for (const id of ['plot-joint', 'plot-residual', 'plot-predicted', 'plot-timeline']) {
      expect(html).toMatch(new RegExp(`<figure class="plot" id="${id}"><svg[^>]*>`));
    }
    expect(html).toMatch(/<th>NMAD \(1\.48 · median \|Δz\|\/\(1\+z\)\)<\/th><td>0\.0200<\/td>/);
    // Self-contained: nothing is fetched (the only URLs are SVG's namespace names).
    expect(html.match(/(?:src|href)=/g)).toBeNull();
    expect(html).not.toMatch(/<script/);
  });

  test('an unlabelled run has no accuracy section but still its predicted histogram', async () => {
    const html = await buildReport({ run: run(1), histograms: redshiftHistograms([0.1, 0.2], null), ranks: [rank(0, 0, true)] });
    expect(html).not.toMatch(/id="accuracy"|plot-joint|plot-residual/);
    expect(html).toMatch(/id="plot-predicted"><svg/);
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
