import type { CardOutput } from '../../functions/commons/model/card';
import {
  mergeOutputStatistics,
  outputStatistics,
  type ClassificationStatistics,
  type OutputStatistics,
  type ScoreStatistics,
} from '../../functions/commons/model/task-statistics';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { buildReport } from '../../cli/report/html';
import { classRows, confusionCells, reliabilityPoints, type ClassRow } from '../../cli/report/report-data';

/**
 * The report per task, from statistics computed by the ranks' own outputStatistics on known
 * arrays: the per-class table (with a negative control), the matrix and reliability data, and the
 * page's sections for classification, score and several regression outputs.
 */

const CLASSES = ['a', 'b', 'c'];
const classification: Extract<CardOutput, { task: 'classification' }> = {
  task: 'classification',
  classes: CLASSES,
  scores: 'probabilities',
  label: 2,
};

/** Objects as (true class, predicted class): 0.8 on the predicted class, 0.1 on each other. */
const PAIRS: [number, number][] = [
  [0, 0],
  [0, 0],
  [0, 0],
  [0, 1],
  [1, 1],
  [1, 1],
  [1, 0],
  [2, 2],
  [2, 1],
];

function classified(pairs: [number, number][], labelled = true): ClassificationStatistics {
  const scores = Float32Array.from(pairs.flatMap(([, p]) => CLASSES.map((_, c) => (c === p ? 0.8 : 0.1))));
  const labels = labelled ? Float32Array.from(pairs.map(([t]) => t)) : undefined;
  return outputStatistics(classification, scores, 'p.pt', labels) as ClassificationStatistics;
}

/** Worked by hand from PAIRS: rows of the confusion matrix a [3 1 0], b [1 2 0], c [0 1 1]. */
const EXPECTED: ClassRow[] = [
  { class: 'a', precision: 3 / 4, recall: 3 / 4, f1: 3 / 4, support: 4, predicted: 4 },
  { class: 'b', precision: 2 / 4, recall: 2 / 3, f1: (2 * (1 / 2) * (2 / 3)) / (1 / 2 + 2 / 3), support: 3, predicted: 4 },
  { class: 'c', precision: 1, recall: 1 / 2, f1: 2 / 3, support: 2, predicted: 1 },
];

/** The table's rows match the expected ones to 12 digits. */
const sameTable = (rows: ClassRow[], expected: ClassRow[]) =>
  rows.length === expected.length &&
  rows.every((r, i) =>
    (['precision', 'recall', 'f1', 'support', 'predicted'] as const).every(
      (k) => r.class === expected[i].class && Math.abs((r[k] ?? NaN) - (expected[i][k] ?? NaN)) < 1e-12,
    ),
  );

describe('the per-class table', () => {
  test('precision, recall, F1 and support from the confusion matrix, predicted counts from all objects', () => {
    const stats = classified(PAIRS);
    expect(stats.confusion).toEqual([
      [3, 1, 0],
      [1, 2, 0],
      [0, 1, 1],
    ]);
    expect(sameTable(classRows(stats), EXPECTED)).toBe(true);
  });

  test('negative control: truth and prediction swapped (precision and recall trade places) fails the check', () => {
    const swapped = classified(PAIRS.map(([t, p]) => [p, t]));
    expect(sameTable(classRows(swapped), EXPECTED)).toBe(false);
    // Only b and c change: a's row and column hold the same counts.
    expect(classRows(swapped)[0]).toEqual(EXPECTED[0]);
  });

  test('the same whether the ranks each saw part of the objects', () => {
    const merged = mergeOutputStatistics(classified(PAIRS.slice(0, 4)), classified(PAIRS.slice(4))) as ClassificationStatistics;
    expect(sameTable(classRows(merged), EXPECTED)).toBe(true);
  });

  test('a class never predicted has no precision, never labelled no recall; its F1 is 0 then (as scikit-learn counts it)', () => {
    const rows = classRows(
      classified([
        [0, 0],
        [0, 1],
      ]),
    );
    expect(rows[1]).toEqual({ class: 'b', precision: 0, recall: null, f1: 0, support: 0, predicted: 1 });
    expect(rows[2]).toEqual({ class: 'c', precision: null, recall: null, f1: 0, support: 0, predicted: 0 });
  });
});

describe('plot data', () => {
  test('confusion cells are coloured by their share of the true class', () => {
    const cells = confusionCells(CLASSES, classified(PAIRS).confusion!);
    expect(cells).toHaveLength(9);
    expect(cells.find((c) => c.truth === 'b' && c.predicted === 'a')).toEqual({ truth: 'b', predicted: 'a', count: 1, share: 1 / 3 });
    expect(
      confusionCells(
        ['x', 'y'],
        [
          [0, 0],
          [0, 5],
        ],
      )[0].share,
    ).toBe(0);
  });

  test('reliability: mean confidence and share right per filled bin', () => {
    // Every object has confidence 0.8 (bin 8 of 10), 6 of 9 right.
    const points = reliabilityPoints(classified(PAIRS).confidence);
    expect(points).toHaveLength(1);
    expect(points[0].lo).toBeCloseTo(0.8, 12);
    expect(points[0].hi).toBeCloseTo(0.9, 12);
    expect(points[0].confidence).toBeCloseTo(0.8, 6);
    expect(points[0].accuracy).toBeCloseTo(6 / 9, 12);
    expect(points[0].count).toBe(9);
  });
});

const run = (fields: Partial<RunRecord> = {}): RunRecord => ({
  runId: 'r-2',
  recordType: 'run',
  status: 'SUCCEEDED',
  startedAt: '2026-01-01T00:00:00.000Z',
  finishedAt: '2026-01-01T00:01:00.000Z',
  payloadUri: 's3://c/p.json',
  payload: { data_bucket: 'd' },
  dataset: 'd/p/',
  warnings: [],
  ...fields,
});

function scored(partition: string, values: number[], labels?: number[]): ScoreStatistics {
  return outputStatistics(
    { task: 'score', label: 3 },
    Float32Array.from(values),
    partition,
    labels && Float32Array.from(labels),
  ) as ScoreStatistics;
}

describe('buildReport per task', () => {
  const score = mergeOutputStatistics(scored('x.pt', [0.5, 3, -12, 11], [1, 0, 0, 1]), scored('y.pt', [2, 1.5], [0, 0])) as ScoreStatistics;
  const statistics: Record<string, OutputStatistics> = { kind: classified(PAIRS), 'odd ness': score };
  const PNG = 'data:image/png;base64,iVBORw0KGgo=';

  test('classification: its table, per-class metrics, confusion matrix and reliability plot', async () => {
    const html = await buildReport({ run: run(), histograms: null, ranks: [], statistics });
    expect(html).toMatch(/<section id="classification-kind" class="output"><h2>kind: classification into 3 classes<\/h2>/);
    expect(html).toContain('<th>accuracy</th><td>0.6667</td>');
    const logLoss = (6 * -Math.log(0.8) + 3 * -Math.log(0.1)) / 9;
    expect(html).toContain(`<th>log-loss (mean −ln p(true class))</th><td>${logLoss.toFixed(4)}</td>`);
    expect(html).toContain('<tr><td>b</td><td>0.5000</td><td>0.6667</td><td>0.5714</td><td>3</td><td>4</td></tr>');
    for (const id of ['plot-confusion-kind', 'plot-reliability-kind'])
      expect(html).toMatch(new RegExp(`<figure class="plot" id="${id}"><svg`));
    // Run records from before cards: no statistics, no such section.
    expect(await buildReport({ run: run(), histograms: null, ranks: [] })).not.toMatch(/classification-|score-/);
  });

  test('an unlabelled classification shows what was predicted, and says why nothing else', async () => {
    const html = await buildReport({ run: run(), histograms: null, ranks: [], statistics: { kind: classified(PAIRS, false) } });
    expect(html).toContain('No labelled objects');
    expect(html).toMatch(/<table class="grid" id="classes-kind"><thead><tr><th>class<\/th><th>predicted<\/th><\/tr>/);
    expect(html).not.toContain('plot-confusion');
  });

  test('score: its quantiles, the histogram of every score, the top objects with their images, or a line why not', async () => {
    const html = await buildReport({
      run: run(),
      histograms: null,
      ranks: [],
      statistics,
      objectImages: { images: new Map([['x.pt#3', PNG]]), unread: [{ partition: 'y.pt', error: 'no such object: s3://d/y.pt' }] },
    });
    // The name's space is no id's: odd_ness.
    expect(html).toMatch(/<section id="score-odd_ness" class="output"><h2>odd ness: score \(high: unusual\)<\/h2>/);
    expect(html).toMatch(/<figure class="plot" id="plot-score-odd_ness"><svg/);
    // −12 and 11, beyond the fixed bins of before (−10 to 10), are drawn and quantiles: min and max within 0.5 %.
    const [min, max] = html
      .match(/<th>quantiles \(each within 0\.5 %\)<\/th><td>min (\S+) · p5 .* · max (\S+)<\/td>/)!
      .slice(1)
      .map(Number);
    expect(Math.abs(min / -12 - 1)).toBeLessThanOrEqual(0.005);
    expect(Math.abs(max / 11 - 1)).toBeLessThanOrEqual(0.005);
    expect(html).toMatch(
      /<p>Every value drawn: 6 bars, log-spaced, each [\d.]+ % wide \(\d+ of the sketch&#39;s 1 % buckets\); negative values left of 0\.<\/p>/,
    );
    expect(
      html.match(/<figure class="plot" id="plot-score-odd_ness">.*?<\/figure>/s)![0].match(/aria-roledescription="rect mark"/g),
    ).toHaveLength(6);
    expect(html).toContain('<th>recall at K</th><td>0.5000 (K = 2, the objects labelled unusual)</td>');
    const rows = html.match(/<table class="grid" id="top-odd_ness">.*?<\/table>/s)![0].match(/<tr><td>/g);
    expect(rows).toHaveLength(6);
    expect(html).toContain(
      `<tr><td>1</td><td><img class="thumb" src="${PNG}" width="64" height="64" alt="x.pt row 3"></td><td>x.pt</td><td>3</td><td>11.0000</td><td>1</td></tr>`,
    );
    expect(html).toContain('<tr><td>3</td><td>–</td><td>y.pt</td><td>0</td><td>2.0000</td><td>0</td></tr>');
    expect(html).toContain('<p>No images for the objects of 1 of 2 partitions, which could not be read (no such object: s3://d/y.pt).</p>');
    // Self-contained: the only sources are the images' data.
    expect(html.match(/(?:src|href)="[^"]*"/g)).toEqual([`src="${PNG}"`]);
    expect(html).not.toMatch(/<script/);
  });

  test('without images read, the top list says so', async () => {
    const html = await buildReport({ run: run(), histograms: null, ranks: [], statistics: { s: score } });
    expect(html).toContain('<p>No images: the report was made without reading the partitions.</p>');
    expect(html).not.toContain('<img');
  });

  test('regression outputs: the first under the sections it always had, the others by name', async () => {
    const regression: CardOutput = { task: 'regression', label: 2 };
    const z = outputStatistics(regression, Float32Array.from([0.1, 0.2, 0.3]), 'p.pt', Float32Array.from([0.1, 0.25, 0.3]));
    const mass = outputStatistics(regression, Float32Array.from([0.5, 0.6]), 'p.pt');
    const html = await buildReport({ run: run(), histograms: null, ranks: [], statistics: { redshift: z, 'mass/2': mass } });
    for (const id of ['accuracy', 'predicted', 'predicted-mass_2']) expect(html).toContain(`<section id="${id}">`);
    for (const id of ['plot-joint', 'plot-residual', 'plot-predicted', 'plot-predicted-mass_2']) expect(html).toContain(`id="${id}"><svg`);
    expect(html).toContain('<h2>Accuracy of redshift (3 labelled objects)</h2>');
    expect(html).not.toContain('accuracy-mass_2');
  });

  test('statistics from before sketches (fixed bins) are reported without their plots, the accuracy from the record', async () => {
    const fixedBins = { lo: -10, hi: 10, counts: [0, 2, 1], below: 0, above: 3 };
    const accuracy = { samples: 3, excluded: 0, mae: 0.05, mse: 0.004, bias: -0.01, precision: 0.02, r2: 0.5, outlierFraction: 0 };
    const old = {
      z: {
        task: 'regression',
        sums: { n: 3, absSum: 0.15, sqSum: 0.012, biasSum: -0.03, zSum: 0.6, zSqSum: 0.14, outliers: 0, zeros: 0, buckets: { '-300': 3 } },
        histograms: {
          predicted: fixedBins,
          nonFinite: 0,
          residual: fixedBins,
          joint: { lo: 0, hi: 0.6, bins: 60, cells: { '1,1': 3 }, outside: 0 },
        },
      },
      s: { task: 'score', histogram: fixedBins, top: [], labelled: 0, positives: 0, nonFinite: 0 },
    } as unknown as Record<string, OutputStatistics>;
    const html = await buildReport({
      run: run({ metrics: { z: { task: 'regression', accuracy, quantiles: null } } }),
      histograms: null,
      ranks: [],
      statistics: old,
    });
    expect(html).toContain('<th>MAE</th><td>0.0500</td>');
    expect(html.match(/a run from before CAI kept sketches\): no plot\./g)).toHaveLength(3);
    expect(html).not.toMatch(/plot-predicted|plot-residual|plot-score/);
  });

  test("the run's model: its own (name, version, URI, ETag), or the deployed one as the ranks named it", async () => {
    const own = await buildReport({
      run: run({ model: { uri: 's3://m/k.onnx', etag: '"abc"', name: 'galaxy-kinds', version: '3' } }),
      histograms: null,
      ranks: [],
    });
    expect(own).toContain(
      '<tr><th>model</th><td>galaxy-kinds version 3</td></tr><tr><th>model file</th><td>s3://m/k.onnx (ETag abc)</td></tr>',
    );
    const rank = {
      rank: 0,
      samples: 1,
      init_s: 0,
      cold_start: false,
      wall_s: { total: 1, download: 0, open: 0, inference: 1, read_wait: 0, upload: 0 },
    };
    const deployed = await buildReport({
      run: run(),
      histograms: null,
      ranks: [{ ...rank, model: { id: 'deployed', name: 'astromae-redshift', version: '1' } }],
    });
    expect(deployed).toContain('<tr><th>model</th><td>the deployed one (astromae-redshift version 1)</td></tr>');
    expect(await buildReport({ run: run(), histograms: null, ranks: [rank] })).toContain('<td>the deployed one</td>');
  });
});
