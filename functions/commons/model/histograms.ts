/**
 * Fixed-bin histograms of a rank's predictions, which the summarizer adds up: the run's plots (ẑ
 * against z, the predicted redshifts, the residuals) come from these, never from every prediction.
 * Fixed bins make merging a sum, O(bins) per rank; a rank's JSON grows by a few KB at most (the
 * 2-D histogram keeps only its non-empty cells).
 */

/** Redshifts binned over [0, Z_MAX): SDSS's main sample lies well inside; beyond counts as `above`. */
export const Z_MAX = 0.6;
export const Z_BINS = 120;
/** ẑ against z: JOINT_BINS × JOINT_BINS cells over [0, Z_MAX)². */
export const JOINT_BINS = 60;
/** Δz/(1+z) over [−RESIDUAL_MAX, RESIDUAL_MAX). */
export const RESIDUAL_MAX = 0.5;
export const RESIDUAL_BINS = 100;

export interface Histogram {
  lo: number;
  hi: number;
  counts: number[];
  below: number;
  above: number;
}

export interface JointHistogram {
  lo: number;
  hi: number;
  bins: number;
  /** "<true bin>,<predicted bin>" → count; cells outside the range are counted in `outside`. */
  cells: Record<string, number>;
  outside: number;
}

export interface RedshiftHistograms {
  /** ẑ, always. */
  predicted: Histogram;
  /** Non-finite predictions, left out of every histogram. */
  nonFinite: number;
  /** Only for labelled objects. */
  residual: Histogram | null;
  joint: JointHistogram | null;
}

const emptyHistogram = (lo: number, hi: number, bins: number): Histogram => ({
  lo,
  hi,
  counts: new Array<number>(bins).fill(0),
  below: 0,
  above: 0,
});

/** The bin of x over [lo, hi) with `bins` bins; −1 below, `bins` at or above. */
export function binOf(x: number, lo: number, hi: number, bins: number): number {
  if (x < lo) return -1;
  if (x >= hi) return bins;
  return Math.min(bins - 1, Math.floor(((x - lo) / (hi - lo)) * bins));
}

function add(h: Histogram, x: number): void {
  const bin = binOf(x, h.lo, h.hi, h.counts.length);
  if (bin < 0) h.below++;
  else if (bin >= h.counts.length) h.above++;
  else h.counts[bin]++;
}

export function redshiftHistograms(predicted: ArrayLike<number>, truth?: ArrayLike<number> | null): RedshiftHistograms {
  const labelled = truth != null;
  const out: RedshiftHistograms = {
    predicted: emptyHistogram(0, Z_MAX, Z_BINS),
    nonFinite: 0,
    residual: labelled ? emptyHistogram(-RESIDUAL_MAX, RESIDUAL_MAX, RESIDUAL_BINS) : null,
    joint: labelled ? { lo: 0, hi: Z_MAX, bins: JOINT_BINS, cells: {}, outside: 0 } : null,
  };
  for (let i = 0; i < predicted.length; i++) {
    const p = predicted[i];
    if (!Number.isFinite(p)) {
      out.nonFinite++;
      continue;
    }
    add(out.predicted, p);
    if (!truth || i >= truth.length || !Number.isFinite(truth[i])) continue;
    const z = truth[i];
    add(out.residual!, (p - z) / (1 + z));
    const joint = out.joint!;
    const [tz, pz] = [binOf(z, 0, Z_MAX, JOINT_BINS), binOf(p, 0, Z_MAX, JOINT_BINS)];
    if (tz < 0 || tz >= JOINT_BINS || pz < 0 || pz >= JOINT_BINS) joint.outside++;
    else joint.cells[`${tz},${pz}`] = (joint.cells[`${tz},${pz}`] ?? 0) + 1;
  }
  return out;
}

function mergeHistogram(into: Histogram | null, from: Histogram | null): Histogram | null {
  if (!from) return into;
  if (!into) return { ...from, counts: [...from.counts] };
  if (into.counts.length !== from.counts.length || into.lo !== from.lo || into.hi !== from.hi) {
    throw new Error(
      `histograms with different bins cannot be merged ([${into.lo}, ${into.hi}) × ${into.counts.length} and [${from.lo}, ${from.hi}) × ${from.counts.length})`,
    );
  }
  for (let i = 0; i < from.counts.length; i++) into.counts[i] += from.counts[i];
  into.below += from.below;
  into.above += from.above;
  return into;
}

/** a += b (a is changed and returned; null a takes a copy of b): the summarizer's running total. */
export function mergeRedshiftHistograms(a: RedshiftHistograms | null, b: RedshiftHistograms | null | undefined): RedshiftHistograms | null {
  if (!b) return a;
  const into: RedshiftHistograms = a ?? {
    predicted: emptyHistogram(b.predicted.lo, b.predicted.hi, b.predicted.counts.length),
    nonFinite: 0,
    residual: null,
    joint: null,
  };
  mergeHistogram(into.predicted, b.predicted);
  into.nonFinite += b.nonFinite;
  into.residual = mergeHistogram(into.residual, b.residual);
  if (b.joint) {
    if (!into.joint) into.joint = { ...b.joint, cells: { ...b.joint.cells } };
    else {
      for (const [cell, count] of Object.entries(b.joint.cells)) into.joint.cells[cell] = (into.joint.cells[cell] ?? 0) + count;
      into.joint.outside += b.joint.outside;
    }
  }
  return into;
}
