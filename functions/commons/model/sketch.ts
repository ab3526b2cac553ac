/**
 * A mergeable quantile sketch of any range with a relative-error bound: DDSketch (Masson, Rim &
 * Lee, VLDB 2019). Bucket k of a sign holds the values x with γ^(k−1) < |x| ≤ γ^k, where
 * γ = (1 + α)/(1 − α); every value in a bucket is within α of the bucket's 2γ^k/(γ + 1), so a
 * quantile read from the buckets is within α (relative) of the exact one, wherever the values lie:
 * no range or bin count is chosen in advance. Zeros are counted apart. Merging adds counts bucket
 * by bucket, so ranks' sketches merge in O(buckets) each, in any order, to the same sketch.
 *
 * Written here rather than taken from @datadog/sketches-js: its 2.1.1 (the latest, April 2024)
 * drops the negative values of a merged sketch (DataDog/sketches-js#22, open) and serialises only
 * to protobuf, losing min/max; docs/architecture.md#statistics-sketches has the comparison.
 */

/** α: a quantile is within this share of the exact value's magnitude (0.5 %). */
export const SKETCH_RELATIVE_ERROR = 0.005;
/**
 * Buckets one sign keeps at most: beyond, the smallest magnitudes are folded into the lowest kept
 * bucket, so a sketch's JSON is bounded whatever its values. 2,048 buckets of 1 % span γ^2048 ≈ 8·10^8
 * (8.9 decades) below the largest magnitude of each sign; only quantiles smaller than that lose the bound.
 */
export const SKETCH_MAX_BUCKETS = 2048;

const GAMMA = (1 + SKETCH_RELATIVE_ERROR) / (1 - SKETCH_RELATIVE_ERROR);
const LOG_GAMMA = Math.log(GAMMA);

/** One sign's buckets, dense: counts[i] is bucket offset + i; the first and last counts are never 0 (empty: no counts). */
export interface SketchStore {
  offset: number;
  counts: number[];
}

export interface Sketch {
  /** Values equal to 0. */
  zeros: number;
  /** Positive values by bucket of x. */
  positive: SketchStore;
  /** Negative values by bucket of |x|. */
  negative: SketchStore;
}

export const emptySketch = (): Sketch => ({ zeros: 0, positive: { offset: 0, counts: [] }, negative: { offset: 0, counts: [] } });

/** The bucket of a magnitude > 0. */
const bucketOf = (magnitude: number) => Math.ceil(Math.log(magnitude) / LOG_GAMMA);

/** The magnitudes bucket `key` holds: (lower, upper]. */
export const bucketBounds = (key: number): [number, number] => [GAMMA ** (key - 1), GAMMA ** key];

/** The value of least relative error for a bucket's magnitudes. */
const bucketValue = (key: number) => (2 * GAMMA ** key) / (GAMMA + 1);

/** Folds buckets below the SKETCH_MAX_BUCKETS highest into the lowest kept one. */
function bounded(store: SketchStore): SketchStore {
  const cut = store.counts.length - SKETCH_MAX_BUCKETS;
  if (cut <= 0) return store;
  let folded = 0;
  for (let i = 0; i <= cut; i++) folded += store.counts[i];
  const counts = store.counts.slice(cut);
  counts[0] = folded;
  return { offset: store.offset + cut, counts };
}

function storeOf(keys: Int32Array, n: number): SketchStore {
  if (n === 0) return { offset: 0, counts: [] };
  let [lo, hi] = [Infinity, -Infinity];
  for (let i = 0; i < n; i++) [lo, hi] = [Math.min(lo, keys[i]), Math.max(hi, keys[i])];
  // Folding first keeps the array at SKETCH_MAX_BUCKETS even when one rank's values span more.
  const floor = Math.max(lo, hi - SKETCH_MAX_BUCKETS + 1);
  const counts = new Array<number>(hi - floor + 1).fill(0);
  for (let i = 0; i < n; i++) counts[Math.max(keys[i], floor) - floor]++;
  return { offset: floor, counts };
}

/** The sketch of the finite values (others are left out: callers count them). */
export function sketchOf(values: ArrayLike<number>): Sketch {
  const positive = new Int32Array(values.length);
  const negative = new Int32Array(values.length);
  let [p, q, zeros] = [0, 0, 0];
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (!Number.isFinite(x)) continue;
    if (x > 0) positive[p++] = bucketOf(x);
    else if (x < 0) negative[q++] = bucketOf(-x);
    else zeros++;
  }
  return { zeros, positive: storeOf(positive, p), negative: storeOf(negative, q) };
}

function mergeStores(a: SketchStore, b: SketchStore): SketchStore {
  if (!b.counts.length) return a;
  if (!a.counts.length) return { offset: b.offset, counts: [...b.counts] };
  const lo = Math.min(a.offset, b.offset);
  const hi = Math.max(a.offset + a.counts.length, b.offset + b.counts.length);
  let counts = a.counts;
  if (lo < a.offset || hi > a.offset + a.counts.length) {
    counts = new Array<number>(hi - lo).fill(0);
    for (let i = 0; i < a.counts.length; i++) counts[a.offset - lo + i] = a.counts[i];
  }
  for (let i = 0; i < b.counts.length; i++) counts[b.offset - lo + i] += b.counts[i];
  // Each bucket ends up at max(its key, the highest key − SKETCH_MAX_BUCKETS + 1): the same in any merge order.
  return bounded({ offset: lo, counts });
}

/** a + b, into a (null a: a copy of b): the summarizer's running total. */
export function mergeSketches(a: Sketch | null, b: Sketch | null | undefined): Sketch | null {
  if (!b) return a;
  const into = a ?? emptySketch();
  into.zeros += b.zeros;
  into.positive = mergeStores(into.positive, b.positive);
  into.negative = mergeStores(into.negative, b.negative);
  return into;
}

const total = (store: SketchStore) => store.counts.reduce((s, c) => s + c, 0);

export const sketchCount = (s: Sketch) => s.zeros + total(s.positive) + total(s.negative);

/**
 * The q-quantile: the value of rank ⌊q·(n − 1)⌋ (from 0) of the n values in order, within
 * SKETCH_RELATIVE_ERROR of it (for an even count, the median is the lower middle value); null for no values.
 */
export function sketchQuantile(s: Sketch, q: number): number | null {
  const n = sketchCount(s);
  if (n === 0) return null;
  const rank = Math.floor(Math.min(1, Math.max(0, q)) * (n - 1));
  let seen = 0;
  const { negative, positive } = s;
  // Most negative first: the negative store from its largest magnitude down.
  for (let i = negative.counts.length - 1; i >= 0; i--) {
    seen += negative.counts[i];
    if (seen > rank) return -bucketValue(negative.offset + i);
  }
  seen += s.zeros;
  if (seen > rank) return 0;
  for (let i = 0; i < positive.counts.length; i++) {
    seen += positive.counts[i];
    if (seen > rank) return bucketValue(positive.offset + i);
  }
  return bucketValue(positive.offset + positive.counts.length - 1); // not reached: the counts add up to n
}

/** The sketch of |x|: both signs' buckets added (a bucket is one of |x| already). */
export const magnitudes = (s: Sketch): Sketch => ({
  zeros: s.zeros,
  positive: mergeStores({ offset: s.positive.offset, counts: [...s.positive.counts] }, s.negative),
  negative: { offset: 0, counts: [] },
});

/** The quantiles a run reports of an output's values. */
export interface Quantiles {
  /** The smallest and largest values, within the bound as the rest. */
  min: number;
  p5: number;
  p25: number;
  median: number;
  p75: number;
  p95: number;
  max: number;
}

export function sketchQuantiles(s: Sketch | null): Quantiles | null {
  if (!s || sketchCount(s) === 0) return null;
  const at = (q: number) => sketchQuantile(s, q)!;
  return { min: at(0), p5: at(0.05), p25: at(0.25), median: at(0.5), p75: at(0.75), p95: at(0.95), max: at(1) };
}
