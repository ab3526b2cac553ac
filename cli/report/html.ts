import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { PROTOTYPE_GB_SECOND } from '../../functions/commons/billing/cost';
import type { RedshiftHistograms } from '../../functions/commons/model/histograms';
import { outputMetrics, type OutputStatistics } from '../../functions/commons/model/task-statistics';
import type { RankResult } from '../../functions/commons/run/contracts';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { costSpec, renderSvg, timelineSpec } from './charts';
import { count, escape, figure, idOf, num, table } from './html-parts';
import { runObjectImages } from './run-images';
import { isSketch, rankTiming, timelineSegments, type RankTiming, type ReportInput } from './report-data';
import { classificationSection, regressionSections, scoreSection } from './task-sections';
import type { RunChain } from '../run-chain';

const usd = (v: number | undefined) => (v === undefined ? '–' : `$${v < 0.01 ? v.toExponential(3) : v.toFixed(4)}`);

/** The model that ran: the run's own (its card's name and version, its URI and ETag), or the deployed one (as the ranks named it). */
function modelRows(run: RunRecord, ranks: RankTiming[]): [string, string][] {
  if (run.model) {
    const { uri, etag, name, version } = run.model;
    return [
      ['model', `${name ?? '(its card names none)'}${version ? ` version ${version}` : ''}`],
      ['model file', `${uri} (ETag ${etag.replace(/"/g, '')})`],
    ];
  }
  const card = ranks.find((r) => r.model?.id === 'deployed')?.model;
  return [['model', `the deployed one${card?.name ? ` (${card.name}${card.version ? ` version ${card.version}` : ''})` : ''}`]];
}

/**
 * Each output's sections, by its task, in the order summary.json lists them. A run from before
 * model cards has no statistics: its accuracy and histograms are reported as they always were.
 */
async function outputSections({ run, histograms, statistics, objectImages }: ReportInput): Promise<string[]> {
  const outputs = Object.entries(statistics ?? {});
  if (!outputs.length) return regressionSections({ suffix: '', accuracy: run.accuracy, histograms });
  const sections: string[] = [];
  const ids = new Set<string>();
  let regressions = 0;
  for (const [index, [name, stats]] of outputs.entries()) {
    const id = ids.has(idOf(name)) ? `${idOf(name)}-${index}` : idOf(name);
    ids.add(id);
    if (stats.task === 'regression') {
      // Statistics from before sketches cannot give the NMAD again: the record's stored accuracy instead.
      const metrics = isSketch(stats.histograms?.predicted) ? outputMetrics(stats) : run.metrics?.[name];
      const parts = await regressionSections({
        name,
        suffix: regressions++ === 0 ? '' : `-${id}`,
        accuracy: metrics?.task === 'regression' ? metrics.accuracy : null,
        histograms: stats.histograms,
        residuals: stats.sums?.residuals,
      });
      for (const part of parts) sections.push(part);
    } else if (stats.task === 'classification') sections.push(await classificationSection(name, id, stats));
    else sections.push(await scoreSection(name, id, stats, objectImages));
  }
  return sections;
}

/**
 * One self-contained HTML file: every plot is inline SVG rendered here and every image a data: URI,
 * no script, no stylesheet or font from elsewhere, so it opens offline and the same everywhere.
 */
export async function buildReport(input: ReportInput): Promise<string> {
  const { run, ranks } = input;
  const sections: string[] = [];
  const t = run.timings ?? {};
  sections.push(
    `<section id="run"><h2>Run</h2>${table([
      ['status', run.status],
      ['dataset', run.dataset],
      ['payload', run.payloadUri],
      ...modelRows(run, ranks),
      ['started', run.startedAt],
      ['finished', run.finishedAt ?? '–'],
      ['partitions / ranks', `${run.partitions ?? 0} / ${run.ranks ?? 0}`],
      ['objects / predictions', `${(run.samples ?? 0).toLocaleString('en-US')} / ${(run.predictions ?? 0).toLocaleString('en-US')}`],
      ['failed partitions', String(run.failedPartitions ?? 0)],
      ...(run.error ? ([['error', run.error]] as [string, string][]) : []),
      ...(input.chain ? chainRows(input.chain) : []),
    ])}</section>`,
  );
  for (const section of await outputSections(input)) sections.push(section);

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
          `${usd(c.lambda.computeUsd)} for ${c.lambda.gbSeconds.toFixed(3)} GB-s of configured memory (duration + INIT) + ${usd(c.lambda.requestsUsd)} for ${c.lambda.invocations} requests${c.lambda.storageUsd ? ` + ${usd(c.lambda.storageUsd)} for ${c.lambda.storageGbSeconds.toFixed(3)} GB-s of ephemeral storage above 512 MB` : ''}`,
        ],
        ['Step Functions', `${usd(c.stepFunctions.usd)} for ${c.stepFunctions.transitions} state transitions`],
        ['S3', `${usd(c.s3.usd)} for ${c.s3.get} GET, ${c.s3.put} PUT, ${c.s3.list} LIST`],
        ['DynamoDB', `${usd(c.dynamodb.usd)} for ${c.dynamodb.writes} writes, ${c.dynamodb.reads} reads`],
        // Records written before KMS requests were counted have none.
        ...((c.kms?.requests
          ? [
              [
                'KMS',
                `${usd(c.kms.usd)} for ${c.kms.requests} requests behind SSE-KMS GETs and PUTs (${c.kms.bucketKey} under a bucket key: an upper bound)`,
              ],
            ]
          : []) as [string, string][]),
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
table.grid td{white-space:nowrap}img.thumb{image-rendering:pixelated;display:block;background:#000}
</style></head>
<body><h1>CAI run ${escape(run.runId)}</h1>
${sections.join('\n')}
<footer><p>Made by <code>cai report</code> from the run record, summary.json, the ranks' results and, for a score's top objects, their partitions; plots by Vega-Lite.</p></footer>
</body></html>
`;
}

/** A retried run's chain: its runs and what they gave together. */
function chainRows(chain: RunChain): [string, string][] {
  return [
    ['retries', chain.runs.map((r) => `${r.runId} (${r.status})`).join(' → ')],
    [
      'together',
      `${count(chain.predicted)} of ${count(chain.partitions)} partitions with predictions, ${count(chain.predictions)} predictions, $${num(chain.costUsd, 6)} in all`,
    ],
  ];
}

/** What summary.json holds that a report draws. */
export interface RunSummary {
  histograms?: RedshiftHistograms | null;
  statistics?: Record<string, OutputStatistics>;
}

/**
 * The report of a run whose outputs were copied to a folder (npm start's local copy). The images of
 * a score's top objects are read from the run's data bucket through `s3` (the stack's); without
 * it, the top list has no images.
 */
export async function writeReportFromFolder(
  run: RunRecord,
  folder: string,
  options: { out?: string; s3?: S3Client } = {},
): Promise<string> {
  const out = options.out ?? join(folder, 'report.html');
  const readJson = async <T>(name: string): Promise<T | undefined> => {
    try {
      return JSON.parse(await readFile(join(folder, name), 'utf8')) as T;
    } catch {
      return undefined;
    }
  };
  const summary = await readJson<RunSummary>('summary.json');
  const combined = (await readJson<RankResult[]>('combined_data.json')) ?? [];
  const statistics = summary?.statistics;
  await mkdir(dirname(out), { recursive: true });
  await writeFile(
    out,
    await buildReport({
      run,
      histograms: summary?.histograms ?? null,
      ranks: combined.map(rankTiming),
      statistics,
      objectImages: options.s3 ? await runObjectImages(run, statistics, options.s3) : undefined,
    }),
  );
  return out;
}
