import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { OUTLIER_THRESHOLD } from '../../functions/commons/model/accuracy';
import { PROTOTYPE_GB_SECOND } from '../../functions/commons/billing/cost';
import type { RedshiftHistograms } from '../../functions/commons/model/histograms';
import type { RankResult } from '../../functions/commons/run/contracts';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { costSpec, histogramSpec, jointSpec, renderSvg, timelineSpec } from './charts';
import { rankTiming, timelineSegments, type ReportInput } from './report-data';

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const num = (v: number | undefined, digits = 4) => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits));
const usd = (v: number | undefined) => (v === undefined ? '–' : `$${v < 0.01 ? v.toExponential(3) : v.toFixed(4)}`);

function table(rows: [string, string][]): string {
  return `<table>${rows.map(([k, v]) => `<tr><th>${escape(k)}</th><td>${escape(v)}</td></tr>`).join('')}</table>`;
}

const figure = (id: string, svg: string) => `<figure class="plot" id="${id}">${svg}</figure>`;

/**
 * One self-contained HTML file: every plot is inline SVG rendered here, no script, no stylesheet or
 * font from elsewhere, so it opens offline and the same everywhere.
 */
export async function buildReport({ run, histograms, ranks }: ReportInput): Promise<string> {
  const sections: string[] = [];
  const t = run.timings ?? {};
  sections.push(
    `<section id="run"><h2>Run</h2>${table([
      ['status', run.status],
      ['dataset', run.dataset],
      ['payload', run.payloadUri],
      ['started', run.startedAt],
      ['finished', run.finishedAt ?? '–'],
      ['partitions / ranks', `${run.partitions ?? 0} / ${run.ranks ?? 0}`],
      ['objects / predictions', `${(run.samples ?? 0).toLocaleString('en-US')} / ${(run.predictions ?? 0).toLocaleString('en-US')}`],
      ['failed partitions', String(run.failedPartitions ?? 0)],
      ...(run.error ? ([['error', run.error]] as [string, string][]) : []),
    ])}</section>`,
  );

  const accuracy = run.accuracy;
  if (accuracy) {
    const joint = histograms?.joint;
    const residual = histograms?.residual;
    sections.push(
      `<section id="accuracy"><h2>Accuracy (${accuracy.samples.toLocaleString('en-US')} labelled objects` +
        `${accuracy.excluded ? `; ${accuracy.excluded.toLocaleString('en-US')} with a non-finite value left out` : ''})</h2>` +
        table([
          ['MAE', num(accuracy.mae)],
          ['bias ⟨Δz/(1+z)⟩', num(accuracy.bias)],
          ['NMAD (1.48 · median |Δz|/(1+z))', num(accuracy.precision)],
          ['R²', accuracy.r2 === null ? 'undefined (the labels have no spread)' : num(accuracy.r2)],
          [`outlier fraction (|Δz|/(1+z) > ${OUTLIER_THRESHOLD})`, num(accuracy.outlierFraction)],
          ...(joint ? ([['outside the plotted range', `${joint.outside.toLocaleString('en-US')} objects`]] as [string, string][]) : []),
        ]) +
        (joint && residual
          ? figure('plot-joint', await renderSvg(jointSpec(joint))) +
            figure(
              'plot-residual',
              await renderSvg(
                histogramSpec(residual, 'Residuals Δz/(1+z), outlier bounds dashed', 'Δz/(1+z)', [-OUTLIER_THRESHOLD, OUTLIER_THRESHOLD]),
              ),
            )
          : "<p>This run's ranks wrote no histograms (a run from before CAI recorded them): no plots.</p>") +
        '</section>',
    );
  }

  sections.push(
    `<section id="predicted"><h2>Predicted redshifts</h2>${
      histograms
        ? figure('plot-predicted', await renderSvg(histogramSpec(histograms.predicted, 'Predicted redshift ẑ', 'ẑ'))) +
          `<p>${histograms.predicted.above.toLocaleString('en-US')} above ẑ = ${histograms.predicted.hi}, ${histograms.predicted.below.toLocaleString('en-US')} below 0, ${histograms.nonFinite.toLocaleString('en-US')} not finite.</p>`
        : "<p>This run's ranks wrote no histograms (a run from before CAI recorded them).</p>"
    }</section>`,
  );

  const segments = timelineSegments(run, ranks);
  sections.push(
    `<section id="timeline"><h2>Timeline</h2>${segments.length ? figure('plot-timeline', await renderSvg(timelineSpec(segments))) : '<p>No rank finished.</p>'}${table(
      [
        ['run wall time', `${num(t.wall_s, 2)} s`],
        ['slowest rank', `${num(t.rank_wall_s_max, 2)} s`],
        ['cold starts', `${t.cold_starts ?? 0} of ${ranks.length} ranks (INIT ${num(t.init_s_sum, 2)} s summed)`],
        [
          'summed over ranks',
          `inference ${num(t.inference_s_sum, 2)} s, S3 reads ${num(t.download_s_sum, 2)} s (of which waited on ${num(t.read_wait_s_sum, 2)} s), upload ${num(t.upload_s_sum, 2)} s`,
        ],
        [
          'throughput',
          `${num(run.throughput?.samples_per_s_wall, 1)} objects/s over the run, ${num(run.throughput?.samples_per_s_per_rank, 1)} per rank`,
        ],
        ['peak memory of a rank', `${num(t.peak_rss_mb_max, 0)} MB`],
      ],
    )}</section>`,
  );

  if (run.cost) {
    const c = run.cost;
    sections.push(
      `<section id="cost"><h2>Cost</h2>${figure('plot-cost', await renderSvg(costSpec(c, run.prototypeFormulaUsd)))}${table([
        ['total (billRun)', `${usd(c.totalUsd)} at ${c.priceRegion} prices, ${c.architecture}`],
        [
          'Lambda',
          `${usd(c.lambda.computeUsd)} for ${c.lambda.gbSeconds.toFixed(3)} GB-s of configured memory (duration + INIT) + ${usd(c.lambda.requestsUsd)} for ${c.lambda.invocations} requests`,
        ],
        ['Step Functions', `${usd(c.stepFunctions.usd)} for ${c.stepFunctions.transitions} state transitions`],
        ['S3', `${usd(c.s3.usd)} for ${c.s3.get} GET, ${c.s3.put} PUT, ${c.s3.list} LIST`],
        ['DynamoDB', `${usd(c.dynamodb.usd)} for ${c.dynamodb.writes} writes, ${c.dynamodb.reads} reads`],
        [
          "prototype's formula",
          `${usd(run.prototypeFormulaUsd)} = requests × mean duration × peak memory used (GB) × $${PROTOTYPE_GB_SECOND}: memory used, not configured; no INIT, requests, Step Functions, S3 or DynamoDB`,
        ],
        ...(c.warning ? ([['warning', c.warning]] as [string, string][]) : []),
      ])}</section>`,
    );
  }

  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CAI run ${escape(run.runId)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th{font-weight:600;white-space:nowrap}figure.plot{margin:1em 0}section{margin-bottom:2em}
</style></head>
<body><h1>CAI run ${escape(run.runId)}</h1>
${sections.join('\n')}
<footer><p>Made by <code>cai report</code> from the run record, summary.json and the ranks' results; plots by Vega-Lite.</p></footer>
</body></html>
`;
}

/** The report of a run whose outputs were copied to a folder (npm start's local copy). */
export async function writeReportFromFolder(run: RunRecord, folder: string, out = join(folder, 'report.html')): Promise<string> {
  const readJson = async <T>(name: string): Promise<T | undefined> => {
    try {
      return JSON.parse(await readFile(join(folder, name), 'utf8')) as T;
    } catch {
      return undefined;
    }
  };
  const summary = await readJson<{ histograms?: RedshiftHistograms | null }>('summary.json');
  const combined = (await readJson<RankResult[]>('combined_data.json')) ?? [];
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, await buildReport({ run, histograms: summary?.histograms ?? null, ranks: combined.map(rankTiming) }));
  return out;
}
