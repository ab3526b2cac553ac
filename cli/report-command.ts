import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Command } from 'commander';
import { createDynamoClient, createS3Client } from '../functions/commons/aws/clients';
import { UsageError } from '../functions/commons/errors';
import type { RedshiftHistograms } from '../functions/commons/model/histograms';
import type { RankResult } from '../functions/commons/run/contracts';
import { RunStore } from '../functions/commons/run/run-store';
import { startLocalDynamo } from '../local/dynamo-server';
import { startLocalS3 } from '../local/s3-server';
import { servedStack, stackEnvironment } from '../local/served-stack';
import { DEFAULT_TABLE } from '../local/stack';
import { buildReport } from './report/html';
import { rankTiming } from './report/report-data';

interface ReportOptions {
  out?: string;
  aws?: boolean;
  table: string;
  dir: string;
}

/** The environment that points the SDK at the run's S3 and DynamoDB: AWS, a served stack, or the stack's files. */
async function withServices<T>(options: ReportOptions, use: (env: NodeJS.ProcessEnv, table: string) => Promise<T>): Promise<T> {
  if (options.aws) return use(process.env, options.table);
  const directory = resolve(options.dir);
  const served = servedStack(directory);
  if (served) return use({ ...process.env, ...stackEnvironment(served) }, served.table);
  if (!existsSync(join(directory, 'dynamodb'))) throw new UsageError(`no local runs under ${directory} yet: npm start makes one`);
  const [s3, dynamo] = await Promise.all([startLocalS3(join(directory, 's3')), startLocalDynamo(join(directory, 'dynamodb'))]);
  try {
    return await use(
      { ...process.env, CAI_S3_ENDPOINT: s3.endpoint, CAI_DYNAMODB_ENDPOINT: dynamo.endpoint, AWS_REGION: 'us-east-1' },
      options.table,
    );
  } finally {
    await Promise.all([s3.close(), dynamo.close()]);
  }
}

async function readJsonUri<T>(s3: S3Client, uri: string): Promise<T> {
  const [, , bucket, ...key] = uri.split('/');
  try {
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key.join('/') }));
    return JSON.parse(await object.Body!.transformToString()) as T;
  } catch (error) {
    throw new UsageError(`cannot read ${uri}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

export function addReportCommand(program: Command): void {
  program
    .command('report')
    .description('one run as a self-contained HTML page: ẑ vs z, residuals, predicted redshifts, timeline, cost')
    .argument('<runId>')
    .option('--out <file.html>', 'where to write it (default: <dir>/outputs/<runId>/report.html, or <runId>.html with --aws)')
    .option('--aws', 'read the run on AWS (usual AWS environment and profile) instead of the local stack')
    .option('--table <name>', 'the runs table', DEFAULT_TABLE)
    .option('--dir <dir>', "the local stack's state folder", '.cai')
    .action(async (runId: string, options: ReportOptions) => {
      const html = await withServices(options, async (env, table) => {
        const run = await new RunStore(createDynamoClient(env), table).get(runId);
        if (!run) throw new UsageError(`no run ${runId} in table ${table}`);
        if (run.status === 'RUNNING') throw new UsageError(`run ${runId} is still running: report it when it has finished`);
        if (!run.outputs) return buildReport({ run, histograms: null, ranks: [] });
        const s3 = createS3Client(env);
        const summary = await readJsonUri<{ histograms?: RedshiftHistograms | null }>(s3, run.outputs.summary);
        const combined = await readJsonUri<RankResult[]>(s3, run.outputs.combined);
        return buildReport({ run, histograms: summary.histograms ?? null, ranks: combined.map(rankTiming) });
      });
      const out = resolve(options.out ?? (options.aws ? `${runId}.html` : join(options.dir, 'outputs', runId, 'report.html')));
      await mkdir(dirname(out), { recursive: true });
      await writeFile(out, html);
      process.stdout.write(`report ${out}\n`);
    });
}
