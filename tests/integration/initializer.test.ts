import { join } from 'node:path';
import { SFN_START_RETRY } from '../../functions/commons/aws/clients';
import { BYTES_PER_GALAXY } from '../../functions/commons/partitions/galaxy';
import { runIdFor } from '../../functions/commons/run/initialize';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { synthesizeDataset } from '../../toolkit/datasets/synth';
import { sinkFor } from '../../toolkit/locations';
import { testStack } from '../helpers/stack';
import { tempFolder } from '../helpers/temp';

/**
 * The initializer on the local stack, under the template's timeout as the emulator enforces it:
 * it records the run before validating, records FAILED itself when validation would outlast the
 * invocation, is carried on by Lambda's retry when it dies, and retries a throttled or failing
 * StartExecution within its time.
 */
const work = tempFolder('cai-initializer-');
const DATA = 'init-data';
let t: Awaited<ReturnType<typeof testStack>>;

beforeAll(async () => {
  t = await testStack(join(work, 'stack'), { DataBucketName: DATA });
  await t.bucket(DATA);
  await synthesizeDataset({
    samples: 80,
    maxBytes: 4096 + 40 * BYTES_PER_GALAXY,
    seed: 7,
    sink: sinkFor({ kind: 's3', bucket: DATA, key: 'two' }, () => t.s3),
  });
});
afterAll(() => t?.stack.close());
afterEach(() => {
  t.stack.s3.injectFaults();
  t.stack.sfn.injectFaults();
  t.stack.functions.initializer.intercept = undefined;
  t.stack.functions.inference.intercept = undefined;
});

const payload = (name: string) => ({
  bucket: 'cai-control',
  data_bucket: DATA,
  data_prefix: 'two',
  batch_size: 16,
  result_path: `results/${name}`,
});
/** Every LIST of the data bucket (the local S3 names a LIST by its bucket alone). */
const LISTING = new RegExp(`^${DATA}/?$`);
const listings = () => t.stack.s3.requests.filter((r) => r.kind === 'list' && r.bucket === DATA).length;
const executionsOf = (runId: string) => t.stack.sfn.executionNames().filter((n) => n === runId);

/** Holds the ranks until released, so a run is still RUNNING while StartExecution is retried. */
function holdRanks(): () => void {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  t.stack.functions.inference.intercept = async () => {
    await released;
  };
  return release;
}

test('a validation that outlasts the timeout: the initializer records FAILED before Lambda ends it, saying so, and nothing starts', async () => {
  const { initializer } = t.stack.functions;
  const templateTimeout = initializer.spec.timeoutS;
  const timeoutS = 10;
  await initializer.updateConfiguration({ timeoutS });
  const delayMs = (timeoutS + 3) * 1000;
  try {
    // S3 answers the data's listing only after the function's timeout.
    t.stack.s3.injectFaults({ method: 'GET', key: LISTING, delayMs });
    const reports = initializer.billed.length;
    const listed = listings();
    const { outcome, record } = await t.run('slow', payload('slow'), 60_000);
    const error = expect.stringMatching(
      new RegExp(
        `^could not start the run: the initializer ran out of time after \\d+\\.\\d s listing s3://${DATA}/two/ \\(0 pages so far\\); upload the payload again, or raise the InitializerFunction's Timeout in template\\.yaml$`,
      ),
    );
    expect(outcome).toEqual({ runId: expect.any(String), outcome: 'REJECTED', error });
    expect(record).toMatchObject({ status: 'FAILED', error, payload: payload('slow'), dataset: `${DATA}/two/` });
    // One invocation, ended by its handler inside the timeout: nothing for Lambda to retry or to time out.
    const billed = initializer.billed.slice(reports);
    expect(billed).toEqual([expect.objectContaining({ error: undefined })]);
    expect(billed[0].durationMs).toBeLessThan(timeoutS * 1000);
    // The listing it gave up on answers later: the abandoned validation starts nothing and writes nothing.
    while (listings() === listed) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 1000));
    expect(await t.stack.runs.get(outcome.runId)).toEqual(record);
    expect(executionsOf(outcome.runId)).toEqual([]);
  } finally {
    t.stack.s3.injectFaults();
    await initializer.updateConfiguration({ timeoutS: templateTimeout });
  }
}, 120_000);

test("an invocation killed mid-validation, after recording the run, is carried on by Lambda's retry: one record, one execution", async () => {
  // The first attempt's listing hangs, and its runtime is killed meanwhile.
  t.stack.s3.injectFaults({ method: 'GET', key: LISTING, delayMs: 20_000, times: 1 });
  const seenByRetry: (RunRecord | undefined)[] = [];
  let attempts = 0;
  t.stack.functions.initializer.intercept = async (event) => {
    if (attempts++ === 0) return { crashAfterMs: 2000 };
    const { s3 } = (event as { Records: { s3: { bucket: { name: string }; object: { key: string; sequencer?: string } } }[] }).Records[0];
    seenByRetry.push(await t.stack.runs.get(runIdFor({ bucket: s3.bucket.name, key: s3.object.key, sequencer: s3.object.sequencer })));
  };
  const reports = t.stack.functions.initializer.billed.length;
  const { outcome, record } = await t.run('killed', payload('killed'), 90_000);
  expect(attempts).toBe(2);
  expect(t.stack.functions.initializer.billed.slice(reports).map((b) => b.error)).toEqual(['Runtime.ExitError', undefined]);
  // The dead attempt had recorded the run: the retry found it RUNNING, not yet planned, and carried it on.
  expect(seenByRetry).toEqual([expect.objectContaining({ runId: outcome.runId, status: 'RUNNING', dataset: '-' })]);
  expect(seenByRetry[0]!.executionName).toBeUndefined();
  expect(outcome).toMatchObject({ outcome: 'STARTED', partitions: 2, ranks: 2 });
  expect(record).toMatchObject({ status: 'SUCCEEDED', predictions: 80, executionName: outcome.runId });
  expect(executionsOf(outcome.runId)).toHaveLength(1);
}, 120_000);

test('StartExecution throttled, then failing with 503 and 500, is retried with backoff: the run starts once and succeeds', async () => {
  const faults = t.stack.sfn.faultsServed();
  t.stack.sfn.injectFaults(
    { operation: 'StartExecution', code: 'ThrottlingException', times: 2 },
    { operation: 'StartExecution', code: 'ServiceUnavailable', times: 1 },
    // Carried out, then its reply lost: the retry meets the execution it started, and gets it back.
    { operation: 'StartExecution', code: 'InternalFailure', times: 1, afterServing: true },
  );
  const release = holdRanks();
  const before = t.outcomes.length;
  const running = t.run('throttled', payload('throttled'), 90_000);
  while (t.outcomes.length === before) await new Promise((r) => setTimeout(r, 50));
  release();
  const { outcome, record } = await running;
  expect(t.stack.sfn.faultsServed() - faults).toBe(4);
  expect(outcome).toMatchObject({ outcome: 'STARTED', partitions: 2, ranks: 2 });
  expect(record).toMatchObject({ status: 'SUCCEEDED', predictions: 80 });
  expect(executionsOf(outcome.runId)).toHaveLength(1);
}, 120_000);

test('StartExecution throttled past the retry budget: the run is FAILED with one line naming the throttling, its plan kept', async () => {
  const faults = t.stack.sfn.faultsServed();
  t.stack.sfn.injectFaults({ operation: 'StartExecution', code: 'ThrottlingException' });
  const { outcome, record } = await t.run('throttled-out', payload('throttled-out'), 90_000);
  expect(t.stack.sfn.faultsServed() - faults).toBe(SFN_START_RETRY.maxAttempts);
  const error = expect.stringMatching(
    new RegExp(
      `^could not start the run: StartExecution: ThrottlingException: Rate exceeded \\(${SFN_START_RETRY.maxAttempts} attempts, \\d+\\.\\d s of backoff\\)$`,
    ),
  );
  expect(outcome).toEqual({ runId: expect.any(String), outcome: 'REJECTED', error });
  expect(record).toMatchObject({ status: 'FAILED', error, partitions: 2, ranks: 2, executionName: outcome.runId });
  expect(executionsOf(outcome.runId)).toEqual([]);
}, 120_000);
