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
    // Scores above the histogram's range are counted there, not lost.
    expect(stats.histogram.above).toBe(19);
    expect(stats.histogram.counts.reduce((a, b) => a + b) + stats.histogram.above + stats.histogram.below).toBe(500);
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
