import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { BYTES_PER_GALAXY } from '../../functions/commons/partitions/galaxy';
import type { RankItem } from '../../functions/commons/run/contracts';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { ROOT } from '../../local/paths';
import { LambdaError } from '../../local/lambda-runtime';
import { announceServedStack, withdrawServedStack } from '../../local/served-stack';
import { CONTROL_BUCKET } from '../../local/stack';
import { sinkFor } from '../../toolkit/locations';
import { synthesizeDataset } from '../../toolkit/datasets/synth';
import { cai } from '../helpers/cli';
import { testStack } from '../helpers/stack';
import { tempFolder } from '../helpers/temp';

/**
 * Retries (functions/commons/run/retry.ts, `cai runs retry`) on the local stack: a PARTIAL run
 * finished by its retry, a run whose summary failed completed without running a rank, and what
 * cannot be retried said in one line.
 */
const work = tempFolder('cai-retry-');
const dir = join(work, 'stack');
const DATA = 'retry-data';
let t: Awaited<ReturnType<typeof testStack>>;

beforeAll(async () => {
  t = await testStack(dir, { DataBucketName: DATA });
  await t.bucket(DATA);
  // `cai runs retry` uploads a payload for the stack's initializer: this process serves the stack, as `cai stack up` does.
  announceServedStack(dir, {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    region: t.stack.env.AWS_REGION,
    s3: t.stack.s3.endpoint,
    dynamodb: t.stack.dynamo.endpoint,
    stepfunctions: t.stack.sfn.endpoint,
    controlBucket: CONTROL_BUCKET,
    dataBucket: DATA,
    table: t.stack.runs.table,
    accessKeyId: t.stack.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: t.stack.env.AWS_SECRET_ACCESS_KEY,
  });
});
afterAll(async () => {
  withdrawServedStack(dir);
  await t?.stack.close();
});
afterEach(() => {
  t.stack.functions.summarizer.intercept = undefined;
});

async function dataset(prefix: string, count: number, perPartition = 40) {
  await synthesizeDataset({
    samples: count * perPartition,
    maxBytes: 4096 + perPartition * BYTES_PER_GALAXY,
    seed: 7,
    sink: sinkFor({ kind: 's3', bucket: DATA, key: prefix }, () => t.s3),
  });
}

const payload = (prefix: string, extra: Record<string, unknown> = {}) => ({
  bucket: CONTROL_BUCKET,
  data_bucket: DATA,
  data_prefix: prefix,
  batch_size: 16,
  result_path: `results/${prefix}`,
  ...extra,
});

/** A run's manifest items. */
const manifestOf = async (run: RunRecord): Promise<RankItem[]> =>
  JSON.parse(await t.readText(CONTROL_BUCKET, run.outputs!.manifest.replace(`s3://${CONTROL_BUCKET}/`, '')));

/** The next run the initializer handles (an upload made by someone else: `cai runs retry`), once it has ended. */
async function nextRun(before: number): Promise<RunRecord> {
  while (t.outcomes.length === before) await new Promise((r) => setTimeout(r, 50));
  const { runId } = t.outcomes[before];
  for (;;) {
    const record = await t.stack.runs.get(runId);
    if (record && record.status !== 'RUNNING') {
      await t.stack.idle();
      return (await t.stack.runs.get(runId))!;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every object's predicted values in a run's predictions/*.csv, by partition and row. */
async function predictionsOf(run: RunRecord): Promise<Map<string, string>> {
  const prefix = run.outputs!.predictions.replace(`s3://${CONTROL_BUCKET}/`, '');
  const listed = await t.s3.send(new ListObjectsV2Command({ Bucket: CONTROL_BUCKET, Prefix: prefix }));
  const values = new Map<string, string>();
  for (const { Key } of listed.Contents ?? []) {
    for (const line of (await t.readText(CONTROL_BUCKET, Key!)).trim().split('\n').slice(1)) {
      const [partition, row, ...rest] = line.split(',');
      values.set(`${partition}#${row}`, rest.join(','));
    }
  }
  return values;
}

let finished: RunRecord;

test("a PARTIAL run's retry runs only its failed partition, and together they predict what a clean run does", async () => {
  await dataset('partial', 4);
  // A run's own model: the retry must run exactly the version (ETag) the first run ran.
  await t.s3.send(
    new PutObjectCommand({ Bucket: CONTROL_BUCKET, Key: 'models/redshift.onnx', Body: readFileSync(join(ROOT, 'model', 'default.onnx')) }),
  );
  await t.s3.send(
    new PutObjectCommand({
      Bucket: CONTROL_BUCKET,
      Key: 'models/redshift.card.json',
      Body: readFileSync(join(ROOT, 'model', 'default.card.json')),
    }),
  );
  const model = { model: `s3://${CONTROL_BUCKET}/models/redshift.onnx` };
  const good = await (await t.s3.send(new GetObjectCommand({ Bucket: DATA, Key: 'partial/3.pt' }))).Body!.transformToByteArray();
  await t.s3.send(new PutObjectCommand({ Bucket: DATA, Key: 'partial/3.pt', Body: good.subarray(0, good.length - 200) }));
  const first = (await t.run('partial', payload('partial', model))).record;
  expect(first).toMatchObject({ status: 'PARTIAL', partitions: 4, predictions: 120, failedPartitions: 1 });

  // Restored, then retried as a user would: the CLI uploads {"retry_of": …} for the initializer.
  await t.s3.send(new PutObjectCommand({ Bucket: DATA, Key: 'partial/3.pt', Body: good }));
  const inferences = t.stack.functions.inference.billed.length;
  const before = t.outcomes.length;
  const cli = await cai(['runs', 'retry', first.runId, '--dir', dir]);
  expect(cli.stderr).toBe('');
  expect(cli.stdout).toBe(
    `retry of ${first.runId} (PARTIAL): 1 of its 4 partitions to run again; uploaded s3://${CONTROL_BUCKET}/runs/retry-${first.runId}/payload.json (cai runs shows the retry)\n`,
  );
  expect(cli.status).toBe(0);
  const retry = await nextRun(before);
  expect(retry).toMatchObject({ status: 'SUCCEEDED', retryOf: first.runId, partitions: 1, ranks: 1, predictions: 40, failedPartitions: 0 });
  expect(retry.dataset).toBe(first.dataset);
  expect(first.model!.etag).toMatch(/\w/);
  expect(retry.model).toEqual(first.model);
  const [firstItems, retryItems] = [await manifestOf(first), await manifestOf(retry)];
  expect(retryItems.map((i) => i.partitions.map((p) => p.key))).toEqual([['partial/3.pt']]);
  expect(retryItems[0].model).toEqual(firstItems[0].model);
  expect(retry.outputs!.prefix).toBe(`s3://${CONTROL_BUCKET}/results/partial/${retry.runId}/`);
  expect(t.stack.functions.inference.billed.length - inferences).toBe(1); // one rank, one partition
  expect((await t.stack.runs.get(first.runId))!.retriedBy).toBe(retry.runId);

  // A clean run over the same data: every object's values equal those of the first run and its retry together.
  const clean = (await t.run('partial-clean', payload('partial', model))).record;
  expect(clean).toMatchObject({ status: 'SUCCEEDED', predictions: 160 });
  const together = new Map([...(await predictionsOf(first)), ...(await predictionsOf(retry))]);
  const expected = await predictionsOf(clean);
  expect(together.size).toBe(160);
  expect(Object.fromEntries(together)).toEqual(Object.fromEntries(expected));
  // The control: the first run alone lacks the 40 objects of partial/3.pt.
  expect((await predictionsOf(first)).size).toBe(120);

  // `cai runs show` of either gives the chain's outcome: every partition predicted, the cost of both runs.
  const shown = await cai(['runs', 'show', first.runId, '--dir', dir, '--json']);
  expect(shown.status).toBe(0);
  const { chain } = shown.json<{
    chain: { runs: { runId: string }[]; predicted: number; partitions: number; predictions: number; costUsd: number };
  }>();
  expect(chain).toMatchObject({ runs: [{ runId: first.runId }, { runId: retry.runId }], predicted: 4, partitions: 4, predictions: 160 });
  expect(chain.costUsd).toBeCloseTo(first.cost!.totalUsd + retry.cost!.totalUsd, 12);
  expect(shown.stdout).toContain(`  together    4 of 4 partitions with predictions, 160 predictions, $`);
  const report = join(work, 'partial.html');
  const reported = await cai(['report', retry.runId, '--dir', dir, '--out', report]);
  expect([reported.status, reported.stderr]).toEqual([0, '']);
  const html = readFileSync(report, 'utf8');
  expect(html).toContain(`<td>${first.runId} (PARTIAL) → ${retry.runId} (SUCCEEDED)</td>`);
  expect(html).toMatch(/<td>4 of 4 partitions with predictions, 160 predictions, \$[\d.]+ in all<\/td>/);
  finished = retry;

  // Retried once: the first run's retry is its retry's to make.
  const again = await cai(['runs', 'retry', first.runId, '--dir', dir]);
  expect([again.status, again.stderr]).toEqual([2, `cai: run ${first.runId} was retried by run ${retry.runId}: retry that one\n`]);
}, 180_000);

test('a run whose summary failed after every rank finished is completed by its retry without running a rank', async () => {
  await dataset('summary', 2);
  t.stack.functions.summarizer.intercept = async (event) => {
    // Summarize's input names the Map's results; RecordFailure's carries the failure.
    if ((event as { mapRun?: unknown }).mapRun) throw new LambdaError('Runtime.ExitError', 'the summary crashed');
  };
  const failed = (await t.run('summary', payload('summary'))).record;
  t.stack.functions.summarizer.intercept = undefined;
  expect(failed).toMatchObject({ status: 'FAILED', partitions: 2, predictions: 80, failedPartitions: 0 });
  expect(failed.error).toMatch(/every one of the 2 partitions has its predictions; the summary was written after the failure/);

  const inferences = t.stack.functions.inference.billed.length;
  const { outcome, record: retry } = await t.run('summary-retry', { retry_of: failed.runId });
  expect(outcome).toMatchObject({ outcome: 'COMPLETED', completed: failed.runId, status: 'SUCCEEDED' });
  expect(t.stack.functions.inference.billed.length).toBe(inferences);
  expect(retry).toMatchObject({ status: 'SUCCEEDED', retryOf: failed.runId, partitions: 0, predictions: 0 });
  const completed = (await t.stack.runs.get(failed.runId))!;
  expect(completed).toMatchObject({ status: 'SUCCEEDED', partitions: 2, predictions: 80, failedPartitions: 0, retriedBy: retry.runId });
  expect(completed.error).toBeUndefined();
  expect(completed.finishedAt).toBe(failed.finishedAt);
  // Billed as a summarized run: the initializer, two ranks and one summary; Summarize's transitions, not the failure path's.
  expect(completed.cost!.lambda.invocations).toBe(4);
  expect(completed.cost!.stepFunctions.transitions).toBe(failed.cost!.stepFunctions.transitions - 2);
  const summary = JSON.parse(await t.readText(CONTROL_BUCKET, completed.outputs!.summary.replace(`s3://${CONTROL_BUCKET}/`, '')));
  expect(summary).toMatchObject({ status: 'SUCCEEDED', predictions: 80 });
  // Completed, the run and its retry have nothing left to retry.
  const again = await cai(['runs', 'retry', retry.runId, '--dir', dir]);
  expect([again.status, again.stderr]).toEqual([2, `cai: run ${retry.runId} is SUCCEEDED: it ran no partition; nothing to retry\n`]);
}, 120_000);

test('a retry that leaves a partition is retried in turn: the chain takes the first payload and covers every partition once', async () => {
  await dataset('chain', 3);
  const cut = async (key: string) => {
    const bytes = await (await t.s3.send(new GetObjectCommand({ Bucket: DATA, Key: key }))).Body!.transformToByteArray();
    await t.s3.send(new PutObjectCommand({ Bucket: DATA, Key: key, Body: bytes.subarray(0, bytes.length - 200) }));
    return bytes;
  };
  const [one, three] = [await cut('chain/1.pt'), await cut('chain/3.pt')];
  const first = (await t.run('chain', payload('chain', { world_size: 3 }))).record;
  expect(first).toMatchObject({ status: 'PARTIAL', failedPartitions: 2 });
  await t.s3.send(new PutObjectCommand({ Bucket: DATA, Key: 'chain/1.pt', Body: one }));
  const second = (await t.run('chain-retry', { retry_of: first.runId })).record;
  expect(second).toMatchObject({ status: 'PARTIAL', retryOf: first.runId, partitions: 2, ranks: 2, predictions: 40, failedPartitions: 1 });
  expect(second.failures!.map((f) => f.partition)).toEqual(['chain/3.pt']);
  await t.s3.send(new PutObjectCommand({ Bucket: DATA, Key: 'chain/3.pt', Body: three }));
  const third = (await t.run('chain-retry-2', { retry_of: second.runId })).record;
  expect(third).toMatchObject({ status: 'SUCCEEDED', retryOf: second.runId, partitions: 1, predictions: 40 });
  expect(third.outputs!.prefix).toBe(`s3://${CONTROL_BUCKET}/results/chain/${third.runId}/`);
  const keys = async (run: RunRecord) => [...(await predictionsOf(run)).keys()].map((k) => k.split('#')[0]);
  const partitions = [...(await keys(first)), ...(await keys(second)), ...(await keys(third))];
  expect(new Set(partitions).size).toBe(3);
  expect(partitions).toHaveLength(120); // each object once across the chain
  const shown = await cai(['runs', 'show', second.runId, '--dir', dir]);
  expect(shown.stdout).toContain(`  retries     ${first.runId} (PARTIAL) → ${second.runId} (PARTIAL) → ${third.runId} (SUCCEEDED)\n`);
  expect(shown.stdout).toContain('  together    3 of 3 partitions with predictions, 120 predictions, $');
}, 180_000);

test('what cannot be retried is one line: an unknown run, a run with nothing to do, a bad retry payload', async () => {
  const unknown = await cai(['runs', 'retry', 'no-such-run', '--dir', dir]);
  expect([unknown.status, unknown.stdout, unknown.stderr]).toEqual([2, '', `cai: no run no-such-run in table ${t.stack.runs.table}\n`]);
  const done = await cai(['runs', 'retry', finished.runId, '--dir', dir]);
  expect([done.status, done.stdout, done.stderr]).toEqual([
    2,
    '',
    `cai: run ${finished.runId} is SUCCEEDED: every one of its partitions (1) has its predictions; nothing to retry\n`,
  ]);
  // Nothing was uploaded for either.
  const uploaded = await t.s3.send(new ListObjectsV2Command({ Bucket: CONTROL_BUCKET, Prefix: 'runs/retry-' }));
  expect((uploaded.Contents ?? []).map((o) => o.Key)).not.toContain(`runs/retry-${finished.runId}/payload.json`);

  // As payloads: the run named must exist, and a retry takes nothing but the run it retries.
  const missing = await t.run('retry-missing', { retry_of: 'no-such-run' });
  expect(missing.record).toMatchObject({
    status: 'FAILED',
    errors: [{ field: 'retry_of', message: `no run no-such-run in table ${t.stack.runs.table}` }],
  });
  const extra = await t.run('retry-extra', { retry_of: finished.runId, world_size: 2 });
  expect(extra.record).toMatchObject({
    status: 'FAILED',
    errors: [{ field: 'world_size', message: "is not a field of a retry's payload (the earlier run's are used)" }],
  });
  // Without a served stack, locally, nothing would run the payload: said before anything is read.
  const unserved = await cai(['runs', 'retry', finished.runId, '--dir', join(work, 'nothing')]);
  expect(unserved.status).toBe(2);
  expect(unserved.stderr).toMatch(
    /^cai: no stack serves .*nothing: a retry is a payload its initializer runs; start one with npx cai stack up, or give --aws\n$/,
  );
}, 120_000);
