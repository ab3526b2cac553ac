import type { FailedEvent } from '../toolkit/failed-events';
import type { RunRecord } from '../functions/commons/run/run-store';
import type { Accuracy } from '../functions/commons/model/accuracy';
import { SKETCH_RELATIVE_ERROR, type Quantiles } from '../functions/commons/model/sketch';
import type { OutputMetrics } from '../functions/commons/model/task-statistics';

/** Stored records hold null where JSON could not hold a number: never let one break the output. */
export const fixed = (value: number | null | undefined, digits: number) => (typeof value === 'number' ? value.toFixed(digits) : '-');

export function formatAccuracy(a: Accuracy): string {
  const excluded = a.excluded ? ` (${a.excluded} more left out: non-finite prediction or label)` : '';
  return [
    `accuracy over ${a.samples} labelled objects${excluded}:`,
    `  MAE ${fixed(a.mae, 4)}   MSE ${fixed(a.mse, 5)}   bias ${fixed(a.bias, 4)}   ` +
      `precision (NMAD) ${fixed(a.precision, 4)}   R² ${fixed(a.r2, 3)}   outliers ${fixed(100 * a.outlierFraction, 2)}%`,
  ].join('\n');
}

const percent = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(1)}%`);

/** An output's quantiles in one line (absent in records from before CAI kept them). */
function quantilesLine(name: string, q: Quantiles | null | undefined): string[] {
  if (!q) return [];
  const v = (x: number) => Number(x.toPrecision(4));
  return [
    `${name} quantiles (within ${100 * SKETCH_RELATIVE_ERROR}%): min ${v(q.min)}  p5 ${v(q.p5)}  median ${v(q.median)}  p95 ${v(q.p95)}  max ${v(q.max)}`,
  ];
}

/**
 * One output's metrics as lines: regression its accuracy (or why there is none), classification
 * accuracy, log-loss and per-class precision/recall/F1, a score its top objects and their recall.
 */
export function formatOutputMetrics(name: string, metrics: OutputMetrics, context: { samples: number; labelled: boolean }): string[] {
  if (metrics.task === 'regression') {
    const quantiles = quantilesLine(name, metrics.quantiles);
    if (metrics.accuracy) return [...formatAccuracy(metrics.accuracy).split('\n'), ...quantiles];
    if (context.samples === 0) return ['the partition holds no objects: no accuracy to report'];
    return [
      context.labelled
        ? 'no object has both a finite prediction and a finite label: no accuracy to report'
        : `the partition has no ${name} labels: no accuracy to report`,
      ...quantiles,
    ];
  }
  if (metrics.task === 'classification') {
    const counts = Object.entries(metrics.predicted)
      .map(([c, n]) => `${c} ${n}`)
      .join(', ');
    if (!metrics.labelled) return [`${name}: predicted ${counts}; no labels, no accuracy`];
    return [
      `${name}: accuracy ${percent(metrics.accuracy)} over ${metrics.labelled} labelled objects, log-loss ${fixed(metrics.logLoss, 4)}; predicted ${counts}`,
      ...metrics.perClass.map(
        (c) =>
          `  ${c.class.padEnd(14)} precision ${percent(c.precision)}  recall ${percent(c.recall)}  F1 ${fixed(c.f1, 3)}  (${c.support} labelled)`,
      ),
    ];
  }
  const recall =
    metrics.recallAtK === null
      ? ''
      : `; recall of the ${metrics.positives} labelled unusual objects in the top ${metrics.positives}: ${percent(metrics.recallAtK)}`;
  return [
    ...quantilesLine(name, metrics.quantiles),
    `${name}: the ${Math.min(5, metrics.top.length)} highest of ${metrics.topK} kept${recall}`,
    ...metrics.top
      .slice(0, 5)
      .map((o) => `  ${o.score.toFixed(3).padStart(9)}  ${o.partition} row ${o.row}${o.label === undefined ? '' : ` (label ${o.label})`}`),
  ];
}

const usd = (v: number | null | undefined) => (typeof v !== 'number' ? '-' : `$${v < 0.01 ? v.toExponential(2) : v.toFixed(4)}`);

/** One line per run, for `cai runs`. */
export function runLine(run: RunRecord): string {
  return [
    run.startedAt.replace('T', ' ').slice(0, 19),
    run.status.padEnd(9),
    run.runId.padEnd(28),
    `${run.samples ?? 0} objects`.padStart(14),
    `${run.partitions ?? 0} partitions`.padStart(15),
    usd(run.cost?.totalUsd).padStart(10),
    run.dataset,
  ].join('  ');
}

/** Everything a person wants to know about one run. */
export function runDetails(run: RunRecord): string {
  const lines = [
    `run ${run.runId}: ${run.status}`,
    `  payload     ${run.payloadUri}`,
    `  dataset     ${run.dataset}`,
    `  model       ${run.model ? `${run.model.uri} (${[run.model.name, run.model.version && `version ${run.model.version}`].filter(Boolean).join(', ') || 'no name'}; ETag ${run.model.etag.replace(/"/g, '')})` : 'the deployed one'}`,
    `  started     ${run.startedAt}${run.finishedAt ? `, finished ${run.finishedAt}` : ''}`,
  ];
  if (run.error) lines.push(`  error       ${run.error}`);
  for (const e of run.errors ?? []) lines.push(`    ${e.field}: ${e.message}`);
  for (const w of run.warnings ?? []) lines.push(`  warning     ${w}`);
  if (run.partitions !== undefined) {
    lines.push(
      `  partitions  ${run.partitions} in ${run.ranks} ranks; ${run.samples ?? 0} objects, ${run.predictions ?? 0} predictions` +
        `${run.nonFinitePredictions ? ` (${run.nonFinitePredictions} NaN)` : ''}, ${run.failedPartitions ?? 0} failed partitions`,
    );
  }
  if (run.timings) {
    const t = run.timings;
    lines.push(
      `  time        ${fixed(t.wall_s, 2)} s wall (run); slowest rank ${fixed(t.rank_wall_s_max, 2)} s; ` +
        `inference ${fixed(t.inference_s_sum, 2)} s, download ${fixed(t.download_s_sum, 2)} s, INIT ${fixed(t.init_s_sum, 2)} s summed over ranks; ` +
        `${t.cold_starts} cold starts; peak RSS ${fixed(t.peak_rss_mb_max, 0)} MB`,
    );
  }
  if (run.throughput) {
    lines.push(
      `  throughput  ${fixed(run.throughput.samples_per_s_wall, 0)} objects/s over the run, ` +
        `${fixed(run.throughput.samples_per_s_per_rank, 0)} objects/s per rank`,
    );
  }
  const regressionOnly = Object.values(run.metrics ?? {}).every((m) => m.task === 'regression');
  if (run.accuracy && regressionOnly) for (const line of formatAccuracy(run.accuracy).split('\n')) lines.push(`  ${line}`);
  if (regressionOnly) {
    for (const [name, metrics] of Object.entries(run.metrics ?? {})) {
      if (metrics.task === 'regression') for (const line of quantilesLine(name, metrics.quantiles)) lines.push(`  ${line}`);
    }
  }
  if (!regressionOnly) {
    for (const [name, metrics] of Object.entries(run.metrics ?? {})) {
      for (const line of formatOutputMetrics(name, metrics, { samples: run.samples ?? 0, labelled: true })) lines.push(`  ${line}`);
    }
  }
  if (run.cost) {
    const c = run.cost;
    lines.push(
      `  cost        ${usd(c.totalUsd)} (${c.region}, ${c.architecture}): Lambda ${usd(c.lambda.computeUsd + c.lambda.requestsUsd + (c.lambda.storageUsd || 0))} ` +
        `(${c.lambda.invocations} invocations, ${fixed(c.lambda.gbSeconds, 2)} GB-s), Step Functions ${usd(c.stepFunctions.usd)} ` +
        `(${c.stepFunctions.transitions} transitions), S3 ${usd(c.s3.usd)} (${c.s3.get} GET, ${c.s3.put} PUT, ${c.s3.list} LIST), ` +
        `DynamoDB ${usd(c.dynamodb.usd)}`,
      `              the prototype's formula (requests × duration × memory used × $0.00001667) would say ${usd(run.prototypeFormulaUsd)}`,
    );
  }
  const { failed = 0, crashed = 0, historiesNotRead = 0, notBilled = 0 } = run.attempts ?? {};
  if (failed + crashed + historiesNotRead)
    lines.push(
      `  attempts    ${failed} failed, ${crashed} whose runtime died (out of memory, killed, timed out): retried, billed; summary.json lists each`,
    );
  if (historiesNotRead)
    lines.push(
      `              ${historiesNotRead} ranks' execution histories not read: their crashes estimated, ${notBilled} attempts known only by number not billed`,
    );
  const failures = run.failures ?? [];
  if (failures.length) {
    lines.push(`  failures    ${run.failedPartitions} partitions:`);
    for (const f of failures.slice(0, 20)) lines.push(`    ${f.partition} (rank ${f.rank ?? '-'}): ${f.error}`);
    const more = (run.failedPartitions ?? failures.length) - Math.min(failures.length, 20);
    if (more > 0) lines.push(`    … ${more} more in summary.json`);
  }
  if (run.outputs) lines.push(`  outputs     ${run.outputs.prefix}`);
  return lines.join('\n');
}

/** Payloads never started and execution ends never recorded, each with its error. */
export function failedEventLines(failed: FailedEvent[]): string[] {
  if (failed.length === 0) return [];
  const payloads = failed.filter((f) => f.kind === 'payload').length;
  return [
    '',
    `payloads never started (${payloads}) and other events the stack gave up on (${failed.length - payloads}):`,
    ...failed.map((f) => `  ${f.at}  ${f.what}  ${f.error.split('\n')[0].slice(0, 300)}`),
  ];
}
