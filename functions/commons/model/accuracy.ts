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
