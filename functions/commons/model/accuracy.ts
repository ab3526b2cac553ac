import { emptySketch, magnitudes, mergeSketches, sketchOf, sketchQuantile, type Sketch } from './sketch';

/**
 * Photometric-redshift accuracy, as astronomers quote it. With Δ = ẑ − z:
 * MAE = mean|Δ|, MSE = mean Δ², bias = mean(Δ/(1+z)), precision = 1.48 · median|Δ/(1+z)| (the
 * NMAD), R² = 1 − Σ Δ² / Σ (z − z̄)², and the outlier fraction, |Δ|/(1+z) > 0.15.
 *
 * Over the objects whose prediction and label are both finite: an object with a non-finite input
 * value has a NaN prediction (model/session), and it is counted in `excluded`, never averaged in.
 */
export interface Accuracy {
  /** Labelled objects the metrics are over (finite prediction and label). */
  samples: number;
  /** Labelled objects left out: their prediction or their label is not finite. */
  excluded: number;
  mae: number;
  mse: number;
  bias: number;
  precision: number;
  /** null when the labels have no spread (one object, or all equal): R² is undefined. */
  r2: number | null;
  outlierFraction: number;
}

/** Both finite: the pair counts towards the accuracy. */
const counted = (predicted: number, truth: number) => Number.isFinite(predicted) && Number.isFinite(truth);

export const OUTLIER_THRESHOLD = 0.15;

export function redshiftAccuracy(predicted: ArrayLike<number>, truth: ArrayLike<number>): Accuracy | null {
  const length = Math.min(predicted.length, truth.length);
  let n = 0;
  let absSum = 0;
  let sqSum = 0;
  let biasSum = 0;
  let outliers = 0;
  let zSum = 0;
  const scaled = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    const z = truth[i];
    if (!counted(predicted[i], z)) continue;
    const d = predicted[i] - z;
    const s = d / (1 + z);
    absSum += Math.abs(d);
    sqSum += d * d;
    biasSum += s;
    scaled[n++] = Math.abs(s);
    if (Math.abs(s) > OUTLIER_THRESHOLD) outliers++;
    zSum += z;
  }
  if (n === 0) return null;
  const zMean = zSum / n;
  let total = 0;
  for (let i = 0; i < length; i++) if (counted(predicted[i], truth[i])) total += (truth[i] - zMean) ** 2;
  const sorted = scaled.subarray(0, n).sort();
  const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return {
    samples: n,
    excluded: length - n,
    mae: absSum / n,
    mse: sqSum / n,
    bias: biasSum / n,
    precision: 1.48 * median,
    r2: total > 0 ? 1 - sqSum / total : null,
    outlierFraction: outliers / n,
  };
}

/**
 * The same accuracy from partial statistics that ranks compute apart and the summarizer merges, so
 * a run of 50 M objects is never held in one place. Sums give MAE, MSE, bias, R² and the outlier
 * fraction exactly (up to float64 rounding); the median behind the NMAD comes from the sketch of
 * Δ/(1+z) (sketch.ts), so the NMAD is within SKETCH_RELATIVE_ERROR (0.5 %) of the exact one's value.
 */
export interface AccuracySums {
  n: number;
  /** Labelled objects left out (non-finite prediction or label); absent in ranks written before it existed. */
  excluded?: number;
  absSum: number;
  sqSum: number;
  biasSum: number;
  zSum: number;
  zSqSum: number;
  outliers: number;
  /** Δ/(1+z) of the n objects: the NMAD's median (of its magnitudes) and the report's residual plot. */
  residuals: Sketch;
}

export function accuracySums(predicted: ArrayLike<number>, truth: ArrayLike<number>): AccuracySums | null {
  const length = Math.min(predicted.length, truth.length);
  if (length === 0) return null;
  const sums: AccuracySums = {
    n: 0,
    excluded: 0,
    absSum: 0,
    sqSum: 0,
    biasSum: 0,
    zSum: 0,
    zSqSum: 0,
    outliers: 0,
    residuals: emptySketch(),
  };
  const residuals = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    const z = truth[i];
    if (!counted(predicted[i], z)) {
      sums.excluded!++;
      continue;
    }
    const d = predicted[i] - z;
    const scaled = d / (1 + z);
    residuals[sums.n++] = scaled;
    sums.absSum += Math.abs(d);
    sums.sqSum += d * d;
    sums.biasSum += scaled;
    sums.zSum += z;
    sums.zSqSum += z * z;
    if (Math.abs(scaled) > OUTLIER_THRESHOLD) sums.outliers++;
  }
  sums.residuals = sketchOf(residuals.subarray(0, sums.n));
  return sums;
}

/** a + b; with inPlace, into a (or a copy of b when a is null), so a running total allocates nothing. */
export function mergeAccuracySums(
  a: AccuracySums | null,
  b: AccuracySums | null,
  options: { inPlace?: boolean } = {},
): AccuracySums | null {
  if (!b) return a;
  if (!a) return options.inPlace ? { ...b, residuals: mergeSketches(null, b.residuals)! } : b;
  const residuals = mergeSketches(options.inPlace ? a.residuals : mergeSketches(null, a.residuals), b.residuals)!;
  return Object.assign(options.inPlace ? a : {}, {
    n: a.n + b.n,
    excluded: (a.excluded ?? 0) + (b.excluded ?? 0),
    absSum: a.absSum + b.absSum,
    sqSum: a.sqSum + b.sqSum,
    biasSum: a.biasSum + b.biasSum,
    zSum: a.zSum + b.zSum,
    zSqSum: a.zSqSum + b.zSqSum,
    outliers: a.outliers + b.outliers,
    residuals,
  });
}

export function accuracyFromSums(sums: AccuracySums | null): Accuracy | null {
  if (!sums || sums.n === 0) return null;
  const { n } = sums;
  const excluded = sums.excluded ?? 0;
  // The lower middle value of |Δ/(1+z)| (for an even n the exact median averages it with the next one).
  const median = sketchQuantile(magnitudes(sums.residuals), 0.5) ?? 0;
  // Σ(z − z̄)² from sums; what is left of it after cancellation (one object, equal labels) is no spread.
  const total = sums.zSqSum - (sums.zSum * sums.zSum) / n;
  const spread = total > 1e-12 * sums.zSqSum;
  return {
    samples: n,
    excluded,
    mae: sums.absSum / n,
    mse: sums.sqSum / n,
    bias: sums.biasSum / n,
    precision: 1.48 * median,
    r2: spread ? 1 - sums.sqSum / total : null,
    outlierFraction: sums.outliers / n,
  };
}
