import { OUTLIER_THRESHOLD, type Accuracy } from '../../functions/commons/model/accuracy';
import type { RedshiftHistograms } from '../../functions/commons/model/histograms';
import { outputMetrics, type ClassificationStatistics, type ScoreStatistics } from '../../functions/commons/model/task-statistics';
import { SKETCH_RELATIVE_ERROR, sketchCount, sketchQuantiles, type Sketch } from '../../functions/commons/model/sketch';
import { confusionSpec, jointSpec, reliabilitySpec, renderSvg, sketchSpec } from './charts';
import { count, escape, figure, grid, note, num, table, type Cell } from './html-parts';
import { objectKey, type ObjectImages } from './object-images';
import { classRows, isSketch, reliabilityPoints, sketchBars } from './report-data';

/**
 * One output's part of the report, by its task. A regression output keeps the sections CAI's
 * redshift model has always had (the first one under their old ids: accuracy, predicted,
 * plot-joint, plot-residual, plot-predicted; others with `-<output>` appended).
 */

const plural = (n: number, one: string) => `${count(n)} ${one}${n === 1 ? '' : 's'}`;

/** A value as a table shows it: 4 significant digits, whatever its size. */
const sig = (v: number) =>
  v === 0 ? '0' : Math.abs(v) >= 1e-3 && Math.abs(v) < 1e5 ? String(Number(v.toPrecision(4))) : v.toExponential(3);

/** The sketch's quantiles as one table row. */
function quantilesRow(sketch: Sketch): [string, string] {
  const q = sketchQuantiles(sketch)!;
  return [
    `quantiles (each within ${100 * SKETCH_RELATIVE_ERROR} %)`,
    `min ${sig(q.min)} · p5 ${sig(q.p5)} · p25 ${sig(q.p25)} · median ${sig(q.median)} · p75 ${sig(q.p75)} · p95 ${sig(q.p95)} · max ${sig(q.max)}`,
  ];
}

/** What a sketch's plot is drawn from, in a line under it. */
function barsNote(sketch: Sketch): string {
  const { bars, group, nearZero } = sketchBars(sketch);
  const width = 100 * ((1 + SKETCH_RELATIVE_ERROR) / (1 - SKETCH_RELATIVE_ERROR)) ** group - 100;
  const zero = !nearZero
    ? ''
    : nearZero.count === nearZero.zeros
      ? `; the bar at 0 holds the ${plural(nearZero.zeros, 'zero')}`
      : `; the bar at 0 holds the ${plural(nearZero.count, 'value')} of magnitude under ${sig(nearZero.below)}${nearZero.zeros ? ` (${count(nearZero.zeros)} of them zeros)` : ''}`;
  return note(
    `Every value drawn: ${plural(bars.length, 'bar')}, log-spaced, each ${width.toPrecision(2)} % wide (${group} of the sketch's 1 % buckets)${zero}; negative values left of 0.`,
  );
}

const NO_SKETCH = "This run's ranks wrote fixed-bin histograms (a run from before CAI kept sketches): no plot.";

export async function regressionSections(options: {
  /** The output's name; absent: a run from before model cards (headings as they were). */
  name?: string;
  /** Appended to every id: '' for the first regression output. */
  suffix: string;
  accuracy: Accuracy | null | undefined;
  histograms: RedshiftHistograms | null;
  /** Δz/(1+z) of the labelled objects (the accuracy sums' sketch); absent: none, or a run from before it. */
  residuals?: Sketch | null;
}): Promise<string[]> {
  const { name, suffix, accuracy, histograms } = options;
  const sections: string[] = [];
  if (accuracy) {
    const joint = histograms?.joint;
    const residual = isSketch(options.residuals) && sketchCount(options.residuals) > 0 ? options.residuals : null;
    sections.push(
      `<section id="accuracy${suffix}"><h2>Accuracy${name ? ` of ${escape(name)}` : ''} (${count(accuracy.samples)} labelled objects` +
        `${accuracy.excluded ? `; ${count(accuracy.excluded)} with a non-finite value left out` : ''})</h2>` +
        table([
          ['MAE', num(accuracy.mae)],
          ['bias ⟨Δz/(1+z)⟩', num(accuracy.bias)],
          ['NMAD (1.48 · median |Δz|/(1+z))', num(accuracy.precision)],
          ['R²', accuracy.r2 === null ? 'undefined (the labels have no spread)' : num(accuracy.r2)],
          [`outlier fraction (|Δz|/(1+z) > ${OUTLIER_THRESHOLD})`, num(accuracy.outlierFraction)],
          ...(joint ? ([['outside the plotted range', `${count(joint.outside)} objects`]] as [string, string][]) : []),
        ]) +
        (joint && residual
          ? figure(`plot-joint${suffix}`, await renderSvg(jointSpec(joint))) +
            figure(
              `plot-residual${suffix}`,
              await renderSvg(
                sketchSpec(residual, 'Residuals Δz/(1+z), outlier bounds dashed', 'Δz/(1+z)', [-OUTLIER_THRESHOLD, OUTLIER_THRESHOLD]),
              ),
            ) +
            barsNote(residual)
          : histograms && !isSketch(histograms.predicted)
            ? note(NO_SKETCH)
            : "<p>This run's ranks wrote no histograms (a run from before CAI recorded them): no plots.</p>") +
        '</section>',
    );
  }
  const predicted = histograms?.predicted;
  sections.push(
    `<section id="predicted${suffix}"><h2>${name ? `Predicted ${escape(name)}` : 'Predicted redshifts'}</h2>${
      !histograms
        ? "<p>This run's ranks wrote no histograms (a run from before CAI recorded them).</p>"
        : !isSketch(predicted)
          ? note(NO_SKETCH)
          : (sketchCount(predicted) > 0
              ? table([quantilesRow(predicted)]) +
                figure(
                  `plot-predicted${suffix}`,
                  await renderSvg(sketchSpec(predicted, `Predicted ${name ?? 'redshift ẑ'}`, name ?? 'ẑ')),
                ) +
                barsNote(predicted)
              : '') + note(`${plural(histograms.nonFinite, 'prediction')} not finite, left out.`)
    }</section>`,
  );
  return sections;
}

/** Per-class precision, recall, F1 and support, overall accuracy and log-loss, the confusion matrix and a reliability plot. */
export async function classificationSection(name: string, id: string, stats: ClassificationStatistics): Promise<string> {
  const metrics = outputMetrics(stats);
  if (metrics.task !== 'classification') throw new Error(`${name}: classification statistics without classification metrics`);
  const classified = stats.predicted.reduce((s, v) => s + v, 0);
  const rows = classRows(stats);
  const parts = [
    `<h2>${escape(name)}: classification into ${stats.classes.length} classes</h2>`,
    table([
      ['objects classified', count(classified)],
      ['labelled objects', count(stats.labelled)],
      ['accuracy', num(metrics.accuracy)],
      ['log-loss (mean −ln p(true class))', num(metrics.logLoss)],
      ...(stats.badLabels ? ([['labels left out (no class index)', count(stats.badLabels)]] as [string, string][]) : []),
      ...(stats.nonFinite ? ([['objects with a non-finite score, left out', count(stats.nonFinite)]] as [string, string][]) : []),
    ]),
  ];
  if (stats.confusion && stats.labelled > 0) {
    parts.push(
      grid(
        ['class', 'precision', 'recall', 'F1', 'support (labelled)', 'predicted'],
        rows.map((r) => [r.class, num(r.precision), num(r.recall), num(r.f1), count(r.support), count(r.predicted)]),
        `classes-${id}`,
      ),
      figure(`plot-confusion-${id}`, await renderSvg(confusionSpec(stats.classes, stats.confusion))),
      figure(`plot-reliability-${id}`, await renderSvg(reliabilitySpec(reliabilityPoints(stats.confidence)))),
    );
    // The confidence bins count every classified object, their `correct` only labelled ones.
    if (stats.labelled < classified) {
      parts.push(
        note(
          `${plural(classified - stats.labelled, 'classified object')} had no usable label and count as wrong in the reliability plot: its accuracies are lower bounds.`,
        ),
      );
    }
  } else {
    parts.push(
      note('No labelled objects (the card names no label, or the partitions lack it): the predicted classes only.'),
      grid(
        ['class', 'predicted'],
        rows.map((r) => [r.class, count(r.predicted)]),
        `classes-${id}`,
      ),
    );
  }
  return `<section id="classification-${id}" class="output">${parts.join('')}</section>`;
}

/** Thumbnails are drawn at this size, whatever the cutout's: a few pixels each, scaled without smoothing. */
const THUMBNAIL_PX = 64;

function imagesNote(images: ObjectImages | undefined, partitions: number): string | undefined {
  if (partitions === 0) return undefined;
  if (!images) return 'No images: the report was made without reading the partitions.';
  if (!images.unread.length) return undefined;
  const [first] = images.unread;
  const more = images.unread.length > 1 ? `; and ${images.unread.length - 1} more` : '';
  return `No images for the objects of ${images.unread.length} of ${plural(partitions, 'partition')}, which could not be read (${first.error}${more}).`;
}

/** The scores' quantiles and histogram (from their sketch: every score drawn), and the top objects with their images. */
export async function scoreSection(name: string, id: string, stats: ScoreStatistics, images?: ObjectImages): Promise<string> {
  const metrics = outputMetrics(stats);
  if (metrics.task !== 'score') throw new Error(`${name}: score statistics without score metrics`);
  const sketch = isSketch(stats.sketch) ? stats.sketch : null;
  const scored = sketch ? sketchCount(sketch) : 0;
  const labelled = stats.top.some((o) => o.label !== undefined);
  const partitions = new Set(stats.top.map((o) => o.partition)).size;
  const missing = imagesNote(images, partitions);
  const rows: Cell[][] = stats.top.map((o, i) => {
    const uri = images?.images.get(objectKey(o));
    const image: Cell = uri
      ? {
          html: `<img class="thumb" src="${uri}" width="${THUMBNAIL_PX}" height="${THUMBNAIL_PX}" alt="${escape(`${o.partition} row ${o.row}`)}">`,
        }
      : '–';
    return [
      String(i + 1),
      image,
      o.partition,
      String(o.row),
      num(o.score),
      ...(labelled ? [o.label === undefined ? '–' : String(o.label)] : []),
    ];
  });
  return (
    `<section id="score-${id}" class="output"><h2>${escape(name)}: score (high: unusual)</h2>` +
    table([
      ['objects scored', sketch ? count(scored) : '–'],
      ...(scored > 0 ? [quantilesRow(sketch!)] : []),
      ['labelled / labelled unusual', `${count(stats.labelled)} / ${count(stats.positives)}`],
      [
        'recall at K',
        metrics.recallAtK === null ? '–' : `${num(metrics.recallAtK)} (K = ${count(stats.positives)}, the objects labelled unusual)`,
      ],
      ...(stats.nonFinite ? ([['objects with a non-finite score, left out', count(stats.nonFinite)]] as [string, string][]) : []),
    ]) +
    (!sketch
      ? note(NO_SKETCH)
      : scored > 0
        ? figure(`plot-score-${id}`, await renderSvg(sketchSpec(sketch, `Scores of ${name}`, 'score'))) + barsNote(sketch)
        : '') +
    `<h3>The ${stats.top.length} highest scores</h3>` +
    (missing ? note(missing) : '') +
    grid(['rank', 'image', 'partition', 'row', 'score', ...(labelled ? ['label'] : [])], rows, `top-${id}`) +
    '</section>'
  );
}
