import type { RedshiftHistograms } from '../../functions/commons/model/histograms';
import { bucketBounds, type Sketch } from '../../functions/commons/model/sketch';
import { outputMetrics, type ClassificationStatistics, type OutputStatistics } from '../../functions/commons/model/task-statistics';
import type { RankResult } from '../../functions/commons/run/contracts';
import type { RunRecord } from '../../functions/commons/run/run-store';
import type { ObjectImages } from './object-images';
import type { RunChain } from '../run-chain';

/**
 * What a report is made of: the run record, the run's merged statistics per output and histograms
 * (summary.json), each rank's timings (combined_data.json), and thumbnails of a score's top objects
 * (read from their partitions). Nothing here holds every prediction: a run of 50 M galaxies
 * reports from O(ranks + buckets) numbers.
 */
export interface ReportInput {
  run: RunRecord;
  /** The first regression output's histograms (summary.json's `histograms`): what runs from before model cards have. */
  histograms: RedshiftHistograms | null;
  ranks: RankTiming[];
  /** Each output's merged statistics by name (summary.json's `statistics`); absent: a run from before model cards. */
  statistics?: Record<string, OutputStatistics>;
  /** Thumbnails of the score outputs' top objects; absent: none were read. */
  objectImages?: ObjectImages;
  /** The run's retries and what they gave together (cli/run-chain.ts); absent: never retried. */
  chain?: RunChain;
}

export type RankTiming = Pick<RankResult, 'rank' | 'wall_s' | 'init_s' | 'cold_start' | 'samples' | 'started_at' | 'model'>;

export const rankTiming = (r: RankResult): RankTiming => ({
  rank: r.rank,
  wall_s: r.wall_s,
  init_s: r.init_s,
  cold_start: r.cold_start,
  samples: r.samples,
  started_at: r.started_at,
  model: r.model,
});

export const PHASES = [
  'INIT (cold start)',
  'model load (a run model)',
  'download (waiting on S3)',
  'inference',
  'upload',
  'other',
] as const;
export type Phase = (typeof PHASES)[number];

/** One segment of one rank's bar, seconds since the run started. */
export interface TimelineSegment {
  rank: number;
  phase: Phase;
  start: number;
  end: number;
}

/**
 * Each rank's invocation laid out in time: INIT before it on a cold start, then loading a run's own
 * model when this invocation fetched it, then the time spent
 * waiting on S3 (opening partitions and reads inference had to wait for; reads that overlapped
 * inference are hidden behind it), inference, the upload, and whatever remains of its wall time.
 * Ranks without a start time (results from before CAI recorded one) are laid out from 0.
 */
export function timelineSegments(run: RunRecord, ranks: RankTiming[]): TimelineSegment[] {
  const origin = Date.parse(run.startedAt);
  const segments: TimelineSegment[] = [];
  for (const r of ranks) {
    const started = r.started_at ? (Date.parse(r.started_at) - origin) / 1000 : 0;
    let t = started;
    const push = (phase: Phase, seconds: number) => {
      if (!(seconds > 0)) return;
      segments.push({ rank: r.rank, phase, start: t, end: t + seconds });
      t += seconds;
    };
    if (r.cold_start && r.init_s > 0) segments.push({ rank: r.rank, phase: PHASES[0], start: started - r.init_s, end: started });
    // A cold rank's pause before its first read comes first, then a run model's load.
    const firstReadWait = r.wall_s.first_read_wait ?? 0;
    const modelLoad = r.wall_s.model_load ?? 0;
    const waited = r.wall_s.open + r.wall_s.read_wait;
    push(PHASES[5], firstReadWait);
    push(PHASES[1], modelLoad);
    push(PHASES[2], waited);
    push(PHASES[3], r.wall_s.inference);
    push(PHASES[4], r.wall_s.upload);
    push(PHASES[5], r.wall_s.total - firstReadWait - modelLoad - waited - r.wall_s.inference - r.wall_s.upload);
  }
  return segments;
}

/** Above this many ranks the timeline is drawn as ranks-in-each-phase over time, not a bar per rank. */
export const MAX_RANK_BARS = 200;

export interface PhaseCount {
  /** Start of the time bin, seconds since the run started. */
  t: number;
  phase: Phase;
  /** Mean number of ranks in this phase over the bin. */
  ranks: number;
}

/**
 * The aggregated timeline: for each of `bins` equal time bins, how many ranks were in each phase
 * (time-weighted), so 10,240 ranks read as a few curves. O(segments + bins) via a difference array
 * of the time each phase spent in each bin.
 */
export function phaseCounts(segments: TimelineSegment[], bins = 120): PhaseCount[] {
  if (!segments.length) return [];
  const t0 = segments.reduce((m, s) => Math.min(m, s.start), Infinity);
  const t1 = segments.reduce((m, s) => Math.max(m, s.end), -Infinity);
  const width = Math.max(t1 - t0, 1e-3) / bins;
  const busy = new Map<Phase, Float64Array>(PHASES.map((p) => [p, new Float64Array(bins)]));
  for (const s of segments) {
    const into = busy.get(s.phase)!;
    const [a, b] = [(s.start - t0) / width, (s.end - t0) / width];
    const [first, last] = [Math.floor(a), Math.min(bins - 1, Math.floor(b))];
    if (first === last) into[first] += b - a;
    else {
      into[first] += first + 1 - a;
      for (let i = first + 1; i < last; i++) into[i] += 1;
      into[last] += Math.min(b, bins) - last;
    }
  }
  return PHASES.flatMap((phase) => Array.from(busy.get(phase)!, (v, i) => ({ t: t0 + i * width, phase, ranks: v })));
}

/** A sketch, not a fixed-bin histogram that summary.json held before CAI kept sketches (drawn as no plot, with a line why). */
export const isSketch = (s: unknown): s is Sketch =>
  typeof s === 'object' && s !== null && Array.isArray((s as Sketch).positive?.counts) && Array.isArray((s as Sketch).negative?.counts);

/** At most about this many bars are drawn of a sketch. */
export const MAX_SKETCH_BARS = 80;
/** Decades of magnitude a sketch's plot spans below its largest value; smaller magnitudes are drawn in the bar at 0. */
export const PLOTTED_DECADES = 4;

export interface SketchBar {
  x0: number;
  x1: number;
  count: number;
}

export interface SketchBars {
  /** Ascending: negative values' bars (mirrored), the bar at 0, positive values' bars. */
  bars: SketchBar[];
  /** Buckets per bar: each bar is one log-spaced bin γ^group wide. */
  group: number;
  /** Where the axis turns logarithmic: the least magnitude of a log-spaced bar. */
  linearBelow: number;
  /** The bar at 0: zeros and magnitudes under `below`, counted; null when there are none. */
  nearZero: { below: number; count: number; zeros: number } | null;
}

/**
 * A sketch's histogram, every value drawn: its buckets (1 % wide, log-spaced) grouped by `group`
 * consecutive buckets, aligned on multiples of it so each bar is one log-spaced bin, `group` the
 * least keeping the bars to about `maxBars`. Negative values' bars lie left of zero, mirrored.
 * Magnitudes more than PLOTTED_DECADES below the largest one (a residual of 10⁻⁹ beside 0.1),
 * and zeros, are one bar at 0 of half-width `below` (on the side of their signs), so the axis is
 * not spent on decades that hold a few values; the note under the plot says how many it holds.
 */
export function sketchBars(s: Sketch, maxBars = MAX_SKETCH_BARS): SketchBars {
  const stores = [s.negative, s.positive].filter((store) => store.counts.length);
  const top = stores.reduce((m, store) => Math.max(m, store.offset + store.counts.length - 1), -Infinity);
  const span = Math.ceil((PLOTTED_DECADES * Math.LN10) / Math.log(bucketBounds(1)[1]));
  const lowest = (store: Sketch['positive']) => Math.max(store.offset, top - span);
  const group = Math.max(1, Math.ceil(stores.reduce((n, store) => n + store.offset + store.counts.length - lowest(store), 0) / maxBars));
  // Buckets under `floor` (a multiple of the group) go to the bar at 0.
  const floor = stores.length ? Math.floor((top - span) / group) * group : 0;
  const near = { negative: 0, positive: 0 };
  const grouped = (store: Sketch['positive'], sign: 'negative' | 'positive'): SketchBar[] => {
    const byGroup = new Map<number, number>();
    store.counts.forEach((count, i) => {
      if (!count) return;
      if (store.offset + i < floor) near[sign] += count;
      else {
        const g = Math.floor((store.offset + i) / group);
        byGroup.set(g, (byGroup.get(g) ?? 0) + count);
      }
    });
    return [...byGroup].map(([g, count]) => {
      // Group g holds buckets g·group … g·group + group − 1.
      const [lo, hi] = [bucketBounds(g * group)[0], bucketBounds(g * group + group - 1)[1]];
      return sign === 'positive' ? { x0: lo, x1: hi, count } : { x0: -hi, x1: -lo, count };
    });
  };
  const negative = grouped(s.negative, 'negative').reverse();
  const positive = grouped(s.positive, 'positive');
  const drawn = [...negative.map((b) => -b.x1), ...positive.map((b) => b.x0)];
  const smallest = drawn.length ? drawn.reduce((m, x) => Math.min(m, x), Infinity) : 1;
  // Only zeros at 0: their bar hugs the smallest drawn, not a floor decades below it.
  const below = near.negative + near.positive ? bucketBounds(floor)[0] : smallest / 2;
  const count = near.negative + near.positive + s.zeros;
  const nearZero = count ? { below, count, zeros: s.zeros } : null;
  const centre = nearZero ? [{ x0: near.negative ? -below : 0, x1: near.positive || !near.negative ? below : 0, count }] : [];
  return { bars: [...negative, ...centre, ...positive], group, linearBelow: nearZero ? below : smallest, nearZero };
}

/** Non-empty cells of the ẑ-vs-z histogram as rectangles. */
export function jointCells(
  j: NonNullable<RedshiftHistograms['joint']>,
): { z0: number; z1: number; p0: number; p1: number; count: number }[] {
  const width = (j.hi - j.lo) / j.bins;
  return Object.entries(j.cells).map(([cell, count]) => {
    const [tz, pz] = cell.split(',').map(Number);
    return { z0: j.lo + tz * width, z1: j.lo + (tz + 1) * width, p0: j.lo + pz * width, p1: j.lo + (pz + 1) * width, count };
  });
}

/** Cells of a confusion matrix: each count, and its share of the true class's objects (the colour: a row reads as recall). */
export function confusionCells(
  classes: string[],
  confusion: number[][],
): { truth: string; predicted: string; count: number; share: number }[] {
  return confusion.flatMap((row, t) => {
    const total = row.reduce((s, v) => s + v, 0);
    return row.map((count, p) => ({ truth: classes[t], predicted: classes[p], count, share: total > 0 ? count / total : 0 }));
  });
}

/** A reliability plot's points: per non-empty confidence bin, the mean confidence and the share predicted right. */
export function reliabilityPoints(confidence: ClassificationStatistics['confidence']): {
  lo: number;
  hi: number;
  confidence: number;
  accuracy: number;
  count: number;
}[] {
  const bins = confidence.count.length;
  return confidence.count.flatMap((count, i) =>
    count > 0
      ? [{ lo: i / bins, hi: (i + 1) / bins, confidence: confidence.sum[i] / count, accuracy: confidence.correct[i] / count, count }]
      : [],
  );
}

export interface ClassRow {
  class: string;
  precision: number | null;
  recall: number | null;
  f1: number | null;
  /** Labelled objects of the class. */
  support: number;
  /** Objects predicted as the class, labelled or not. */
  predicted: number;
}

/** The per-class table of a classification output: its metrics (as the run record has them) and predicted counts. */
export function classRows(stats: ClassificationStatistics): ClassRow[] {
  const metrics = outputMetrics(stats);
  if (metrics.task !== 'classification') throw new Error('classification statistics without classification metrics');
  return metrics.perClass.map((m, c) => ({ ...m, predicted: stats.predicted[c] }));
}
