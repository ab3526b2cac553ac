import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Command } from 'commander';
import { createDynamoClient, createS3Client } from '../../functions/commons/aws/clients';
import { UsageError } from '../../functions/commons/errors';
import type { RankResult } from '../../functions/commons/run/contracts';
import { RunStore } from '../../functions/commons/run/run-store';
import { parseS3Uri } from '../../functions/commons/aws/s3-uri';
import { withOptions } from '../options';
import { runChain } from '../run-chain';
import { buildReport, type RunSummary } from '../report/html';
import { rankTiming } from '../report/report-data';
import { runObjectImages } from '../report/run-images';
import { withServices, type ServiceOptions } from '../services';

async function readJsonUri<T>(s3: S3Client, uri: string): Promise<T> {
  const { bucket, key } = parseS3Uri(uri);
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return JSON.parse(await object.Body!.transformToString()) as T;
  } catch (error) {
    throw new UsageError(`cannot read ${uri}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

/** `cai report <runId>`: one run as a self-contained HTML page. */
export function addReportCommand(program: Command): void {
  withOptions(
    program
      .command('report')
      .description(
        "one run as a self-contained HTML page: each model output by its task (regression, classification, a score with its top objects' images), timeline, cost",
      )
      .argument('<runId>')
      .option('--out <file.html>', 'where to write it (default: <dir>/outputs/<runId>/report.html, or <runId>.html with --aws)'),
    'aws',
    'table',
    'dir',
  ).action(async (runId: string, options: ServiceOptions & { out?: string }) => {
    const html = await withServices(options, { s3: true, dynamodb: true }, async (env, table) => {
      const store = new RunStore(createDynamoClient(env), table);
      const run = await store.get(runId);
      if (!run) throw new UsageError(`no run ${runId} in table ${table}`);
      if (run.status === 'RUNNING') throw new UsageError(`run ${runId} is still running: report it when it has finished`);
      const chain = await runChain(store, run);
      if (!run.outputs) return buildReport({ run, histograms: null, ranks: [], chain });
      const s3 = createS3Client(env);
      const summary = await readJsonUri<RunSummary>(s3, run.outputs.summary);
      const combined = await readJsonUri<RankResult[]>(s3, run.outputs.combined);
      return buildReport({
        run,
        histograms: summary.histograms ?? null,
        ranks: combined.map(rankTiming),
        statistics: summary.statistics,
        // The top objects' images come from the partitions in the run's data bucket, through the same S3.
        objectImages: await runObjectImages(run, summary.statistics, s3),
        chain,
      });
    });
    const out = resolve(options.out ?? (options.aws ? `${runId}.html` : join(options.dir, 'outputs', runId, 'report.html')));
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, html);
    process.stdout.write(`report ${out}\n`);
  });
}
