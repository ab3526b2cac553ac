import {
  bucketBounds,
  mergeSketches,
  SKETCH_MAX_BUCKETS,
  SKETCH_RELATIVE_ERROR,
  sketchCount,
  sketchOf,
  sketchQuantile,
  type Sketch,
} from '../../functions/commons/model/sketch';

/**
 * The sketch's own contract (functions/commons/model/sketch.ts): each value in its bucket, a
 * bounded size whatever the range, and merges that give the same sketch in any order. Score and
 * regression quantiles through the ranks' statistics are in task-statistics.test.ts.
 */

const GAMMA = (1 + SKETCH_RELATIVE_ERROR) / (1 - SKETCH_RELATIVE_ERROR);
let seed = 5;
const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;

/** The value of rank ⌊q·(n − 1)⌋ of the values in order. */
const exactQuantile = (sorted: Float64Array, q: number) => sorted[Math.floor(q * (sorted.length - 1))];

test('each value lies in its bucket, and the bucket reads back within the relative error', () => {
  for (let i = 0; i < 2000; i++) {
    const x = (random() < 0.5 ? -1 : 1) * 10 ** (60 * random() - 30);
    const s = sketchOf([x]);
    const store = x > 0 ? s.positive : s.negative;
    expect(store.counts).toEqual([1]);
    const [lo, hi] = bucketBounds(store.offset);
    expect(Math.abs(x)).toBeGreaterThan(lo * (1 - 1e-12));
    expect(Math.abs(x)).toBeLessThanOrEqual(hi * (1 + 1e-12));
    expect(Math.abs(sketchQuantile(s, 0.5)! - x)).toBeLessThanOrEqual(Math.abs(x) * (SKETCH_RELATIVE_ERROR + 1e-12));
  }
  // Zero, and values no bucket takes (non-finite: callers count them), apart.
  expect(sketchOf([0, -0, NaN, Infinity])).toEqual({ zeros: 2, positive: { offset: 0, counts: [] }, negative: { offset: 0, counts: [] } });
  expect(sketchQuantile(sketchOf([]), 0.5)).toBeNull();
});

test('whatever the range, a sign keeps at most SKETCH_MAX_BUCKETS buckets; quantiles within 8.9 decades of the largest keep the bound', () => {
  // 600 decades of magnitudes, either sign.
  const values = Float64Array.from({ length: 50_000 }, () => (random() < 0.3 ? -1 : 1) * 10 ** (600 * random() - 300));
  const s = sketchOf(values);
  for (const store of [s.positive, s.negative]) expect(store.counts.length).toBe(SKETCH_MAX_BUCKETS);
  expect(sketchCount(s)).toBe(values.length);
  // The JSON bound docs/architecture.md states: 2 × SKETCH_MAX_BUCKETS counts of at most (digits of n) + 1 characters.
  expect(JSON.stringify(s).length).toBeLessThanOrEqual(2 * SKETCH_MAX_BUCKETS * (String(values.length).length + 1) + 100);
  const sorted = values.slice().sort();
  const floor = (store: Sketch['positive']) => bucketBounds(store.offset)[1];
  for (let q = 0; q <= 1; q += 0.001) {
    const exact = exactQuantile(sorted, q);
    const estimate = sketchQuantile(s, q)!;
    const kept = floor(exact > 0 ? s.positive : s.negative);
    // Above the lowest kept bucket, within the bound; below it, read as that bucket: a larger magnitude, never a smaller.
    if (Math.abs(exact) > kept) expect(Math.abs(estimate - exact)).toBeLessThanOrEqual(Math.abs(exact) * (SKETCH_RELATIVE_ERROR + 1e-12));
    else expect(Math.abs(estimate)).toBeGreaterThanOrEqual(Math.abs(exact));
  }
  expect(Math.log10(GAMMA ** SKETCH_MAX_BUCKETS)).toBeCloseTo(8.9, 1);
});

test('merges fold the same buckets in any order, even when their union spans more than SKETCH_MAX_BUCKETS', () => {
  // Three "ranks": 10⁻⁹ to 10⁻³, 10⁻² to 1, and 10³ to 10⁶ with negatives; together 15 decades.
  const ranks = [
    Array.from({ length: 3000 }, () => 10 ** (-9 + 6 * random())),
    Array.from({ length: 3000 }, () => 10 ** (-2 + 2 * random()) * (random() < 0.5 ? -1 : 1)),
    Array.from({ length: 3000 }, () => 10 ** (3 + 3 * random()) * (random() < 0.2 ? -1 : 1)),
  ];
  const whole = sketchOf(ranks.flat());
  const orders = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
  ];
  for (const order of orders) {
    const merged = order.reduce<Sketch | null>((a, i) => mergeSketches(a, sketchOf(ranks[i])), null);
    expect(merged).toEqual(whole);
  }
  expect(whole.positive.counts.length).toBe(SKETCH_MAX_BUCKETS);
  // Merging does not change its argument.
  const b = sketchOf(ranks[1]);
  const before = structuredClone(b);
  mergeSketches(sketchOf(ranks[0]), b);
  expect(b).toEqual(before);
});
