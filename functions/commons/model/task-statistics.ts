import { accuracyFromSums, accuracySums, mergeAccuracySums, type Accuracy, type AccuracySums } from './accuracy';
import type { CardOutput } from './card';
import { mergeRedshiftHistograms, redshiftHistograms, type RedshiftHistograms } from './histograms';
import { mergeSketches, sketchOf, sketchQuantiles, type Quantiles, type Sketch } from './sketch';

/**
 * What each output's predictions add up to, per task, in partial statistics a rank writes and the
 * summarizer merges in O(ranks): sums, sketches and bins, never every prediction. Regression keeps
 * the accuracy sums (with the residuals' sketch) and the predictions' sketch and ẑ-vs-z cells;
 * classification keeps a confusion matrix, class counts, a log-loss sum and confidence bins (for a
 * reliability plot); a score keeps the scores' sketch (sketch.ts: any range, quantiles within
 * 0.5 %) and the K highest-scoring objects, by partition and row.
 */
export type OutputStatistics = RegressionStatistics | ClassificationStatistics | ScoreStatistics;

export interface RegressionStatistics {
  task: 'regression';
  sums: AccuracySums | null;
  histograms: RedshiftHistograms | null;
}

/** Confidence (the top class's probability) over [0, 1] in this many bins. */
export const CONFIDENCE_BINS = 10;

export interface ClassificationStatistics {
  task: 'classification';
  classes: string[];
  /** Objects predicted as each class. */
  predicted: number[];
  /** [true class][predicted class], over labelled objects; null when none is labelled. */
  confusion: number[][] | null;
  /** −Σ log p(true class), over labelled objects. */
  logLossSum: number;
  labelled: number;
  /** Labels that are no class index (out of range, not an integer): left out. */
  badLabels: number;
  /** Per confidence bin: objects, those predicted right (labelled only), the summed confidence. */
  confidence: { count: number[]; correct: number[]; sum: number[] };
  nonFinite: number;
}

/** The K highest-scoring objects kept per rank and per run. */
export const TOP_K = 50;

export interface ScoredObject {
  partition: string;
  row: number;
  score: number;
  /** The object's label, when the card names one (1: it is unusual). */
  label?: number;
}

export interface ScoreStatistics {
  task: 'score';
  /** The finite scores. */
  sketch: Sketch;
  /** The highest scores first. */
  top: ScoredObject[];
  /** Labelled objects, and those labelled unusual (label ≥ 0.5). */
  labelled: number;
  positives: number;
  nonFinite: number;
}

/** Probabilities of one object's scores: a softmax of logits, or the probabilities as given. */
function probabilities(scores: Float32Array, kind: 'logits' | 'probabilities'): Float64Array {
  const p = Float64Array.from(scores);
  if (kind === 'probabilities') return p;
  let max = -Infinity;
  for (const v of p) max = Math.max(max, v);
  let sum = 0;
  for (let i = 0; i < p.length; i++) sum += p[i] = Math.exp(p[i] - max);
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

function classificationStatistics(
  output: Extract<CardOutput, { task: 'classification' }>,
  values: Float32Array,
  labels?: Float32Array,
): ClassificationStatistics {
  const k = output.classes.length;
  const stats: ClassificationStatistics = {
    task: 'classification',
    classes: output.classes,
    predicted: new Array<number>(k).fill(0),
    confusion: labels ? Array.from({ length: k }, () => new Array<number>(k).fill(0)) : null,
    logLossSum: 0,
    labelled: 0,
    badLabels: 0,
    confidence: {
      count: new Array(CONFIDENCE_BINS).fill(0),
      correct: new Array(CONFIDENCE_BINS).fill(0),
      sum: new Array(CONFIDENCE_BINS).fill(0),
    },
    nonFinite: 0,
  };
  const objects = values.length / k;
  for (let i = 0; i < objects; i++) {
    const scores = values.subarray(i * k, (i + 1) * k);
    if (!scores.every(Number.isFinite)) {
      stats.nonFinite++;
      continue;
    }
    const p = probabilities(scores, output.scores);
    let best = 0;
    for (let c = 1; c < k; c++) if (p[c] > p[best]) best = c;
    stats.predicted[best]++;
    const bin = Math.min(CONFIDENCE_BINS - 1, Math.max(0, Math.floor(p[best] * CONFIDENCE_BINS)));
    stats.confidence.count[bin]++;
    stats.confidence.sum[bin] += p[best];
    if (!labels) continue;
    const label = labels[i];
    if (!Number.isInteger(label) || label < 0 || label >= k) {
      stats.badLabels++;
      continue;
    }
    stats.labelled++;
    stats.confusion![label][best]++;
    if (label === best) stats.confidence.correct[bin]++;
    stats.logLossSum -= Math.log(Math.max(p[label], 1e-15));
  }
  return stats;
}

function scoreStatistics(values: Float32Array, partition: string, labels?: Float32Array): ScoreStatistics {
  const candidates: ScoredObject[] = [];
  let labelled = 0;
  let positives = 0;
  let nonFinite = 0;
  for (let row = 0; row < values.length; row++) {
    const score = values[row];
    if (!Number.isFinite(score)) {
      nonFinite++;
      continue;
    }
    const label = labels?.[row];
    if (label !== undefined && Number.isFinite(label)) {
      labelled++;
      if (label >= 0.5) positives++;
    }
    candidates.push({ partition, row, score, ...(label !== undefined && Number.isFinite(label) ? { label } : {}) });
  }
  const top = candidates.sort((a, b) => b.score - a.score).slice(0, TOP_K);
  return { task: 'score', sketch: sketchOf(values), top, labelled, positives, nonFinite };
}

/** One output's statistics over one partition's predictions (`width` values per object). */
export function outputStatistics(output: CardOutput, values: Float32Array, partition: string, labels?: Float32Array): OutputStatistics {
  if (output.task === 'classification') return classificationStatistics(output, values, labels);
  if (output.task === 'score') return scoreStatistics(values, partition, labels);
  return { task: 'regression', sums: labels ? accuracySums(values, labels) : null, histograms: redshiftHistograms(values, labels) };
}

const addArrays = (a: number[], b: number[]) => a.map((v, i) => v + b[i]);

/** Two partial statistics of one output as one; `a` may be updated in place (the summarizer holds one of each). */
export function mergeOutputStatistics(a: OutputStatistics | null, b: OutputStatistics | null): OutputStatistics | null {
  if (!a || !b) return a ?? b;
  if (a.task !== b.task) throw new Error(`cannot merge ${a.task} statistics with ${b.task}`);
  if (a.task === 'regression' && b.task === 'regression') {
    return {
      task: 'regression',
      sums: mergeAccuracySums(a.sums, b.sums, { inPlace: true }),
      histograms: mergeRedshiftHistograms(a.histograms, b.histograms),
    };
  }
  if (a.task === 'classification' && b.task === 'classification') {
    return {
      ...a,
      predicted: addArrays(a.predicted, b.predicted),
      confusion: a.confusion && b.confusion ? a.confusion.map((row, i) => addArrays(row, b.confusion![i])) : (a.confusion ?? b.confusion),
      logLossSum: a.logLossSum + b.logLossSum,
      labelled: a.labelled + b.labelled,
      badLabels: a.badLabels + b.badLabels,
      confidence: {
        count: addArrays(a.confidence.count, b.confidence.count),
        correct: addArrays(a.confidence.correct, b.confidence.correct),
        sum: addArrays(a.confidence.sum, b.confidence.sum),
      },
      nonFinite: a.nonFinite + b.nonFinite,
    };
  }
  const [x, y] = [a as ScoreStatistics, b as ScoreStatistics];
  return {
    task: 'score',
    sketch: mergeSketches(x.sketch, y.sketch)!,
    top: [...x.top, ...y.top].sort((p, q) => q.score - p.score).slice(0, TOP_K),
    labelled: x.labelled + y.labelled,
    positives: x.positives + y.positives,
    nonFinite: x.nonFinite + y.nonFinite,
  };
}

export interface ClassMetrics {
  class: string;
  precision: number | null;
  recall: number | null;
  f1: number | null;
  support: number;
}

/**
 * What a run reports of each output: accuracy and the predictions' quantiles for regression,
 * per-class metrics for classification, the scores' quantiles and the top objects for a score.
 * Quantiles come from the sketch (within SKETCH_RELATIVE_ERROR); null when no value was finite.
 */
export type OutputMetrics =
  | { task: 'regression'; accuracy: Accuracy | null; quantiles: Quantiles | null }
  | {
      task: 'classification';
      labelled: number;
      accuracy: number | null;
      logLoss: number | null;
      perClass: ClassMetrics[];
      predicted: Record<string, number>;
    }
  | {
      task: 'score';
      quantiles: Quantiles | null;
      topK: number;
      labelled: number;
      positives: number;
      recallAtK: number | null;
      top: ScoredObject[];
    };

const ratio = (n: number, d: number) => (d > 0 ? n / d : null);

export function outputMetrics(stats: OutputStatistics): OutputMetrics {
  if (stats.task === 'regression') {
    return { task: 'regression', accuracy: accuracyFromSums(stats.sums), quantiles: sketchQuantiles(stats.histograms?.predicted ?? null) };
  }
  if (stats.task === 'classification') {
    const m = stats.confusion;
    const perClass = stats.classes.map((name, c) => {
      const tp = m ? m[c][c] : 0;
      const support = m ? m[c].reduce((s, v) => s + v, 0) : 0;
      const predictedAs = m ? m.reduce((s, row) => s + row[c], 0) : 0;
      const precision = m ? ratio(tp, predictedAs) : null;
      const recall = m ? ratio(tp, support) : null;
      const f1 =
        precision !== null && recall !== null && precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : m ? 0 : null;
      return { class: name, precision, recall, f1, support };
    });
    const correct = m ? m.reduce((s, row, c) => s + row[c], 0) : 0;
    return {
      task: 'classification',
      labelled: stats.labelled,
      accuracy: m ? ratio(correct, stats.labelled) : null,
      logLoss: ratio(stats.logLossSum, stats.labelled),
      perClass,
      predicted: Object.fromEntries(stats.classes.map((name, c) => [name, stats.predicted[c]])),
    };
  }
  // Recall at K: of the objects labelled unusual, the share among the K highest scores, K being their number (at most TOP_K).
  const k = Math.min(stats.positives, stats.top.length);
  const found = stats.top.slice(0, k).filter((o) => (o.label ?? 0) >= 0.5).length;
  return {
    task: 'score',
    quantiles: sketchQuantiles(stats.sketch),
    topK: stats.top.length,
    labelled: stats.labelled,
    positives: stats.positives,
    recallAtK: stats.positives > 0 && stats.positives <= TOP_K ? ratio(found, stats.positives) : null,
    top: stats.top,
  };
}
