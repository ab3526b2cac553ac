import { mergeSketches, sketchOf, type Sketch } from './sketch';

/**
 * What a rank keeps of a regression output's predictions for the run's plots, which the summarizer
 * adds up: the sketch of the predicted values (sketch.ts: any range, log-spaced buckets of 1 %) and
 * the ẑ-against-z cells; never every prediction. The residuals' sketch is the accuracy's
 * (AccuracySums.residuals). Merging is a sum, O(buckets + cells) per rank.
 */

/**
 * ẑ against z: JOINT_BINS × JOINT_BINS cells over [0, Z_MAX)², non-empty cells only. Fixed, unlike
 * the sketches: it is redshift's diagnostic, read on linear axes against the 1:1 line and the
 * |Δz|/(1+z) = 0.15 bounds, and a rank bins its cells before any run-wide range exists (cells binned
 * over each rank's own range would not add up). SDSS's main sample lies well inside; what does not
 * is counted in `outside`, and the sketches of ẑ and of Δz/(1+z) draw it wherever it lies.
 */
export const Z_MAX = 0.6;
export const JOINT_BINS = 60;

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
  predicted: Sketch;
  /** Non-finite predictions, left out of the sketch. */
  nonFinite: number;
  /** Only for labelled objects. */
  joint: JointHistogram | null;
}

/** The bin of x over [lo, hi) with `bins` bins; −1 below, `bins` at or above. */
export function binOf(x: number, lo: number, hi: number, bins: number): number {
  if (x < lo) return -1;
  if (x >= hi) return bins;
  return Math.min(bins - 1, Math.floor(((x - lo) / (hi - lo)) * bins));
}

export function redshiftHistograms(predicted: ArrayLike<number>, truth?: ArrayLike<number> | null): RedshiftHistograms {
  let nonFinite = 0;
  const joint: JointHistogram | null = truth ? { lo: 0, hi: Z_MAX, bins: JOINT_BINS, cells: {}, outside: 0 } : null;
  for (let i = 0; i < predicted.length; i++) {
    const p = predicted[i];
    if (!Number.isFinite(p)) {
      nonFinite++;
      continue;
    }
    if (!joint || i >= truth!.length || !Number.isFinite(truth![i])) continue;
    const [tz, pz] = [binOf(truth![i], 0, Z_MAX, JOINT_BINS), binOf(p, 0, Z_MAX, JOINT_BINS)];
    if (tz < 0 || tz >= JOINT_BINS || pz < 0 || pz >= JOINT_BINS) joint.outside++;
    else joint.cells[`${tz},${pz}`] = (joint.cells[`${tz},${pz}`] ?? 0) + 1;
  }
  return { predicted: sketchOf(predicted), nonFinite, joint };
}

/** a += b (a is changed and returned; null a takes a copy of b): the summarizer's running total. */
export function mergeRedshiftHistograms(a: RedshiftHistograms | null, b: RedshiftHistograms | null | undefined): RedshiftHistograms | null {
  if (!b) return a;
  const into: RedshiftHistograms = a ?? { predicted: mergeSketches(null, b.predicted)!, nonFinite: 0, joint: null };
  if (a) mergeSketches(into.predicted, b.predicted);
  into.nonFinite += b.nonFinite;
  if (b.joint) {
    if (!into.joint) into.joint = { ...b.joint, cells: { ...b.joint.cells } };
    else {
      for (const [cell, count] of Object.entries(b.joint.cells)) into.joint.cells[cell] = (into.joint.cells[cell] ?? 0) + count;
      into.joint.outside += b.joint.outside;
    }
  }
  return into;
}
