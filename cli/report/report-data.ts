import type { RedshiftHistograms } from '../../functions/commons/model/histograms';
import type { RankResult } from '../../functions/commons/run/contracts';
import type { RunRecord } from '../../functions/commons/run/run-store';

/**
 * What a report is made of: the run record, the run's merged histograms (summary.json) and each
 * rank's timings (combined_data.json). Nothing here holds a prediction: a run of 50 M galaxies
 * reports from O(ranks + bins) numbers.
 */
export interface ReportInput {
  run: RunRecord;
  histograms: RedshiftHistograms | null;
  ranks: RankTiming[];
}

export type RankTiming = Pick<RankResult, 'rank' | 'wall_s' | 'init_s' | 'cold_start' | 'samples' | 'started_at'>;

export const rankTiming = (r: RankResult): RankTiming => ({
  rank: r.rank,
  wall_s: r.wall_s,
  init_s: r.init_s,
  cold_start: r.cold_start,
  samples: r.samples,
  started_at: r.started_at,
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
    const modelLoad = r.wall_s.model_load ?? 0;
    const waited = r.wall_s.open + r.wall_s.read_wait;
    push(PHASES[1], modelLoad);
    push(PHASES[2], waited);
    push(PHASES[3], r.wall_s.inference);
    push(PHASES[4], r.wall_s.upload);
    push(PHASES[5], r.wall_s.total - modelLoad - waited - r.wall_s.inference - r.wall_s.upload);
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

/** Bars of a 1-D histogram: [x0, x1) and count. */
export function histogramBars(h: { lo: number; hi: number; counts: number[] }): { x0: number; x1: number; count: number }[] {
  const width = (h.hi - h.lo) / h.counts.length;
  return h.counts.map((count, i) => ({ x0: h.lo + i * width, x1: h.lo + (i + 1) * width, count }));
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
