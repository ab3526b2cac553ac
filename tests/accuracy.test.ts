import { redshiftAccuracy } from '../functions/commons/model/accuracy';
import { predictionsCsv } from '../functions/commons/model/predictions';

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
  expect(redshiftAccuracy(z, z)).toEqual({ samples: 3, mae: 0, mse: 0, bias: 0, precision: 0, r2: 1, outlierFraction: 0 });
});

test('predictions CSV: one row per object, float32 values that read back exactly', () => {
  const predicted = Float32Array.from([0.1, 1 / 3, -0.0001234]);
  const truth = Float32Array.from([0.12, 0.3, 0]);
  const lines = predictionsCsv('100MB/7.pt', predicted, truth).trim().split('\n');
  expect(lines[0]).toBe('partition,row,redshift_pred,redshift_true');
  expect(lines).toHaveLength(4);
  lines.slice(1).forEach((line, i) => {
    const [partition, row, pred, true_] = line.split(',');
    expect([partition, Number(row)]).toEqual(['100MB/7.pt', i]);
    expect(Math.fround(Number(pred))).toBe(predicted[i]);
    expect(Math.fround(Number(true_))).toBe(truth[i]);
  });
  expect(predictionsCsv('a,b.pt', predicted)).toMatch(/^partition,row,redshift_pred\n"a,b\.pt",0,0\.1\n/);
});
