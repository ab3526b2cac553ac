import { OUTLIER_THRESHOLD, type Accuracy } from '../../functions/commons/model/accuracy';
import type { RedshiftHistograms } from '../../functions/commons/model/histograms';
import { outputMetrics, type ClassificationStatistics, type ScoreStatistics } from '../../functions/commons/model/task-statistics';
import { confusionSpec, histogramSpec, jointSpec, reliabilitySpec, renderSvg } from './charts';
import { count, escape, figure, grid, note, num, table, type Cell } from './html-parts';
import { objectKey, type ObjectImages } from './object-images';
import { classRows, filledRange, reliabilityPoints } from './report-data';

/**
 * One output's part of the report, by its task. A regression output keeps the sections CAI's
 * redshift model has always had (the first one under their old ids: accuracy, predicted,
 * plot-joint, plot-residual, plot-predicted; others with `-<output>` appended).
 */

const plural = (n: number, one: string) => `${count(n)} ${one}${n === 1 ? '' : 's'}`;

export async function regressionSections(options: {
  /** The output's name; absent: a run from before model cards (headings as they were). */
  name?: string;
  /** Appended to every id: '' for the first regression output. */
  suffix: string;
  accuracy: Accuracy | null | undefined;
  histograms: RedshiftHistograms | null;
}): Promise<string[]> {
  const { name, suffix, accuracy, histograms } = options;
  const sections: string[] = [];
  if (accuracy) {
    const joint = histograms?.joint;
    const residual = histograms?.residual;
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
                histogramSpec(residual, 'Residuals Δz/(1+z), outlier bounds dashed', 'Δz/(1+z)', [-OUTLIER_THRESHOLD, OUTLIER_THRESHOLD]),
              ),
            )
          : "<p>This run's ranks wrote no histograms (a run from before CAI recorded them): no plots.</p>") +
        '</section>',
    );
  }
  sections.push(
    `<section id="predicted${suffix}"><h2>${name ? `Predicted ${escape(name)}` : 'Predicted redshifts'}</h2>${
      histograms
        ? figure(`plot-predicted${suffix}`, await renderSvg(histogramSpec(histograms.predicted, 'Predicted redshift ẑ', 'ẑ'))) +
          `<p>${count(histograms.predicted.above)} above ẑ = ${histograms.predicted.hi}, ${count(histograms.predicted.below)} below 0, ${count(histograms.nonFinite)} not finite.</p>`
        : "<p>This run's ranks wrote no histograms (a run from before CAI recorded them).</p>"
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

/** The score histogram over its fixed bins, and the top objects with their images. */
export async function scoreSection(name: string, id: string, stats: ScoreStatistics, images?: ObjectImages): Promise<string> {
  const metrics = outputMetrics(stats);
  if (metrics.task !== 'score') throw new Error(`${name}: score statistics without score metrics`);
  const h = stats.histogram;
  const scored = h.counts.reduce((s, v) => s + v, 0) + h.below + h.above;
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
      ['objects scored', count(scored)],
      ['labelled / labelled unusual', `${count(stats.labelled)} / ${count(stats.positives)}`],
      [
        'recall at K',
        metrics.recallAtK === null ? '–' : `${num(metrics.recallAtK)} (K = ${count(stats.positives)}, the objects labelled unusual)`,
      ],
      ...(stats.nonFinite ? ([['objects with a non-finite score, left out', count(stats.nonFinite)]] as [string, string][]) : []),
    ]) +
    figure(
      `plot-score-${id}`,
      await renderSvg(histogramSpec(h, `Scores of ${name}`, 'score', [], { logCounts: true, domain: filledRange(h) })),
    ) +
    note(
      `${h.counts.length} fixed bins over [${h.lo}, ${h.hi}], drawn where filled; outside them: ${count(h.below)} below ${h.lo}, ${count(h.above)} above ${h.hi}.`,
    ) +
    `<h3>The ${stats.top.length} highest scores</h3>` +
    (missing ? note(missing) : '') +
    grid(['rank', 'image', 'partition', 'row', 'score', ...(labelled ? ['label'] : [])], rows, `top-${id}`) +
    '</section>'
  );
}
