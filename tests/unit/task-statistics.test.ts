import type { CardOutput } from '../../functions/commons/model/card';
import { predictionsCsv } from '../../functions/commons/model/predictions';
import {
  mergeOutputStatistics,
  outputMetrics,
  outputStatistics,
  TOP_K,
  type ClassificationStatistics,
  type OutputStatistics,
  type ScoreStatistics,
} from '../../functions/commons/model/task-statistics';
import { SKETCH_RELATIVE_ERROR, sketchCount, sketchQuantile } from '../../functions/commons/model/sketch';

const CLASSES: CardOutput = { task: 'classification', classes: ['disk', 'lenticular', 'elliptical'], scores: 'probabilities' };
const SCORE: CardOutput = { task: 'score' };

/** Sums in another order differ in the last bits: numbers compared to 12 significant digits. */
const rounded = (value: unknown) =>
  JSON.parse(JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' ? Number(v.toPrecision(12)) : v)));

/** Probabilities for objects that are predicted as `predicted[i]` with confidence 0.8. */
const confident = (predicted: number[]) => Float32Array.from(predicted.flatMap((p) => [0, 1, 2].map((c) => (c === p ? 0.8 : 0.1))));

describe('classification', () => {
  // truth:     0 0 0 1 1 2 2 2
  // predicted: 0 0 1 1 2 2 2 0
  const truth = Float32Array.from([0, 0, 0, 1, 1, 2, 2, 2]);
  const predicted = [0, 0, 1, 1, 2, 2, 2, 0];

  test('confusion counts, per-class precision, recall and F1, accuracy and log-loss follow their definitions', () => {
    const stats = outputStatistics(CLASSES, confident(predicted), 'p.pt', truth) as ClassificationStatistics;
    expect(stats.confusion).toEqual([
      [2, 1, 0],
      [0, 1, 1],
      [1, 0, 2],
    ]);
    expect(stats.predicted).toEqual([3, 2, 3]);
    const m = outputMetrics(stats);
    if (m.task !== 'classification') throw new Error('not a classification');
    expect(m.accuracy).toBeCloseTo(5 / 8, 12);
    // Correct objects have p = 0.8 for their class, wrong ones 0.1.
    expect(m.logLoss).toBeCloseTo(-(5 * Math.log(0.8) + 3 * Math.log(0.1)) / 8, 6);
    expect(m.perClass.map((c) => [c.class, c.precision, c.recall, c.support])).toEqual([
      ['disk', 2 / 3, 2 / 3, 3],
      ['lenticular', 1 / 2, 1 / 2, 2],
      ['elliptical', 2 / 3, 2 / 3, 3],
    ]);
    expect(m.perClass[1].f1).toBeCloseTo(0.5, 12);
    // Every object is 0.8 confident: one reliability bin holds them all.
    expect(stats.confidence.count[8]).toBe(8);
    expect(stats.confidence.correct[8]).toBe(5);
  });

  test('logits are turned into probabilities: the same argmax, a softmax for the confidence', () => {
    const logits = Float32Array.from([2, 0, 0]);
    const stats = outputStatistics(
      { ...CLASSES, scores: 'logits' } as CardOutput,
      logits,
      'p.pt',
      Float32Array.from([0]),
    ) as ClassificationStatistics;
    const p = Math.exp(2) / (Math.exp(2) + 2);
    expect(stats.logLossSum).toBeCloseTo(-Math.log(p), 6);
    expect(stats.confidence.sum.reduce((a, b) => a + b)).toBeCloseTo(p, 6);
  });

  test('labels that are no class are counted and left out; NaN scores are counted as unmeasured', () => {
    const scores = confident([0, 1, 2]);
    scores[3] = NaN;
    const stats = outputStatistics(CLASSES, scores, 'p.pt', Float32Array.from([0, 0, 7])) as ClassificationStatistics;
    expect([stats.labelled, stats.badLabels, stats.nonFinite]).toEqual([1, 1, 1]);
  });

  test('merged over uneven ranks, the statistics equal those of the whole; the check fails on a dropped rank', () => {
    const whole = outputStatistics(CLASSES, confident(predicted), 'p.pt', truth);
    const parts = [
      [0, 3],
      [3, 4],
      [4, 8],
    ].map(([a, b]) => outputStatistics(CLASSES, confident(predicted.slice(a, b)), 'p.pt', truth.subarray(a, b)));
    const merged = parts.reduce<OutputStatistics | null>((acc, part) => mergeOutputStatistics(acc, part), null);
    expect(rounded(merged)).toEqual(rounded(whole));
    expect(rounded(parts.slice(1).reduce<OutputStatistics | null>((acc, part) => mergeOutputStatistics(acc, part), null))).not.toEqual(
      rounded(whole),
    );
  });
});

describe('score', () => {
  const scores = Float32Array.from({ length: 500 }, (_, i) => Math.sin(i * 12.9898) * 3);
  // The 20 objects labelled unusual get the highest scores but one.
  const unusual = Array.from({ length: 20 }, (_, k) => 7 + k * 23);
  for (const [k, row] of unusual.entries()) scores[row] = 20 + k;
  const labels = Float32Array.from({ length: 500 }, (_, i) => Number(unusual.includes(i)));
  scores[unusual[0]] = -5; // one unusual object the model misses

  test('the top K are the highest scores with their partition and row, and recall at K counts the labelled ones among them', () => {
    const stats = outputStatistics(SCORE, scores, 'survey/3.pt', labels) as ScoreStatistics;
    expect(stats.top).toHaveLength(TOP_K);
    expect(stats.top[0]).toEqual({ partition: 'survey/3.pt', row: unusual[19], score: 39, label: 1 });
    expect(stats.top.every((o, i) => i === 0 || stats.top[i - 1].score >= o.score)).toBe(true);
    const m = outputMetrics(stats);
    if (m.task !== 'score') throw new Error('not a score');
    expect([m.positives, m.recallAtK]).toEqual([20, 19 / 20]);
    // Every finite score is in the sketch, the highest (39) among them: within the bound at q = 1.
    expect(sketchCount(stats.sketch)).toBe(500);
    expect(Math.abs(sketchQuantile(stats.sketch, 1)! / 39 - 1)).toBeLessThanOrEqual(SKETCH_RELATIVE_ERROR);
  });

  test('merged over ranks, the run keeps its K highest, as over the whole', () => {
    const whole = outputStatistics(SCORE, scores, 'p.pt', labels) as ScoreStatistics;
    let merged: OutputStatistics | null = null;
    for (let start = 0; start < 500; start += 130) {
      const part = outputStatistics(
        SCORE,
        scores.subarray(start, start + 130),
        'p.pt',
        labels.subarray(start, start + 130),
      ) as ScoreStatistics;
      // Rows are the partition's: shift them as a partition starting at `start` would number them.
      part.top = part.top.map((o) => ({ ...o, row: o.row + start }));
      merged = mergeOutputStatistics(merged, part);
    }
    expect(merged).toEqual(whole);
  });
});

/** The value of rank ⌊q·(n − 1)⌋ of the values in order: a quantile, computed from the raw values. */
function exactQuantile(values: ArrayLike<number>, q: number): number {
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.floor(q * (sorted.length - 1))];
}

/** Split into uneven "ranks", each computing its statistics apart, as ranks do over their partitions. */
function rankStatistics(values: Float32Array, sizes: number[]): ScoreStatistics[] {
  const parts: ScoreStatistics[] = [];
  for (let start = 0, i = 0; start < values.length; start += sizes[i++ % sizes.length]) {
    parts.push(outputStatistics(SCORE, values.subarray(start, start + sizes[i % sizes.length]), `${i}.pt`) as ScoreStatistics);
  }
  return parts;
}

const mergeAll = (parts: ScoreStatistics[]) =>
  structuredClone(parts).reduce<OutputStatistics | null>((a, b) => mergeOutputStatistics(a, b), null) as ScoreStatistics;

describe('score quantiles from the merged sketch, whatever the range', () => {
  let seed = 3;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const n = 20_000;
  // A hold-out run's scores: most between 0.8 and 3, a tail of outliers up to 47.6 (no fixed range holds them).
  const holdOut = Float32Array.from({ length: n }, (_, i) =>
    i === 0 ? 0.8 : i === 1 ? 47.6 : i % 97 === 0 ? 3 + random() * 44.6 : 0.8 + random() ** 2 * 2.2,
  );
  // Logits: negative and positive, −30 to 25.
  const logits = Float32Array.from({ length: n }, () => (random() < 0.7 ? -30 * random() ** 3 : 25 * random()));
  // A ReLU's output: 40 % exact zeros, the rest of either sign.
  const relu = Float32Array.from({ length: n }, () => (random() < 0.4 ? 0 : (random() - 0.3) * 10 ** (4 * random() - 2)));
  const QUANTILES = Array.from({ length: 101 }, (_, i) => i / 100);

  test.each([
    ['0.8 to 47.6', holdOut],
    ['negative values', logits],
    ['zeros', relu],
  ])('%s: every quantile of the merged ranks is within the stated relative error of the exact one', (_name, values) => {
    const merged = mergeAll(rankStatistics(values, [1900, 3100, 700, 4000]));
    expect(sketchCount(merged.sketch)).toBe(n);
    for (const q of QUANTILES) {
      const exact = exactQuantile(values, q);
      const estimate = sketchQuantile(merged.sketch, q)!;
      // Zero exactly for a zero; else within α of the exact value (10⁻¹² for the float64 of γ^k).
      expect(Math.abs(estimate - exact)).toBeLessThanOrEqual(Math.abs(exact) * (SKETCH_RELATIVE_ERROR + 1e-12));
    }
    const m = outputMetrics(merged);
    if (m.task !== 'score') throw new Error('not a score');
    for (const [key, q] of [
      ['min', 0],
      ['p5', 0.05],
      ['p25', 0.25],
      ['median', 0.5],
      ['p75', 0.75],
      ['p95', 0.95],
      ['max', 1],
    ] as const) {
      expect(Math.abs(m.quantiles![key] - exactQuantile(values, q))).toBeLessThanOrEqual(
        Math.abs(exactQuantile(values, q)) * (SKETCH_RELATIVE_ERROR + 1e-12),
      );
    }
  });

  test('the merged sketch is the whole run’s, in any order of ranks', () => {
    for (const values of [holdOut, logits, relu]) {
      const parts = rankStatistics(values, [1900, 3100, 700, 4000]);
      const whole = (outputStatistics(SCORE, values, 'all.pt') as ScoreStatistics).sketch;
      const forward = mergeAll(parts).sketch;
      const shuffled = [...parts].sort(() => random() - 0.5);
      expect(forward).toEqual(whole);
      expect(mergeAll([...parts].reverse()).sketch).toEqual(whole);
      expect(mergeAll(shuffled).sketch).toEqual(whole);
    }
  });

  test('no finite score: no quantiles', () => {
    const m = outputMetrics(outputStatistics(SCORE, Float32Array.from([NaN, Infinity]), 'p.pt'));
    expect(m).toMatchObject({ task: 'score', quantiles: null });
  });
});

describe('predictions CSV columns follow the outputs', () => {
  test('classification: class and probability, and the true class; score: the score and its label', () => {
    const csv = predictionsCsv(
      'p.pt',
      [
        { name: 'morphology', output: CLASSES, values: confident([2, 0]), width: 3, labels: Float32Array.from([2, 1]) },
        { name: 'anomaly', output: SCORE, values: Float32Array.from([0.25, 3]), width: 1, labels: Float32Array.from([0, 1]) },
      ],
      2,
    );
    expect(csv).toBe(
      'partition,row,morphology_class,morphology_probability,morphology_true,anomaly_score,anomaly_label\n' +
        'p.pt,0,elliptical,0.8,elliptical,0.25,0\n' +
        'p.pt,1,disk,0.8,lenticular,3,1\n',
    );
  });

  test('an object whose scores are not finite has no class', () => {
    const values = confident([1]);
    values[0] = NaN;
    expect(predictionsCsv('p.pt', [{ name: 'c', output: CLASSES, values, width: 3 }], 1)).toBe(
      'partition,row,c_class,c_probability\np.pt,0,,NaN\n',
    );
  });
});
