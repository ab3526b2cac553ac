import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BYTES_PER_GALAXY } from '../../functions/commons/partitions/galaxy';
import { synthesizeDataset } from '../../toolkit/datasets/synth';
import { sinkFor } from '../../toolkit/locations';
import { FAILED_EVENTS_FOLDER } from '../../toolkit/failed-events';
import { TooManyRequestsError } from '../../local/lambda-runtime';
import { ASYNC_RETRY_DELAYS_MS } from '../../local/stack';
import { testStack } from '../helpers/stack';
import { tempFolder } from '../helpers/temp';

/**
 * A new account's 10 concurrent executions, shared by every function of the local stack as Lambda's
 * unreserved pool is: an invocation that finds them all in use is refused at once with
 * TooManyRequestsException, and the state machine's retriers and Lambda's own queue (the
 * asynchronous initializer's) carry two runs through what another load holds.
 */
const work = tempFolder('cai-small-account-');
const DATA = 'small-data';
const ACCOUNT = 10;
/** Every retry of a Task waits this long (the retriers' own intervals are seconds to minutes). */
const RETRY_MS = 100;
/**
 * The summarizer refusals the competing load waits for before it lets go: more than the 6 tries of
 * the retrier Summarize had (the first and 5 retries), far fewer than the 31 of its throttle retrier.
 */
const REFUSALS = 8;
/** The initializer refusals it waits for: more than the attempts Lambda gives an asynchronous event that fails (the first and two retries). */
const INITIALIZER_REFUSALS = ASYNC_RETRY_DELAYS_MS.length + 2;
let t: Awaited<ReturnType<typeof testStack>>;

beforeAll(async () => {
  t = await testStack(
    join(work, 'stack'),
    { DataBucketName: DATA },
    { accountConcurrency: ACCOUNT, retryIntervalOverrides: { InferRank: RETRY_MS, Summarize: RETRY_MS, RecordFailure: RETRY_MS } },
  );
  await t.bucket(DATA);
  await synthesizeDataset({
    samples: 80,
    maxBytes: 4096 + 40 * BYTES_PER_GALAXY,
    seed: 5,
    sink: sinkFor({ kind: 's3', bucket: DATA, key: 'two' }, () => t.s3),
  });
});
afterAll(() => t?.stack.close());

const payload = (name: string) => ({
  bucket: 'cai-control',
  data_bucket: DATA,
  data_prefix: 'two',
  batch_size: 16,
  result_path: `results/${name}`,
});

/** Another function in the account taking every execution free: what it holds until the returned function lets go. */
function holdTheAccount(): () => void {
  const held: (() => void)[] = [];
  while (t.stack.account.free > 0) held.push(t.stack.account.take('another-function'));
  return () => held.splice(0).forEach((release) => release());
}

const refusals = (fn: 'initializer' | 'summarizer') => t.stack.account.throttled[t.stack.functions[fn].spec.name] ?? 0;

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`still waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("an invocation over the account's executions is refused at once (429, ConcurrentInvocationLimitExceeded), running nothing", async () => {
  const { summarizer } = t.stack.functions;
  const billed = summarizer.billed.length;
  const before = refusals('summarizer');
  const release = holdTheAccount();
  try {
    expect(t.stack.account.inUse).toBe(ACCOUNT);
    const refused = await summarizer.invoke({ runId: 'none' }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(TooManyRequestsError);
    expect(refused).toMatchObject({
      name: 'Lambda.TooManyRequestsException',
      message: 'Rate Exceeded.',
      statusCode: 429,
      reason: 'ConcurrentInvocationLimitExceeded',
    });
  } finally {
    release();
  }
  expect(refusals('summarizer') - before).toBe(1);
  expect(summarizer.billed.length).toBe(billed); // no container ran it
  expect(t.stack.account.inUse).toBe(0);
});

test('two runs and another load in a 10-execution account: Summarize waits out the throttling, the second run waits in the queue, both succeed', async () => {
  // When the first run's Map has written its results (its ranks have given their executions back),
  // another load takes every execution before the Summarize that follows can.
  const held = new Promise<() => void>((resolve) => {
    const onWrite = (event: { Records: { s3: { object: { key: string } } }[] }) => {
      if (!event.Records[0].s3.object.key.startsWith('map-results/')) return;
      t.stack.s3.server.off('event', onWrite);
      resolve(holdTheAccount());
    };
    t.stack.s3.server.on('event', onWrite);
  });
  const [summaries, initializers] = [refusals('summarizer'), refusals('initializer')];
  const first = t.run('first', payload('first'));
  const release = await held;
  let second: ReturnType<typeof t.run>;
  try {
    // The second run is uploaded while the account is full: its initializer, invoked asynchronously, is throttled.
    second = t.run('second', payload('second'));
    await until(
      () => refusals('summarizer') - summaries >= REFUSALS && refusals('initializer') - initializers >= INITIALIZER_REFUSALS,
      'the summary and the second initializer to be refused',
    );
  } finally {
    release();
  }
  const [a, b] = await Promise.all([first, second]);
  const refused = { summarizer: refusals('summarizer') - summaries, initializer: refusals('initializer') - initializers };
  process.stderr.write(`small account: the summarizer was refused ${refused.summarizer} times, the initializer ${refused.initializer}\n`);
  expect(refused.summarizer).toBeGreaterThanOrEqual(REFUSALS);
  for (const { record } of [a, b])
    expect(record).toMatchObject({ status: 'SUCCEEDED', partitions: 2, predictions: 80, failedPartitions: 0 });
  // A throttled asynchronous event goes back to the queue: none of Lambda's two retries, no failed-event record.
  expect(refused.initializer).toBeGreaterThanOrEqual(INITIALIZER_REFUSALS);
  const failedEvents = join(work, 'stack', FAILED_EVENTS_FOLDER);
  expect(existsSync(failedEvents) ? readdirSync(failedEvents) : []).toEqual([]);
  expect(t.stack.account.inUse).toBe(0);
}, 120_000);
