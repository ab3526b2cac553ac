/**
 * `npm run bench:summary`: the summarizer artifact, under the Runtime Interface Emulator at the
 * template's 1,024 MB, summarizing RANKS rank results (default 10,240, the seed's 1 TB) from the
 * embedded S3: the Map's result files, every ranks/<rank>.json with its partial statistics of
 * BENCH_TASK's output (regression: accuracy sums, sketches and ẑ-vs-z cells, the default; classification: a
 * 10-class confusion matrix; score: the scores' sketch and the top 50), the run record. Prints the invocation's duration and peak memory (its REPORT line)
 * against the targets (60 s, 512 MB), and last one JSON line.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import pLimit from 'p-limit';
import { createDynamoClient, createS3Client } from '../functions/commons/aws/clients';
import type { CardOutput } from '../functions/commons/model/card';
import { outputStatistics } from '../functions/commons/model/task-statistics';
import type { RankItem, RankResult } from '../functions/commons/run/contracts';
import { outputKeys } from '../functions/commons/run/output-keys';
import { RunStore } from '../functions/commons/run/run-store';
import { buildArtifacts } from '../local/artifacts';
import { ensureRunsTable, startLocalDynamo } from '../local/dynamo-server';
import { LocalFunction, lambdaReportLine } from '../local/lambda-runtime';
import { startLocalS3 } from '../local/s3-server';
import { functionConfig } from '../local/template';
import { say } from './harness';
import { ROOT } from '../local/paths';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const RANKS = Number(process.env.BENCH_RANKS ?? 10_240);
const PER_RANK = 5113; // a 100 MiB partition
const TARGET = { seconds: 60, memoryMb: 512 };
const TASKS: Record<string, { output: CardOutput; width: number }> = {
  regression: { output: { task: 'regression', label: 2 }, width: 1 },
  classification: {
    output: { task: 'classification', classes: Array.from({ length: 10 }, (_, c) => `class-${c}`), scores: 'logits', label: 2 },
    width: 10,
  },
  score: { output: { task: 'score', label: 2 }, width: 1 },
};
const TASK = process.env.BENCH_TASK ?? 'regression';

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'cai-bench-summary-'));
  const s3Server = await startLocalS3(join(work, 's3'));
  const dynamo = await startLocalDynamo(join(work, 'dynamodb'));
  const env = { ...process.env, CAI_S3_ENDPOINT: s3Server.endpoint, CAI_DYNAMODB_ENDPOINT: dynamo.endpoint, AWS_REGION: 'us-east-1' };
  const s3 = createS3Client(env);
  await s3.send(new CreateBucketCommand({ Bucket: 'cai-control' }));
  await ensureRunsTable(
    new DynamoDBClient({ region: 'us-east-1', endpoint: dynamo.endpoint, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }),
    'cai-runs',
  );
  const runId = 'scale-000000000000';
  const keys = outputKeys('results/scale', runId);
  const items: RankItem[] = Array.from({ length: RANKS }, (_, rank) => ({
    runId,
    rank,
    worldSize: RANKS,
    dataBucket: 'cai-data',
    partitions: [{ key: `survey/${rank + 1}.pt`, bytes: 104_857_600 }],
    resultBucket: 'cai-control',
    resultPath: 'results/scale',
  }));
  const put = (key: string, body: string) => s3.send(new PutObjectCommand({ Bucket: 'cai-control', Key: key, Body: body }));
  await put(keys.manifest, JSON.stringify(items));
  const task = TASKS[TASK];
  if (!task) throw new Error(`BENCH_TASK must be one of ${Object.keys(TASKS).join(', ')}, not ${TASK}`);
  // One set of partial statistics, as a rank of 5,113 labelled objects computes them; each rank carries it.
  let seed = 11;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const truth = Float32Array.from({ length: PER_RANK }, () =>
    TASK === 'classification' ? Math.floor(random() * task.width) : TASK === 'score' ? Number(random() < 0.01) : 0.02 + random() * 0.5,
  );
  const predicted = Float32Array.from({ length: PER_RANK * task.width }, (_, i) =>
    TASK === 'regression' ? truth[i] + (random() - 0.5) * 0.06 : (random() - 0.5) * 8,
  );
  const statistics = { [TASK]: outputStatistics(task.output, predicted, 'survey/x.pt', truth) };
  say(`writing ${RANKS} rank results (${JSON.stringify(statistics).length} bytes of ${TASK} statistics each) to the embedded S3 …`);
  const limit = pLimit(16);
  const started = Date.now();
  await Promise.all(
    items.map((item) =>
      limit(() => {
        const result: Partial<RankResult> = {
          run_id: runId,
          rank: item.rank,
          world_size: RANKS,
          partitions: [{ ...item.partitions[0], samples: PER_RANK }],
          failures: [],
          samples: PER_RANK,
          bytes: 104_857_600,
          wall_s: { total: 42, download: 1.2, open: 0.01, inference: 41.5, read_wait: 0.2, upload: 0.3 },
          init_s: 0.3,
          cold_start: true,
          peak_rss_mb: 290,
          memory_configured_mb: 1769,
          inference_workers: 1,
          duration_ms: 42_000,
          requests: { s3Get: 13, s3Put: 2, s3List: 0, dynamoWrite: 0, dynamoRead: 0 },
          predictions_key: keys.predictions(item.rank),
          statistics,
          started_at: new Date().toISOString(),
          sample_persec: 121.7,
          batch_size: 16,
          num_batches: 320,
          device: 'cpu',
        };
        return put(keys.rank(item.rank), JSON.stringify(result));
      }),
    ),
  );
  const children = items.map((item) => ({
    Input: JSON.stringify(item),
    Output: JSON.stringify({ rank: item.rank, status: 'SUCCEEDED' }),
    Status: 'SUCCEEDED',
    Name: `${item.rank}`,
    ExecutionArn: `x:${item.rank}`,
  }));
  await put(`map-results/${runId}/SUCCEEDED_0.json`, JSON.stringify(children));
  const manifestKey = `map-results/${runId}/manifest.json`;
  await put(
    manifestKey,
    JSON.stringify({
      DestinationBucket: 'cai-control',
      MapRunArn: 'arn:map',
      ResultFiles: { SUCCEEDED: [{ Key: `map-results/${runId}/SUCCEEDED_0.json`, Size: 0 }], FAILED: [], PENDING: [] },
    }),
  );
  await new RunStore(createDynamoClient(env), 'cai-runs').create({
    runId,
    recordType: 'run',
    status: 'RUNNING',
    startedAt: new Date().toISOString(),
    payloadUri: 's3://cai-control/runs/scale/payload.json',
    payload: {},
    dataset: 'cai-data/survey/',
    warnings: [],
  });
  say(`wrote them in ${((Date.now() - started) / 1000).toFixed(0)} s; summarizing with the summarizer artifact …`);

  const artifacts = await buildArtifacts({ model: join(ROOT, 'model', 'default.onnx') });
  const config = functionConfig(ROOT, 'SummarizerFunction', { resources: { RunsTable: 'cai-runs' } });
  const summarizer = new LocalFunction({
    name: 'bench-summarizer',
    artifact: artifacts.path('SummarizerFunction'),
    handler: config.handler,
    memoryMb: config.memoryMb,
    timeoutS: config.timeoutS,
    architecture: config.architecture,
    env: {
      ...config.environment,
      CAI_S3_ENDPOINT: s3Server.endpoint,
      CAI_DYNAMODB_ENDPOINT: dynamo.endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      POWERTOOLS_LOG_LEVEL: 'WARN',
    },
    concurrency: 1,
    logFile: join(work, 'summarizer.log'),
  });
  const reply = await summarizer.invoke({
    runId,
    resultBucket: 'cai-control',
    resultPath: 'results/scale',
    mapRun: { MapRunArn: 'arn:map', ResultWriterDetails: { Bucket: 'cai-control', Key: manifestKey } },
  });
  const report = summarizer.billed[0];
  await summarizer.close();
  await dynamo.close();
  await s3Server.close();
  const seconds = (report.durationMs + report.initMs) / 1000;
  process.stderr.write(`${lambdaReportLine(report)}\n`);
  say(`reply ${JSON.stringify(reply)}`);
  say(
    `${RANKS} rank results (${TASK}) summarized in ${seconds.toFixed(1)} s (target ≤ ${TARGET.seconds}), peak ${Math.round(report.maxMemoryUsedMb ?? 0)} MB (target ≤ ${TARGET.memoryMb}) at ${config.memoryMb} MB configured`,
  );
  process.stdout.write(
    `${JSON.stringify({ ranks: RANKS, task: TASK, summarize_s: Number(seconds.toFixed(2)), peak_mb: Math.round(report.maxMemoryUsedMb ?? 0), memory_configured_mb: config.memoryMb, within_targets: seconds <= TARGET.seconds && (report.maxMemoryUsedMb ?? Infinity) <= TARGET.memoryMb, reply })}\n`,
  );
}

main().catch((error: Error) => {
  process.stderr.write(`bench: ${error.message}\n`);
  process.exit(1);
});
