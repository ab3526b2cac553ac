/**
 * Photometric-redshift accuracy, as astronomers quote it. With Δ = ẑ − z:
 * MAE = mean|Δ|, MSE = mean Δ², bias = mean(Δ/(1+z)), precision = 1.48 · median|Δ/(1+z)| (the
 * NMAD), R² = 1 − Σ Δ² / Σ (z − z̄)², and the outlier fraction, |Δ|/(1+z) > 0.15.
 */
export interface Accuracy {
  samples: number;
  mae: number;
  mse: number;
  bias: number;
  precision: number;
  r2: number;
  outlierFraction: number;
}

export const OUTLIER_THRESHOLD = 0.15;

export function redshiftAccuracy(predicted: ArrayLike<number>, truth: ArrayLike<number>): Accuracy | null {
  const n = Math.min(predicted.length, truth.length);
  if (n === 0) return null;
  let absSum = 0;
  let sqSum = 0;
  let biasSum = 0;
  let outliers = 0;
  let zSum = 0;
  const scaled = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const z = truth[i];
    const d = predicted[i] - z;
    const s = d / (1 + z);
    absSum += Math.abs(d);
    sqSum += d * d;
    biasSum += s;
    scaled[i] = Math.abs(s);
    if (Math.abs(s) > OUTLIER_THRESHOLD) outliers++;
    zSum += z;
  }
  const zMean = zSum / n;
  let total = 0;
  for (let i = 0; i < n; i++) total += (truth[i] - zMean) ** 2;
  scaled.sort();
  const median = n % 2 ? scaled[(n - 1) / 2] : (scaled[n / 2 - 1] + scaled[n / 2]) / 2;
  return {
    samples: n,
    mae: absSum / n,
    mse: sqSum / n,
    bias: biasSum / n,
    precision: 1.48 * median,
    r2: total > 0 ? 1 - sqSum / total : NaN,
    outlierFraction: outliers / n,
  };
}

/**
 * The same accuracy from partial statistics that ranks compute apart and the summarizer merges, so
 * a run of 50 M objects is never held in one place. Sums give MAE, MSE, bias, R² and the outlier
 * fraction exactly (up to float64 rounding); the median behind the NMAD comes from a logarithmic
 * histogram of |Δ|/(1+z) whose buckets are at most 2·SKETCH_RELATIVE_ERROR wide in relative terms,
 * so the NMAD is within SKETCH_RELATIVE_ERROR (0.5 %) of the exact one's value.
 */
export const SKETCH_RELATIVE_ERROR = 0.005;
const GAMMA = (1 + SKETCH_RELATIVE_ERROR) / (1 - SKETCH_RELATIVE_ERROR);
const LOG_GAMMA = Math.log(GAMMA);

export interface AccuracySums {
  n: number;
  absSum: number;
  sqSum: number;
  biasSum: number;
  zSum: number;
  zSqSum: number;
  outliers: number;
  /** |Δ|/(1+z) = 0 exactly. */
  zeros: number;
  /** Bucket i holds |Δ|/(1+z) in (γ^(i-1), γ^i]: bucket → count. */
  buckets: Record<string, number>;
}

export function accuracySums(predicted: ArrayLike<number>, truth: ArrayLike<number>): AccuracySums | null {
  const n = Math.min(predicted.length, truth.length);
  if (n === 0) return null;
  const sums: AccuracySums = { n, absSum: 0, sqSum: 0, biasSum: 0, zSum: 0, zSqSum: 0, outliers: 0, zeros: 0, buckets: {} };
  for (let i = 0; i < n; i++) {
    const z = truth[i];
    const d = predicted[i] - z;
    const scaled = Math.abs(d / (1 + z));
    sums.absSum += Math.abs(d);
    sums.sqSum += d * d;
    sums.biasSum += d / (1 + z);
    sums.zSum += z;
    sums.zSqSum += z * z;
    if (scaled > OUTLIER_THRESHOLD) sums.outliers++;
    if (scaled === 0) sums.zeros++;
    else {
      const bucket = Math.ceil(Math.log(scaled) / LOG_GAMMA);
      sums.buckets[bucket] = (sums.buckets[bucket] ?? 0) + 1;
    }
  }
  return sums;
}

/** a + b; with inPlace, into a (or a copy of b when a is null), so a running total allocates nothing. */
export function mergeAccuracySums(
  a: AccuracySums | null,
  b: AccuracySums | null,
  options: { inPlace?: boolean } = {},
): AccuracySums | null {
  if (!b) return a;
  if (!a) return options.inPlace ? { ...b, buckets: { ...b.buckets } } : b;
  const buckets = options.inPlace ? a.buckets : { ...a.buckets };
  for (const [bucket, count] of Object.entries(b.buckets)) buckets[bucket] = (buckets[bucket] ?? 0) + count;
  return Object.assign(options.inPlace ? a : {}, {
    n: a.n + b.n,
    absSum: a.absSum + b.absSum,
    sqSum: a.sqSum + b.sqSum,
    biasSum: a.biasSum + b.biasSum,
    zSum: a.zSum + b.zSum,
    zSqSum: a.zSqSum + b.zSqSum,
    outliers: a.outliers + b.outliers,
    zeros: a.zeros + b.zeros,
    buckets,
  });
}

export function accuracyFromSums(sums: AccuracySums | null): Accuracy | null {
  if (!sums || sums.n === 0) return null;
  const { n } = sums;
  // The lower middle value (for an even n the exact median averages it with the next one).
  const target = Math.floor((n - 1) / 2);
  let median = 0;
  if (target >= sums.zeros) {
    let seen = sums.zeros;
    for (const bucket of Object.keys(sums.buckets)
      .map(Number)
      .sort((x, y) => x - y)) {
      seen += sums.buckets[bucket];
      if (seen > target) {
        median = (2 * GAMMA ** bucket) / (GAMMA + 1); // the bucket's value of least relative error
        break;
      }
    }
  }
  const total = sums.zSqSum - (sums.zSum * sums.zSum) / n;
  return {
    samples: n,
    mae: sums.absSum / n,
    mse: sums.sqSum / n,
    bias: sums.biasSum / n,
    precision: 1.48 * median,
    r2: total > 0 ? 1 - sums.sqSum / total : NaN,
    outlierFraction: sums.outliers / n,
  };
}
