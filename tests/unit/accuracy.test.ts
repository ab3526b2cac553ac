import {
  type AccuracySums,
  accuracyFromSums,
  accuracySums,
  mergeAccuracySums,
  redshiftAccuracy,
} from '../../functions/commons/model/accuracy';
import { SKETCH_MAX_BUCKETS, SKETCH_RELATIVE_ERROR } from '../../functions/commons/model/sketch';
import { predictionsCsv } from '../../functions/commons/model/predictions';

/** The redshift model's one column, as runPartition gives it. */
const redshift = (values: Float32Array, labels?: Float32Array) => [
  { name: 'redshift', output: { task: 'regression' as const }, values, width: 1, labels },
];

test('accuracy metrics follow their definitions', () => {
  const z = [0.1, 0.2, 0.3, 1.0];
  const zHat = [0.1, 0.26, 0.3, 1.4];
  const a = redshiftAccuracy(zHat, z)!;
  // Δ = [0, 0.06, 0, 0.4]; Δ/(1+z) = [0, 0.05, 0, 0.2]
  expect(a.samples).toBe(4);
  expect(a.mae).toBeCloseTo(0.115, 12);
  expect(a.mse).toBeCloseTo((0.06 ** 2 + 0.4 ** 2) / 4, 12);
  expect(a.bias).toBeCloseTo(0.0625, 12);
  expect(a.precision).toBeCloseTo(1.48 * 0.025, 12); // median of [0, 0, 0.05, 0.2]
  expect(a.outlierFraction).toBe(0.25); // only 0.2 > 0.15
  const mean = 0.4;
  const total = z.reduce((s, v) => s + (v - mean) ** 2, 0);
  expect(a.r2).toBeCloseTo(1 - (0.06 ** 2 + 0.4 ** 2) / total, 12);
  expect(redshiftAccuracy([], [])).toBeNull();
});

test('a perfect prediction scores perfectly', () => {
  const z = Float32Array.from([0.05, 0.1, 0.7]);
  expect(redshiftAccuracy(z, z)).toEqual({ samples: 3, excluded: 0, mae: 0, mse: 0, bias: 0, precision: 0, r2: 1, outlierFraction: 0 });
});

test('predictions CSV: one row per object, float32 values that read back exactly', () => {
  const predicted = Float32Array.from([0.1, 1 / 3, -0.0001234]);
  const truth = Float32Array.from([0.12, 0.3, 0]);
  const lines = predictionsCsv('100MB/7.pt', redshift(predicted, truth), 3).trim().split('\n');
  expect(lines[0]).toBe('partition,row,redshift_pred,redshift_true');
  expect(lines).toHaveLength(4);
  lines.slice(1).forEach((line, i) => {
    const [partition, row, pred, true_] = line.split(',');
    expect([partition, Number(row)]).toEqual(['100MB/7.pt', i]);
    expect(Math.fround(Number(pred))).toBe(predicted[i]);
    expect(Math.fround(Number(true_))).toBe(truth[i]);
  });
  expect(predictionsCsv('a,b.pt', redshift(predicted), 3)).toMatch(/^partition,row,redshift_pred\n"a,b\.pt",0,0\.1\n/);
});

test('accuracy merged from partial statistics matches the exact one: sums exactly, the NMAD within its stated bound', () => {
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const truth = Float64Array.from({ length: 20_000 }, () => 0.02 + random() * 0.6);
  const predicted = truth.map((z) => z + (random() - 0.5) * 0.08 + (random() < 0.02 ? 0.4 : 0));
  const exact = redshiftAccuracy(predicted, truth)!;
  // Eleven uneven "ranks", merged in order.
  let merged: AccuracySums | null = null;
  for (let start = 0; start < truth.length; start += 1900) {
    merged = mergeAccuracySums(merged, accuracySums(predicted.subarray(start, start + 1900), truth.subarray(start, start + 1900)));
  }
  const fromSums = accuracyFromSums(merged)!;
  for (const key of ['samples', 'mae', 'mse', 'bias', 'outlierFraction'] as const) expect(fromSums[key]).toBeCloseTo(exact[key], 12);
  expect(fromSums.r2!).toBeCloseTo(exact.r2!, 9);
  expect(Math.abs(fromSums.precision / exact.precision - 1)).toBeLessThanOrEqual(SKETCH_RELATIVE_ERROR + 1e-4);
  // What a rank result carries stays bounded: each sign's buckets at most SKETCH_MAX_BUCKETS.
  for (const store of [merged!.residuals.positive, merged!.residuals.negative])
    expect(store.counts.length).toBeLessThanOrEqual(SKETCH_MAX_BUCKETS);
  expect(accuracyFromSums(null)).toBeNull();
});

test('non-finite predictions and labels are left out of the accuracy and counted; R² of no spread is null, not NaN', () => {
  const z = [0.1, 0.2, NaN, 1.0, 0.5];
  const zHat = [0.1, 0.26, 0.3, 1.4, Infinity];
  const a = redshiftAccuracy(zHat, z)!;
  expect(a).toEqual({ ...redshiftAccuracy([0.1, 0.26, 1.4], [0.1, 0.2, 1.0])!, excluded: 2 });
  expect(a.samples).toBe(3);
  const fromSums = accuracyFromSums(
    mergeAccuracySums(accuracySums(zHat.slice(0, 2), z.slice(0, 2)), accuracySums(zHat.slice(2), z.slice(2))),
  )!;
  expect([fromSums.samples, fromSums.excluded]).toEqual([3, 2]);
  expect(fromSums.mae).toBeCloseTo(a.mae, 12);
  // Nothing finite: no accuracy, from either path; a single object: R² undefined, stored as null.
  expect(redshiftAccuracy([NaN, 1], [0.1, NaN])).toBeNull();
  expect(accuracyFromSums(accuracySums([NaN], [0.1]))).toBeNull();
  expect(redshiftAccuracy([0.3], [0.1])!.r2).toBeNull();
  expect(accuracyFromSums(accuracySums([0.3], [0.1]))!.r2).toBeNull();
  expect(redshiftAccuracy([0.3, 0.2], [0.1, 0.1])!.r2).toBeNull();
});

test('a NaN prediction is written as NaN in the CSV', () => {
  expect(predictionsCsv('p.pt', redshift(Float32Array.from([NaN, 0.5]), Float32Array.from([0.1, 0.2])), 2)).toBe(
    'partition,row,redshift_pred,redshift_true\np.pt,0,NaN,0.1\np.pt,1,0.5,0.2\n',
  );
});
