import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import type { CrashedAttempt, RankInvocation, RankItem, RankResult } from '../../functions/commons/run/contracts';
import { rankMemory } from '../../functions/commons/model/rank-memory';
import { redshiftAccuracy } from '../../functions/commons/model/accuracy';
import { SKETCH_RELATIVE_ERROR } from '../../functions/commons/model/sketch';
import { sinkFor } from '../../toolkit/locations';
import { synthesizeDataset } from '../../toolkit/datasets/synth';
import { runIdFor } from '../../functions/commons/run/initialize';
import { LambdaError } from '../../local/lambda-runtime';
import { ROOT } from '../../local/paths';
import { testStack } from '../helpers/stack';
import { writeTestPartition } from '../helpers/partitions';
import { IMAGE_ELEMENTS } from '../../functions/commons/partitions/galaxy';
import { BYTES_PER_GALAXY } from '../../functions/commons/partitions/galaxy';
import { failedEventLines, runDetails } from '../../cli/run-format';
import { readRequestsBound } from '../../functions/commons/partitions/chunks';
import { localFailedEvents } from '../../toolkit/failed-events';
import { tempFolder } from '../helpers/temp';

const work = tempFolder('cai-pipeline-');
let t: Awaited<ReturnType<typeof testStack>>;

/** `count` small labelled partitions (1.pt … count.pt) under s3://bucket/prefix/. */
async function dataset(bucket: string, prefix: string, count: number, perPartition = 40, seed = 1) {
  await t.bucket(bucket);
  await synthesizeDataset({
    samples: count * perPartition,
    maxBytes: 4096 + perPartition * BYTES_PER_GALAXY,
    seed,
    sink: sinkFor({ kind: 's3', bucket, key: prefix }, () => t.s3),
  });
}

/** What the emulator (and Lambda) says of a runtime killed mid-invocation, as the state machine saw it. */
const KILLED = /^Runtime\.ExitError: RequestId: \S+ Error: Runtime exited with error: signal: killed$/;
/** The stack's data bucket (DataBucketName), where the prototype's payload keeps its partitions. */
const DATA = 'cosmicai-data';

const payload = (prefix: string, extra: Record<string, unknown> = {}) => ({
  bucket: 'cai-control',
  data_bucket: DATA,
  data_prefix: prefix,
  batch_size: 16,
  result_path: `results/${prefix}`,
  ...extra,
});

beforeAll(async () => {
  // The prototype's payload writes its outputs to its own bucket: the stack must allow it, as on AWS.
  t = await testStack(join(work, 'stack'), { ResultBucketNames: 'cosmicai-data,never-created', DataBucketName: DATA });
});
afterAll(() => t?.stack.close());
afterEach(() => {
  t.stack.functions.inference.intercept = undefined;
});

test("the prototype's payload runs unchanged, and its combined_data.json keeps the prototype's fields", async () => {
  await dataset('cosmicai-data', '100MB', 12, 30);
  const demo = JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'demo-input.json'), 'utf8'));
  const { outcome, record } = await t.run('prototype', demo);
  expect(outcome).toMatchObject({ outcome: 'STARTED', partitions: 11, ranks: 11 });
  expect(record).toMatchObject({ status: 'SUCCEEDED', partitions: 11, samples: 330, predictions: 330, failedPartitions: 0 });
  expect(record.warnings).toContain(
    "payload field script is the Python prototype's and is ignored by CAI (a run names its own ONNX model with `model`)",
  );
  expect(record.accuracy!.r2).toBeGreaterThan(0.5);
  expect(record.cost!.totalUsd).toBeGreaterThan(0);

  // The run's own folder, and the prototype's file where its notebooks look (the latest run's copy).
  const own = `result-partition-100MB/1GB/1/${outcome.runId}`;
  const combined = JSON.parse(await t.readText('cosmicai-data', `${own}/combined_data.json`));
  expect(JSON.parse(await t.readText('cosmicai-data', 'result-partition-100MB/1GB/1/combined_data.json'))).toEqual(combined);
  const reference = JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'combined_data-100MB-1GB-run1.json'), 'utf8'));
  expect(combined).toHaveLength(11);
  for (const rank of combined) {
    for (const field of Object.keys(reference[0])) expect(rank).toHaveProperty([field]);
    expect(typeof rank.sample_persec).toBe('number');
  }
  // Natural order: 1.pt … 11.pt (the prototype's text order would have picked 1, 10, 100, 101, …).
  expect(combined.map((r: { data_path: string }) => r.data_path).sort()).toEqual(
    Array.from({ length: 11 }, (_, i) => `100MB/${i + 1}.pt`).sort(),
  );
  const predictions = await t.readText('cosmicai-data', `${own}/predictions/0.csv`);
  expect(predictions.split('\n')[0]).toBe('partition,row,redshift_pred,redshift_true');
  expect(predictions.trim().split('\n')).toHaveLength(31);

  // The run's accuracy, merged from 11 ranks' partial sums, is the accuracy of every prediction at once.
  const rows = (
    await Promise.all(Array.from({ length: 11 }, (_, rank) => t.readText('cosmicai-data', `${own}/predictions/${rank}.csv`)))
  ).flatMap((csv) =>
    csv
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.split(',').slice(2).map(Number)),
  );
  expect(rows).toHaveLength(330);
  const exact = redshiftAccuracy(
    rows.map((r) => r[0]),
    rows.map((r) => r[1]),
  )!;
  const merged = record.accuracy!;
  expect(merged.samples).toBe(exact.samples);
  for (const key of ['mae', 'mse', 'bias', 'outlierFraction', 'r2'] as const) expect(merged[key]).toBeCloseTo(exact[key]!, 6);
  // The NMAD from the merged sketch: within its bound of the exact one, of the lower middle value for an even count.
  const scaled = rows.map(([zHat, z]) => Math.abs(zHat - z) / (1 + z)).sort((a, b) => a - b);
  const lowerMiddle = 1.48 * scaled[Math.floor((scaled.length - 1) / 2)];
  expect(Math.abs(merged.precision / lowerMiddle - 1)).toBeLessThanOrEqual(SKETCH_RELATIVE_ERROR + 1e-4);
  // The control: one rank's predictions left out give another accuracy.
  expect(
    redshiftAccuracy(
      rows.slice(30).map((r) => r[0]),
      rows.slice(30).map((r) => r[1]),
    )!.mae,
  ).not.toBeCloseTo(merged.mae, 6);
});

test('a corrupt partition is recorded as failed and the others still give results', async () => {
  await dataset(DATA, 'corrupt', 4);
  const good = await t.s3.send(new GetObjectCommand({ Bucket: DATA, Key: 'corrupt/3.pt' }));
  const bytes = await good.Body!.transformToByteArray();
  await t.s3.send(new PutObjectCommand({ Bucket: DATA, Key: 'corrupt/3.pt', Body: bytes.subarray(0, bytes.length - 200) }));
  const { record } = await t.run('corrupt', payload('corrupt'));
  expect(record).toMatchObject({ status: 'PARTIAL', partitions: 4, samples: 120, failedPartitions: 1 });
  expect(record.failures).toEqual([{ partition: 'corrupt/3.pt', rank: 2, error: expect.stringMatching(/truncated/) }]);
});

test('NaN in a partition: that object is predicted NaN and flagged, the accuracy is over the rest, the run reads back', async () => {
  await t.bucket(DATA);
  const file = join(work, 'nan.pt');
  writeTestPartition(file, 30, { edit: (x) => void (x.images[5 * IMAGE_ELEMENTS + 17] = NaN) });
  await t.s3.send(new PutObjectCommand({ Bucket: DATA, Key: 'nan/1.pt', Body: readFileSync(file) }));
  const { outcome, record } = await t.run('nan', payload('nan'));
  expect(record).toMatchObject({ status: 'SUCCEEDED', samples: 30, predictions: 30, nonFinitePredictions: 1 });
  expect(record.accuracy).toMatchObject({ samples: 29, excluded: 1 });
  expect([record.accuracy!.mae, record.accuracy!.r2].every(Number.isFinite)).toBe(true);
  expect(record.warnings).toEqual([
    '1 object with a non-finite input value (NaN or infinity): predicted NaN',
    '1 object left out of the accuracy: a non-finite prediction or label (accuracy.excluded)',
  ]);
  const csv = await t.readText('cai-control', `results/nan/${outcome.runId}/predictions/0.csv`);
  expect(csv.split('\n').filter((l) => l.split(',')[2] === 'NaN')).toEqual([expect.stringMatching(/^nan\/1\.pt,5,NaN,/)]);
  const report = runDetails(record);
  expect(report).toMatch(/30 objects, 30 predictions \(1 NaN\), 0 failed partitions/);
  expect(report).toMatch(/accuracy over 29 labelled objects \(1 more left out: non-finite prediction or label\):\n {4}MAE \d/);
  // One galaxy alone: R² is undefined, stored as null, and the report still reads.
  writeTestPartition(file, 1, { seed: 3 });
  await t.s3.send(new PutObjectCommand({ Bucket: DATA, Key: 'one/1.pt', Body: readFileSync(file) }));
  const one = await t.run('one', payload('one'));
  expect(one.record).toMatchObject({ status: 'SUCCEEDED', samples: 1, accuracy: { samples: 1, excluded: 0, r2: null } });
  expect(runDetails(one.record)).toMatch(/R² - {3}outliers/);
});

test('a partition that disappears before its rank runs is recorded as failed', async () => {
  await dataset(DATA, 'missing', 3);
  t.stack.functions.inference.intercept = async (event) => {
    const { item } = event as RankInvocation;
    if (item.rank === 1) await t.s3.send(new DeleteObjectCommand({ Bucket: DATA, Key: 'missing/2.pt' }));
  };
  const { record } = await t.run('missing', payload('missing'));
  expect(record).toMatchObject({ status: 'PARTIAL', samples: 80, failedPartitions: 1 });
  expect(record.failures![0]).toEqual({ partition: 'missing/2.pt', rank: 1, error: `no such object: s3://${DATA}/missing/2.pt` });
});

test('a bad partition in the middle of a rank is recorded, and the rank goes on to the next', async () => {
  await dataset(DATA, 'middle', 6);
  // Two ranks of three partitions each; rank 0's second partition is cut short.
  const cut = await (await t.s3.send(new GetObjectCommand({ Bucket: DATA, Key: 'middle/3.pt' }))).Body!.transformToByteArray();
  await t.s3.send(new PutObjectCommand({ Bucket: DATA, Key: 'middle/3.pt', Body: cut.subarray(0, cut.length - 300) }));
  const { outcome, record } = await t.run('middle', payload('middle', { world_size: 2 }));
  expect(outcome).toMatchObject({ partitions: 6, ranks: 2 });
  expect(record).toMatchObject({ status: 'PARTIAL', partitions: 6, samples: 200, predictions: 200, failedPartitions: 1 });
  const rank = JSON.parse(await t.readText('cai-control', `results/middle/${outcome.runId}/ranks/${record.failures![0].rank}.json`));
  expect(rank.partitions.map((p: { key: string }) => p.key)).toHaveLength(2);
  expect(rank.failures).toEqual([{ partition: 'middle/3.pt', rank: rank.rank, error: expect.stringMatching(/truncated/) }]);
  // It was not its rank's last: the rank read on past it.
  const items = JSON.parse(await t.readText('cai-control', `results/middle/${outcome.runId}/manifest.json`)) as RankItem[];
  const order = items[rank.rank].partitions.map((p) => p.key);
  expect(order.indexOf('middle/3.pt')).toBeGreaterThanOrEqual(0);
  expect(order.indexOf('middle/3.pt')).toBeLessThan(order.length - 1);
  // The partitions on either side of it in the same rank have their predictions.
  const csv = await t.readText('cai-control', `results/middle/${outcome.runId}/predictions/${rank.rank}.csv`);
  const partitions = new Set(
    csv
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.split(',')[0]),
  );
  expect([...partitions].sort()).toEqual(rank.partitions.map((p: { key: string }) => p.key).sort());
  expect(partitions.has('middle/3.pt')).toBe(false);
});

test('a multi-partition rank that crashes on every attempt puts all its partitions in the failures', async () => {
  await dataset(DATA, 'crash-many', 6);
  t.stack.functions.inference.intercept = async (event) => ((event as RankInvocation).item.rank === 1 ? { crashAfterMs: 5 } : undefined);
  const { outcome, record } = await t.run('crash-many', payload('crash-many', { world_size: 2 }));
  const items = JSON.parse(await t.readText('cai-control', `results/crash-many/${outcome.runId}/manifest.json`)) as RankItem[];
  const lost = items[1].partitions.map((p) => p.key).sort();
  expect(lost).toHaveLength(3);
  expect(record).toMatchObject({ status: 'PARTIAL', partitions: 6, samples: 120, failedPartitions: 3 });
  expect(record.failures!.map((f) => f.partition).sort()).toEqual(lost);
  for (const f of record.failures!) expect(f).toMatchObject({ rank: 1, error: expect.stringMatching(/Runtime\.ExitError/) });
});

test('a payload with errors is recorded with each field named, and nothing starts', async () => {
  const executions = t.stack.sfn.executionNames().length;
  const { outcome, record } = await t.run('bad-payload', { ...payload('nowhere'), batch_size: -5, file_limit: 'ten', colour: 'red' });
  expect(outcome.outcome).toBe('REJECTED');
  expect(record.status).toBe('FAILED');
  expect(record.errors).toEqual([
    { field: 'file_limit', message: 'must be a whole number from 1 to 100000 (got "ten")' },
    { field: 'batch_size', message: 'must be a whole number from 1 to 16384 (got -5)' },
    { field: 'colour', message: 'is not a payload field' },
  ]);
  expect(t.stack.sfn.executionNames()).toHaveLength(executions);
  const notJson = await t.run('not-json', '{"bucket": ');
  expect(notJson.record).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/is not valid JSON/) });
  const empty = await t.run('empty-prefix', payload('no-such-prefix'));
  expect(empty.record).toMatchObject({
    status: 'FAILED',
    error: `no data files (.pt, .h5/.hdf5, .fits, .parquet, .npy or .npz) under s3://${DATA}/no-such-prefix/`,
  });
});

test('an oversized payload is refused by its size, unread and unstored; a bucket that does not exist is named', async () => {
  const huge = await t.run('huge', { ...payload('nowhere'), script: 'x'.repeat(1 << 20) });
  expect(huge.outcome.outcome).toBe('REJECTED');
  expect(huge.record).toMatchObject({
    status: 'FAILED',
    payload: '(not stored: 1048714 bytes)',
    error: 'payload.json: (payload): is 1048714 bytes; a payload.json is at most 65536 bytes',
  });
  await dataset(DATA, 'homeless', 1);
  const homeless = await t.run('homeless', { ...payload('homeless'), bucket: 'never-created' });
  expect(homeless.record).toMatchObject({
    status: 'FAILED',
    error: expect.stringMatching(
      /^could not start the run: cannot write s3:\/\/never-created\/results\/homeless\/.+\/manifest\.json: NoSuchBucket: /,
    ),
  });
});

test('an inference crash mid-run is retried, then recorded, with every partition accounted for', async () => {
  await dataset(DATA, 'crash', 3);
  let attempts = 0;
  t.stack.functions.inference.intercept = async (event) => {
    if ((event as RankInvocation).item.rank !== 2) return;
    attempts++;
    return { crashAfterMs: 5 }; // well before a rank can finish its S3 reads and inference
  };
  const { outcome, record } = await t.run('crash', payload('crash'));
  expect(attempts).toBe(2); // the first try and the state machine's one retry
  expect(record).toMatchObject({ status: 'PARTIAL', partitions: 3, samples: 80, failedPartitions: 1 });
  expect(record.failures).toEqual([{ partition: 'crash/3.pt', rank: 2, error: expect.stringMatching(/Runtime\.ExitError/) }]);
  // The Map caught Lambda's error payload as its Cause, in JSON, as the lambda:invoke integration passes it on AWS.
  const mapResults = record.outputs!.mapResults!.replace('s3://cai-control/', '');
  const children = JSON.parse(await t.readText('cai-control', `${mapResults}SUCCEEDED_0.json`)) as { Output: string }[];
  const caught = children.map((c) => JSON.parse(c.Output)).find((o) => o.rank === 2).error;
  expect(caught.Error).toBe('Runtime.ExitError');
  expect(JSON.parse(caught.Cause)).toEqual({
    errorType: 'Runtime.ExitError',
    errorMessage: expect.stringMatching(/^RequestId: \S+ Error: Runtime exited with error: signal: killed$/),
  });
  // Both runtimes died: neither attempt replied, and both are billed with the error the state machine saw.
  expect(record.attempts).toEqual({ failed: 0, crashed: 2 });
  const summary = JSON.parse(await t.readText('cai-control', `results/crash/${outcome.runId}/summary.json`));
  expect(summary.crashedAttempts).toEqual([
    expect.objectContaining({ rank: 2, billedUntil: 'failure', error: expect.stringMatching(KILLED) }),
    expect.objectContaining({ rank: 2, billedUntil: 'failure', error: expect.stringMatching(KILLED) }),
  ]);
});

test('a runtime killed mid-rank by SIGKILL leaves an accounted attempt, billed up to the failure the state machine saw; the retry succeeds', async () => {
  await dataset(DATA, 'killed', 2, 1000);
  const plain = await t.run('killed-plain', payload('killed'));
  let tries = 0;
  t.stack.functions.inference.intercept = async (event) => {
    if ((event as RankInvocation).item.rank === 1 && tries++ === 0) return { crashAfterMs: 300 }; // well into its 1,000 galaxies
  };
  const reported = t.stack.functions.inference.billed.length;
  const { outcome, record } = await t.run('killed', payload('killed'));
  expect(record).toMatchObject({ status: 'SUCCEEDED', samples: 2000, predictions: 2000, failedPartitions: 0 });
  expect(record.attempts).toEqual({ failed: 0, crashed: 1 });
  expect(runDetails(record)).toMatch(
    /\n {2}attempts {4}0 failed, 1 whose runtime died \(out of memory, killed, timed out\): retried, billed/,
  );
  const summary = JSON.parse(await t.readText('cai-control', `results/killed/${outcome.runId}/summary.json`));
  const [crash] = summary.crashedAttempts as CrashedAttempt[];
  expect(crash).toMatchObject({ rank: 1, billedUntil: 'failure', error: expect.stringMatching(KILLED) });
  // Lambda's bill for it, as the local REPORT line has it (the emulator prints none; the local runtime makes Lambda's):
  // the summary bills it from its handler's start to the failure, so no less, and only the state machine's reaction more.
  const report = t.stack.functions.inference.billed.slice(reported).find((r) => r.requestId === crash.requestId)!;
  expect(report).toMatchObject({ status: 'error', error: 'Runtime.ExitError' });
  expect(crash.durationMs).toBeGreaterThan(250);
  expect(crash.durationMs).toBeGreaterThanOrEqual(report.durationMs - 50); // the REPORT counts the event's delivery too
  // …and up to the failure, which came before the retry began by InferRank's retry pause at least: the retry's result says when it began.
  const retry = JSON.parse(await t.readText('cai-control', `results/killed/${outcome.runId}/ranks/1.json`)) as RankResult;
  const pauseMs = t.stack.options.retryIntervalOverrides!.InferRank;
  expect(Date.parse(crash.startedAt) + crash.durationMs).toBeLessThanOrEqual(Date.parse(retry.started_at!) - pauseMs);
  // One invocation more than the same run without the kill, one retry's transition, its start record and its reads.
  expect(record.cost!.lambda.invocations).toBe(plain.record.cost!.lambda.invocations + 1);
  expect(record.cost!.stepFunctions.transitions).toBe(plain.record.cost!.stepFunctions.transitions + 1);
  expect(record.cost!.s3.put).toBe(plain.record.cost!.s3.put + 1);
  // What a crashed attempt's reads are billed at holds over what whole ranks read.
  const ranks = await Promise.all(
    [0, 1].map(async (r) => JSON.parse(await t.readText('cai-control', `results/killed/${outcome.runId}/ranks/${r}.json`))),
  );
  for (const rank of ranks) expect(readRequestsBound(rank.bytes)).toBeGreaterThanOrEqual(rank.requests.s3Get);
  expect(crash.requests.s3Get).toBe(readRequestsBound(ranks[1].bytes));
});

test('an inference worker killed mid-rank fails the rank, not its partitions: the rank is retried, and its container runs the next rank on a new pool', async () => {
  await dataset(DATA, 'dead-worker', 4, 400);
  let tries = 0;
  t.stack.functions.inference.intercept = async (event) => {
    // Rank 0's first attempt: one worker thread dies well into its first of two partitions; the runtime lives on.
    if ((event as RankInvocation).item.rank === 0 && tries++ === 0) return { killWorkerAfterMs: 300 };
  };
  const log = join(work, 'stack', 'logs', 'inference.log');
  const logBefore = readFileSync(log, 'utf8').length;
  const { outcome, record } = await t.run('dead-worker', payload('dead-worker', { world_size: 2 }));
  expect(tries).toBe(2); // the first attempt and the state machine's retry
  expect(record).toMatchObject({ status: 'SUCCEEDED', partitions: 4, samples: 1600, predictions: 1600, failedPartitions: 0 });
  // The dead worker failed its attempt (the handler replied with the error), which is billed and listed.
  expect(record.attempts).toEqual({ failed: 1, crashed: 0 });
  const summary = JSON.parse(await t.readText('cai-control', `results/dead-worker/${outcome.runId}/summary.json`));
  expect(summary.failedAttempts).toEqual([
    expect.objectContaining({ rank: 0, error: expect.stringMatching(/^inference worker \d exited \(code 70\)$/) }),
  ]);
  // The container whose worker died ran its next rank warm, on a new pool: exactly one rank loaded the model again.
  const ranks = await Promise.all(
    [0, 1].map(async (r) => JSON.parse(await t.readText('cai-control', `results/dead-worker/${outcome.runId}/ranks/${r}.json`))),
  );
  expect(ranks.filter((r) => !r.cold_start && r.wall_s.model_load > 0)).toHaveLength(1);
  for (const rank of ranks) expect(rank).toMatchObject({ failures: [], samples: 800 });
  const lines = readFileSync(log, 'utf8').slice(logBefore);
  expect(lines).toMatch(/local stack: inference worker thread \d+ killed \(fault injected\)/);
  expect(lines).toMatch(/the inference pool broke in an earlier rank; this rank runs on a new one/);
});

/** One partition of 4,096 galaxies, made once: a batch of all of them needs more than the function's 1,769 MB. */
let oomData: Promise<void> | undefined;
const oomPartition = () => (oomData ??= dataset(DATA, 'oom', 1, 4096));

test('a rank that cannot fit the inference function’s memory is refused at validation, with the numbers', async () => {
  await oomPartition();
  const { outcome, record } = await t.run('oom-refused', payload('oom', { batch_size: 4096 }));
  expect(outcome.outcome).toBe('REJECTED');
  expect(record.status).toBe('FAILED');
  expect(record.errors).toEqual([
    {
      field: 'batch_size',
      message: expect.stringMatching(
        /^partition oom\/1\.pt needs ~[\d,]+ MB in a rank \(1 worker's sessions \d+ MB, batches of 4096 [\d,]+ MB, read-ahead \d+ MB, runtime 135 MB\), over the inference function's 1,769 MB: set InferenceMemorySize to at least \d+, or lower batch_size$/,
      ),
    },
  ]);
});

test('a partition killed for memory on both attempts ends in the failures with one line: at what memory size, what it needs, what to do', async () => {
  // A rank the plan did not hold, as a run planned before InferenceMemorySize was lowered would be: its
  // manifest is written and its execution started here, as the initializer would have.
  await oomPartition();
  const runId = 'oom-by-hand';
  const head = await t.s3.send(new HeadObjectCommand({ Bucket: DATA, Key: 'oom/1.pt' }));
  const partition = { key: 'oom/1.pt', bytes: head.ContentLength! };
  const planned = rankMemory({
    modelBytes: statSync(join(ROOT, 'model', 'default.onnx')).size,
    workers: 1,
    batchSize: 4096,
    partitionBytes: partition.bytes,
  });
  const item: RankItem = {
    runId,
    rank: 0,
    worldSize: 1,
    batchSize: 4096,
    dataBucket: DATA,
    partitions: [partition],
    resultBucket: 'cai-control',
    resultPath: 'results/oom',
    plannedMemoryMb: planned.totalMb,
  };
  const reported = t.stack.functions.inference.billed.length;
  await t.startByHand(runId, 'results/oom', [item], `${DATA}/oom/`);
  await t.stack.idle();
  const record = (await t.stack.runs.get(runId))!;
  expect(record).toMatchObject({ status: 'FAILED', failedPartitions: 1, attempts: { failed: 0, crashed: 2 } });
  expect(record.failures).toEqual([
    {
      partition: 'oom/1.pt',
      rank: 0,
      error: `out of memory at 1769 MB on all 2 attempts: needs about ${planned.totalMb} MB; split the partition, lower batch_size or raise InferenceMemorySize`,
    },
  ]);
  // Each attempt killed as Lambda kills it, and billed: Lambda's REPORT line, and the summary's own account.
  const killed = t.stack.functions.inference.billed.slice(reported);
  expect(killed).toEqual([
    expect.objectContaining({ status: 'error', error: 'Runtime.OutOfMemory', memoryMb: 1769, maxMemoryUsedMb: 1769 }),
    expect.objectContaining({ status: 'error', error: 'Runtime.OutOfMemory', memoryMb: 1769, maxMemoryUsedMb: 1769 }),
  ]);
  const summary = JSON.parse(await t.readText('cai-control', `results/oom/${runId}/summary.json`));
  expect(summary.crashedAttempts).toEqual([
    expect.objectContaining({
      rank: 0,
      billedUntil: 'failure',
      error: expect.stringMatching(/^Runtime\.OutOfMemory: RequestId: \S+ Error: Runtime exited with error: signal: killed$/),
    }),
    expect.objectContaining({ rank: 0, billedUntil: 'failure', error: expect.stringMatching(/^Runtime\.OutOfMemory: /) }),
  ]);
  for (const [i, crash] of (summary.crashedAttempts as CrashedAttempt[]).entries()) {
    expect(crash.durationMs + crash.initMs).toBeGreaterThanOrEqual(killed[i].billedMs - 50);
  }
});

test('throttling once is retried and the run still succeeds', async () => {
  await dataset(DATA, 'throttle', 2);
  let throttled = 0;
  t.stack.functions.inference.intercept = async () => {
    if (throttled++ === 0) throw new LambdaError('Lambda.TooManyRequestsException', 'Rate Exceeded.');
  };
  const { record } = await t.run('throttle', payload('throttle'));
  expect(throttled).toBe(3); // one refused, then both ranks
  expect(record).toMatchObject({ status: 'SUCCEEDED', samples: 80, failedPartitions: 0 });
});

test('S3 failing a partition with 500s for a while: the rank fails, the state machine runs it again, no partition is lost', async () => {
  await dataset(DATA, 'outage', 2);
  // Ten attempts, the inference client's whole retry budget, for the first rank attempt's HEAD.
  t.stack.s3.injectFaults({ code: 'InternalError', method: 'HEAD', key: /^cosmicai-data\/outage\/2\.pt$/, times: 10 });
  const { outcome, record } = await t.run('outage', payload('outage'));
  expect(t.stack.s3.faultsServed()).toBe(10);
  t.stack.s3.injectFaults();
  expect(record).toMatchObject({ status: 'SUCCEEDED', samples: 80, failedPartitions: 0 });
  const summary = JSON.parse(await t.readText('cai-control', `results/outage/${outcome.runId}/summary.json`));
  expect(summary.failedAttempts).toEqual([expect.objectContaining({ error: 'HTTP 500 (a reply with no error code)' })]);
}, 90_000);

test('MaxConcurrency over what the account has free (GetAccountSettings) is clamped, with a warning on the run', async () => {
  await dataset(DATA, 'quota', 3);
  t.stack.lambdaApi.concurrency = 2; // a new account's pool, after what others hold: the Map's one rank and the initializer, then the summary
  try {
    const { record } = await t.run('quota', payload('quota'));
    expect(record).toMatchObject({ status: 'SUCCEEDED', samples: 120 });
    expect(record.warnings).toContain(
      'MaxConcurrency 2 is more than the 2 concurrent executions the inference function can have in this account (GetAccountSettings) less 1 kept for the summarizer and the initializer; the run uses 1 rank at once (ask Service Quotas for more)',
    );
  } finally {
    t.stack.lambdaApi.concurrency = 1000;
  }
});

test('a payload the initializer never handles goes, with its error, where `cai runs` lists payloads never started', async () => {
  // Every attempt dies: the first delivery and Lambda's two retries.
  let attempts = 0;
  t.stack.functions.initializer.intercept = async () => {
    attempts++;
    throw new LambdaError('Runtime.ExitError', 'the runtime died');
  };
  try {
    await t.s3.send(new PutObjectCommand({ Bucket: 'cai-control', Key: 'runs/lost/payload.json', Body: JSON.stringify(payload('lost')) }));
    await t.stack.idle();
  } finally {
    t.stack.functions.initializer.intercept = undefined;
  }
  expect(attempts).toBe(3);
  // Lambda's record of the invocation, as the on-failure destination gets it: the event and the error.
  const lost = localFailedEvents(join(work, 'stack')).filter((f) => f.what.includes('/runs/lost/'));
  expect(lost).toEqual([
    {
      at: expect.any(String),
      kind: 'payload',
      what: 's3://cai-control/runs/lost/payload.json',
      error: 'Runtime.ExitError: the runtime died',
    },
  ]);
  expect(failedEventLines(lost)).toEqual([
    '',
    'payloads never started (1) and other events the stack gave up on (0):',
    `  ${lost[0].at}  s3://cai-control/runs/lost/payload.json  Runtime.ExitError: the runtime died`,
  ]);
});

test('the same payload.json event delivered twice makes one run', async () => {
  await dataset(DATA, 'twice', 2);
  const events: unknown[] = [];
  const capture = (event: unknown) => events.push(event);
  t.stack.s3.server.on('event', capture);
  const { outcome } = await t.run('twice', payload('twice'));
  t.stack.s3.server.off('event', capture);
  const before = t.outcomes.length;
  t.stack.s3.server.emit('event', events[0]); // S3 delivers at least once: here, twice
  while (t.outcomes.length === before) await new Promise((r) => setTimeout(r, 20));
  await t.stack.idle();
  expect(t.outcomes[t.outcomes.length - 1]).toEqual({ runId: outcome.runId, outcome: 'DUPLICATE' });
  expect(t.stack.sfn.executionNames().filter((n) => n === outcome.runId)).toHaveLength(1);
  expect((await t.stack.runs.list()).filter((r) => r.runId === outcome.runId)).toHaveLength(1);
});

test('S3 events with odd keys: spaces, + and unicode arrive encoded and are decoded; a deleted payload is recorded, not retried for ever', async () => {
  await dataset(DATA, 'odd', 1);
  const events: { Records: { s3: { object: { key: string; sequencer?: string } } }[] }[] = [];
  const capture = (event: (typeof events)[number]) => events.push(event);
  t.stack.s3.server.on('event', capture);
  const odd = await t.run('ünï côdé + run', payload('odd'));
  t.stack.s3.server.off('event', capture);
  expect(odd.record).toMatchObject({ status: 'SUCCEEDED', payloadUri: 's3://cai-control/runs/ünï côdé + run/payload.json' });
  for (const key of ['runs/never uploaded/payload.json', 'runs/100%+gone/payload.json']) {
    const event = structuredClone(events[0]);
    event.Records[0].s3.object.key = key;
    event.Records[0].s3.object.sequencer = `${key}-1`;
    const before = t.outcomes.length;
    t.stack.s3.server.emit('event', event);
    while (t.outcomes.length === before) await new Promise((r) => setTimeout(r, 20));
    const outcome = t.outcomes[t.outcomes.length - 1];
    expect(outcome).toMatchObject({ outcome: 'REJECTED', error: `cannot read s3://cai-control/${key}: it does not exist` });
    expect(await t.stack.runs.get(outcome.runId)).toMatchObject({ status: 'FAILED' });
  }
});

test('a re-run of the same payload is a new run that reads and writes only its own files', async () => {
  await dataset(DATA, 'rerun', 4);
  const first = await t.run('rerun', payload('rerun', { world_size: 4 }));
  const second = await t.run('rerun', payload('rerun', { world_size: 1 }));
  expect(second.outcome.runId).not.toBe(first.outcome.runId);
  // Without isolation the second run would count the first one's ranks/1.json … ranks/3.json too.
  expect(first.record).toMatchObject({ status: 'SUCCEEDED', ranks: 4, partitions: 4, samples: 160, predictions: 160 });
  expect(second.record).toMatchObject({ status: 'SUCCEEDED', ranks: 1, partitions: 4, samples: 160, predictions: 160 });
  expect(second.record.outputs!.prefix).toBe(`s3://cai-control/results/rerun/${second.outcome.runId}/`);
  const listed = async (runId: string) =>
    ((await t.s3.send(new ListObjectsV2Command({ Bucket: 'cai-control', Prefix: `results/rerun/${runId}/ranks/` }))).Contents ?? []).length;
  expect([await listed(first.outcome.runId), await listed(second.outcome.runId)]).toEqual([4, 1]);
  expect(JSON.parse(await t.readText('cai-control', 'results/rerun/combined_data.json'))).toHaveLength(1); // the latest run's
});

test('a payload whose outputs go to a bucket the functions may not write is refused at validation, naming the field', async () => {
  const { outcome, record } = await t.run('elsewhere', { ...payload('nowhere'), bucket: 'someone-elses-bucket' });
  expect(outcome.outcome).toBe('REJECTED');
  expect(record).toMatchObject({ status: 'FAILED' });
  expect(record.errors).toEqual([
    {
      field: 'bucket',
      message:
        "the functions may write only to cai-control, cosmicai-data, never-created; add someone-elses-bucket to the template's ResultBucketNames (samconfig.toml parameter_overrides) to write there",
    },
  ]);
});

test('a payload whose partitions are in a bucket the inference function may not read is refused at validation, in one line', async () => {
  // A result bucket: the initializer may list it, but the inference role reads only DataBucketName.
  const { outcome, record } = await t.run('unreadable', { ...payload('elsewhere'), data_bucket: 'never-created' });
  expect(outcome.outcome).toBe('REJECTED');
  expect(record.error).toBe(
    "payload.json: data_bucket: the inference function may read only cosmicai-data; set the template's DataBucketName (samconfig.toml parameter_overrides) to never-created to read there",
  );
});

test('an execution that fails past every Catch (RecordFailure failing too) is recorded FAILED by the status rule', async () => {
  await dataset(DATA, 'unrecorded', 2);
  let refused = 0;
  t.stack.functions.summarizer.intercept = async (event) => {
    if ((event as { 'detail-type'?: string })['detail-type']) return; // the status rule's event goes through
    refused++;
    throw new LambdaError('SummaryError', 'the summarizer is broken');
  };
  const { record } = await t.run('unrecorded', payload('unrecorded'));
  t.stack.functions.summarizer.intercept = undefined;
  expect(refused).toBe(5); // Summarize once (a function error is caught at once), RecordFailure with its 3 retries
  expect(record).toMatchObject({ status: 'FAILED', samples: 80 });
  expect(record.error).toMatch(/SummaryError/);
});

test("a delivery that recorded the run and died before starting it is resumed by S3's retry", async () => {
  await dataset(DATA, 'resumed', 2);
  const events: { Records: { s3: { bucket: { name: string }; object: { key: string; sequencer?: string; eTag?: string } } }[] }[] = [];
  const capture = (event: (typeof events)[number]) => events.push(event);
  t.stack.s3.server.on('event', capture);
  // Every attempt of the first delivery dies (Lambda retries an S3 notification twice) ...
  t.stack.functions.initializer.intercept = async () => {
    throw new LambdaError('Runtime.ExitError', 'the runtime died');
  };
  await t.s3.send(
    new PutObjectCommand({ Bucket: 'cai-control', Key: 'runs/resumed/payload.json', Body: JSON.stringify(payload('resumed')) }),
  );
  t.stack.s3.server.off('event', capture);
  await t.stack.idle();
  t.stack.functions.initializer.intercept = undefined;
  // ... after recording the run, as a crash between the two steps would leave it.
  const { s3: object } = events[0].Records[0];
  const runId = runIdFor({
    bucket: object.bucket.name,
    key: object.object.key,
    sequencer: object.object.sequencer,
    etag: object.object.eTag,
  });
  await t.recordRunning(runId, `${DATA}/resumed/`, {
    payloadUri: 's3://cai-control/runs/resumed/payload.json',
    payload: payload('resumed'),
  });
  const before = t.outcomes.length;
  t.stack.s3.server.emit('event', events[0]); // S3 delivers the notification again
  while (t.outcomes.length === before) await new Promise((r) => setTimeout(r, 20));
  await t.stack.idle();
  expect(t.outcomes[t.outcomes.length - 1]).toMatchObject({ runId, outcome: 'STARTED' });
  expect(await t.stack.runs.get(runId)).toMatchObject({ status: 'SUCCEEDED', samples: 80 });
});

test('1,100 one-galaxy partitions (listing past one S3 page) run as 1,100 ranks, every partition accounted for', async () => {
  await dataset(DATA, 'many', 1100, 1);
  const { outcome, record } = await t.run('many', payload('many'), 480_000);
  expect(outcome).toMatchObject({ outcome: 'STARTED', partitions: 1100, ranks: 1100 });
  expect(record).toMatchObject({
    status: 'SUCCEEDED',
    partitions: 1100,
    ranks: 1100,
    samples: 1100,
    predictions: 1100,
    failedPartitions: 0,
  });
}, 600_000);

test('hundreds of failed ranks with long errors: the run record stays under 400 KB, summary.json keeps every error whole', async () => {
  await dataset(DATA, 'long-errors', 200, 1);
  const failing = (rank: number) => rank % 5 !== 0; // 160 of 200
  const message = (rank: number) => `rank ${rank} failed: ${'the detector is on fire; '.repeat(160)}`; // ~4 KB each
  t.stack.functions.inference.intercept = async (event) => {
    const { rank } = (event as RankInvocation).item;
    if (failing(rank)) throw new LambdaError('RankError', message(rank));
  };
  const { outcome, record } = await t.run('long-errors', payload('long-errors'), 240_000);
  // Summarize recorded it (RecordFailure would set `error`): 160 × 4 KB of errors once broke the 400 KB item.
  expect(record).toMatchObject({ status: 'PARTIAL', partitions: 200, failedPartitions: 160, predictions: 40 });
  expect(record.error).toBeUndefined();
  expect(Buffer.byteLength(JSON.stringify(record))).toBeLessThan(400 * 1024);
  expect(record.failures!.length).toBeGreaterThan(100);
  expect(record.failures![0].error).toMatch(/^RankError: rank \d+ failed: .*… \(\d+ characters in all; summary\.json has it whole\)$/);
  const summary = JSON.parse(await t.readText('cai-control', `results/long-errors/${outcome.runId}/summary.json`));
  expect(summary.failures).toHaveLength(160);
  for (const failure of summary.failures) expect(failure.error).toBe(`RankError: ${message(failure.rank)}`);
}, 300_000);
