import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  DescribeMapRunCommand,
  ExecutionAlreadyExists,
  ListMapRunsCommand,
  StartExecutionCommand,
  StopExecutionCommand,
} from '@aws-sdk/client-sfn';
import { createSfnClient } from '../../functions/commons/aws/clients';
import type { CrashedAttempt, ExecutionStatusChange, RankInvocation, RankItem, RankResult } from '../../functions/commons/run/contracts';
import type { InitializeOutcome } from '../../functions/commons/run/initialize';
import { BYTES_PER_GALAXY } from '../../functions/commons/partitions/galaxy';
import { synthesizeDataset } from '../../toolkit/datasets/synth';
import { sinkFor } from '../../toolkit/locations';
import { matchesEventPattern } from '../../local/event-pattern';
import { LambdaError, TooManyRequestsError } from '../../local/lambda-runtime';
import { ROOT } from '../../local/paths';
import { eventSources } from '../../local/template';
import { testStack } from '../helpers/stack';
import { tempFolder } from '../helpers/temp';

/**
 * How executions end, and what the run's record says after each: the statuses AWS has beside
 * SUCCEEDED (FAILED, TIMED_OUT, ABORTED) reach the summarizer through template.yaml's EventBridge
 * rule, and no run stays RUNNING.
 */
const work = tempFolder('cai-ends-');
const DATA = 'ends-data';
const EPHEMERAL_MB = 2048;
let t: Awaited<ReturnType<typeof testStack>>;

beforeAll(async () => {
  // Ephemeral storage above the included 512 MB, billed per GB-second of each inference attempt.
  t = await testStack(join(work, 'stack'), { DataBucketName: DATA, InferenceEphemeralStorage: String(EPHEMERAL_MB) });
  await t.bucket(DATA);
  await synthesizeDataset({
    samples: 80,
    maxBytes: 4096 + 40 * BYTES_PER_GALAXY,
    seed: 3,
    sink: sinkFor({ kind: 's3', bucket: DATA, key: 'two' }, () => t.s3),
  });
});
afterAll(() => t?.stack.close());
afterEach(() => {
  t.stack.functions.inference.intercept = undefined;
  t.stack.functions.summarizer.intercept = undefined;
  t.stack.sfn.executionTimeoutMs = undefined;
});

const payload = (name: string, prefix = 'two') => ({
  bucket: 'cai-control',
  data_bucket: DATA,
  data_prefix: prefix,
  batch_size: 16,
  result_path: `results/${name}`,
});
const sfn = () => createSfnClient({ ...process.env, ...t.stack.env, CAI_SFN_ENDPOINT: t.stack.sfn.endpoint });

/** Holds every inference invocation until released: a run that stays RUNNING as long as a test needs. */
function holdRanks() {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  t.stack.functions.inference.intercept = async () => {
    await released;
  };
  return release;
}

/** Uploads a payload.json and resolves with the initializer's outcome (the run may still be RUNNING). */
async function upload(name: string, prefix?: string): Promise<InitializeOutcome> {
  const before = t.outcomes.length;
  await t.s3.send(
    new PutObjectCommand({ Bucket: 'cai-control', Key: `runs/${name}/payload.json`, Body: JSON.stringify(payload(name, prefix)) }),
  );
  while (t.outcomes.length === before) await new Promise((r) => setTimeout(r, 20));
  return t.outcomes[t.outcomes.length - 1];
}

async function settled(runId: string) {
  await t.stack.idle();
  return (await t.stack.runs.get(runId))!;
}

const event = (status: string, stateMachineArn = t.stack.sfn.stateMachineArn): ExecutionStatusChange =>
  ({
    source: 'aws.states',
    'detail-type': 'Step Functions Execution Status Change',
    detail: { executionArn: `${stateMachineArn}:x`, stateMachineArn, name: 'x', status, input: '{}' },
  }) as ExecutionStatusChange;

test("the local stack routes executions' ends by template.yaml's rule; without the rule, nothing reaches the summarizer", () => {
  const routed = (rules: ReturnType<typeof eventSources>['rules'], e: ExecutionStatusChange) =>
    rules.filter((r) => matchesEventPattern(r.pattern, e)).map((r) => r.functionId);
  const { rules } = t.stack.sources();
  for (const status of ['FAILED', 'TIMED_OUT', 'ABORTED']) expect(routed(rules, event(status))).toEqual(['SummarizerFunction']);
  expect(routed(rules, event('SUCCEEDED'))).toEqual([]);
  expect(routed(rules, event('FAILED', 'arn:aws:states:us-east-1:000000000000:stateMachine:another'))).toEqual([]);

  // The control: the same template without its rule (a copy of the project with the Events entry deleted).
  const root = tempFolder('cai-norule-');
  for (const file of ['samconfig.toml', 'statemachine']) cpSync(join(ROOT, file), join(root, file), { recursive: true });
  const template = readFileSync(join(ROOT, 'template.yaml'), 'utf8');
  const withoutRule = template.replace(/\n {8}ExecutionEnded:\n(?: {10,}.*\n)+/, '\n');
  expect(withoutRule).not.toBe(template);
  writeFileSync(join(root, 'template.yaml'), withoutRule);
  const bare = eventSources(root, { resources: { CaiStateMachine: t.stack.sfn.stateMachineArn } }).rules;
  for (const status of ['FAILED', 'TIMED_OUT', 'ABORTED']) expect(routed(bare, event(status))).toEqual([]);
});

test('an execution stopped (ABORTED) while its ranks run: the run is recorded FAILED, with why', async () => {
  const release = holdRanks();
  const outcome = await upload('aborted');
  expect(outcome.outcome).toBe('STARTED');
  const { executionArn, ranks } = outcome as { executionArn: string; ranks: number };
  // While the ranks are held, the Map Run counts them running (DescribeMapRun, as `cai runs watch` reads it).
  const describe = async () => {
    const { mapRuns } = await sfn().send(new ListMapRunsCommand({ executionArn }));
    return mapRuns?.length ? sfn().send(new DescribeMapRunCommand({ mapRunArn: mapRuns[0].mapRunArn })) : undefined;
  };
  let held = await describe();
  while (!held?.itemCounts?.running) {
    await new Promise((r) => setTimeout(r, 20));
    held = await describe();
  }
  expect(held).toMatchObject({ status: 'RUNNING', itemCounts: { total: ranks, succeeded: 0, failed: 0, aborted: 0 } });
  expect(held.itemCounts!.pending! + held.itemCounts!.running!).toBe(ranks);
  await sfn().send(new StopExecutionCommand({ executionArn, cause: 'stopped by hand' }));
  release();
  const record = await settled(outcome.runId);
  expect(record).toMatchObject({ status: 'FAILED', error: 'States.ABORTED: stopped by hand' });
  expect(record.finishedAt).toEqual(expect.any(String));
  // The Map Run ends with its execution: ABORTED, its running children aborted.
  const stopped = await describe();
  expect(stopped).toMatchObject({ status: 'ABORTED', stopDate: expect.any(Date), itemCounts: { running: 0, succeeded: 0 } });
  expect(stopped!.itemCounts!.aborted).toBe(held.itemCounts!.running);
});

test('an execution past its time limit (TIMED_OUT): the run is recorded FAILED', async () => {
  t.stack.sfn.executionTimeoutMs = 1_500;
  const release = holdRanks();
  const outcome = await upload('timed-out');
  // Its ranks are held until it has ended, which only its time limit can do: waited for, however long the machine
  // takes (given up, and the ranks let go, only where the test's own time would run out).
  const executionArn = (outcome as { executionArn: string }).executionArn;
  const giveUp = Date.now() + 90_000;
  let execution: DescribeExecutionCommandOutput;
  try {
    do {
      await new Promise((r) => setTimeout(r, 50));
      execution = await sfn().send(new DescribeExecutionCommand({ executionArn }));
    } while (execution.status === 'RUNNING' && Date.now() < giveUp);
  } finally {
    release();
  }
  expect(execution.status).toBe('TIMED_OUT');
  const record = await settled(outcome.runId);
  expect(record).toMatchObject({ status: 'FAILED', error: 'States.Timeout: the execution ran longer than 1.5 s' });
});

/** A run started as the initializer would start it, with `items` as its manifest (none: no manifest), once it has ended. */
async function startDirectly(name: string, items: unknown[] | undefined) {
  const runId = `${name}-${Date.now()}`;
  await t.startByHand(runId, `results/${name}`, items, `${DATA}/two/`);
  return settled(runId);
}

test('a manifest item over 256 KiB (States.DataLimitExceeded, past every Catch): the rule records the run FAILED', async () => {
  const item: RankItem = {
    runId: 'x',
    rank: 0,
    worldSize: 1,
    batchSize: 16,
    dataBucket: DATA,
    partitions: Array.from({ length: 3000 }, (_, i) => ({ key: `two/${'p'.repeat(80)}-${i}.pt`, bytes: 1 })),
    resultBucket: 'cai-control',
    resultPath: 'results/big',
  };
  const record = await startDirectly('big', [item]);
  expect(record.status).toBe('FAILED');
  expect(record.error).toMatch(/^States\.DataLimitExceeded: item 0 of the Infer state has a size exceeding the maximum number of bytes/);
});

test('a manifest that cannot be read (the Map fails: States.ItemReaderFailed) is caught and recorded FAILED by RecordFailure', async () => {
  const summaries = t.stack.functions.summarizer.billed.length;
  const record = await startDirectly('no-manifest', undefined);
  expect(record).toMatchObject({ status: 'FAILED', partitions: 0, failedPartitions: 0 });
  expect(record.error).toMatch(
    /^States\.ItemReaderFailed: cannot read the items of the Infer state from s3:\/\/cai-control\/results\/no-manifest\/.*NoSuchKey/,
  );
  // RecordFailure recorded it (one summarizer invocation); the rule's event then found it recorded.
  expect(t.stack.functions.summarizer.billed.length - summaries).toBe(2);
});

test('Summarize failing after every rank wrote its results: FAILED as its execution is, saying the predictions are whole', async () => {
  let summarizeCalls = 0;
  t.stack.functions.summarizer.intercept = async (e) => {
    // Summarize's input has mapRun; RecordFailure's has failure instead.
    if ((e as { mapRun?: unknown }).mapRun && summarizeCalls++ === 0) throw new LambdaError('Runtime.ExitError', 'the summary crashed');
  };
  const outcome = await upload('summary-crash');
  const record = await settled(outcome.runId);
  expect(summarizeCalls).toBe(1);
  expect(record).toMatchObject({ status: 'FAILED', partitions: 2, predictions: 80, failedPartitions: 0 });
  expect(record.error).toBe(
    'Runtime.ExitError: the summary crashed (every one of the 2 partitions has its predictions; the summary was written after the failure)',
  );
});

test("a payload.json outside runs/ starts nothing: the local stack routes by the template's filter, prefix and suffix", async () => {
  const before = t.outcomes.length;
  for (const key of ['payload.json', 'data/outside/payload.json']) {
    await t.s3.send(new PutObjectCommand({ Bucket: 'cai-control', Key: key, Body: JSON.stringify(payload('outside')) }));
  }
  // The control, uploaded after them: under runs/, the same payload starts its run.
  const inside = await upload('inside');
  await t.stack.idle();
  expect(t.outcomes.slice(before).map((o) => [o.runId, o.outcome])).toEqual([[inside.runId, 'STARTED']]);
});

test('the same event delivered again while the run is RUNNING starts nothing twice', async () => {
  const events: unknown[] = [];
  const capture = (e: unknown) => events.push(e);
  t.stack.s3.server.on('event', capture);
  const release = holdRanks();
  const first = await upload('redelivered');
  t.stack.s3.server.off('event', capture);
  expect(first.outcome).toBe('STARTED');
  expect((await t.stack.runs.get(first.runId))!.status).toBe('RUNNING');
  const before = t.outcomes.length;
  t.stack.s3.server.emit('event', events[0]);
  while (t.outcomes.length === before) await new Promise((r) => setTimeout(r, 20));
  // StartExecution of a running execution's name and input answers with that execution: one execution.
  expect(t.outcomes[t.outcomes.length - 1]).toMatchObject({
    runId: first.runId,
    outcome: 'STARTED',
    executionArn: (first as { executionArn: string }).executionArn,
  });
  expect(t.stack.sfn.executionNames().filter((n) => n === first.runId)).toHaveLength(1);
  release();
  expect(await settled(first.runId)).toMatchObject({ status: 'SUCCEEDED', predictions: 80 });
});

test('StartExecution of a closed execution answers ExecutionAlreadyExists, and a delivery meeting it starts nothing and records nothing', async () => {
  const events: unknown[] = [];
  const capture = (e: unknown) => events.push(e);
  t.stack.s3.server.on('event', capture);
  const { outcome, record } = await t.run('closed', payload('closed'));
  t.stack.s3.server.off('event', capture);
  expect(record.status).toBe('SUCCEEDED');
  const execution = (outcome as { executionArn: string }).executionArn;
  const input = JSON.stringify({
    runId: outcome.runId,
    manifest: { Bucket: 'cai-control', Key: `results/closed/${outcome.runId}/manifest.json` },
    resultBucket: 'cai-control',
    resultPath: 'results/closed',
    maxConcurrency: 2,
  });
  const again = sfn().send(new StartExecutionCommand({ stateMachineArn: t.stack.sfn.stateMachineArn, name: outcome.runId, input }));
  await expect(again).rejects.toBeInstanceOf(ExecutionAlreadyExists);
  await expect(again).rejects.toThrow(execution);

  // The moment between the execution's end and its summary: the record still RUNNING, the name taken.
  await t.stack.runs.update(outcome.runId, { status: 'RUNNING' });
  const before = t.outcomes.length;
  t.stack.s3.server.emit('event', events[0]);
  while (t.outcomes.length === before) await new Promise((r) => setTimeout(r, 20));
  await t.stack.idle();
  expect(t.outcomes[t.outcomes.length - 1]).toEqual({ runId: outcome.runId, outcome: 'DUPLICATE' });
  expect((await t.stack.runs.get(outcome.runId))!.status).toBe('RUNNING');
  expect(t.stack.sfn.executionNames().filter((n) => n === outcome.runId)).toHaveLength(1);
});

/** A run from upload to rest, and what the stack's servers and runtimes saw of it, counted there, not by CAI. */
async function tallied(name: string, prefix: string) {
  const { inference, initializer, summarizer } = t.stack.functions;
  const reports = [initializer, inference, summarizer].map((f) => f.billed.length);
  const s3Before = t.stack.s3.requests.length;
  const dynamoBefore = t.stack.dynamo.operations.length;
  const outcome = await upload(name, prefix);
  await t.stack.idle(); // no polling of the table: every request from here on is the run's own
  const s3 = t.stack.s3.requests.slice(s3Before + 1); // after the upload of payload.json itself
  const dynamo = t.stack.dynamo.operations.slice(dynamoBefore);
  // The units DynamoDB answered each request consumed (the local server's own record, its indexes' included); one a request that asked none.
  const units = t.stack.dynamo.consumedUnits.slice(dynamoBefore, dynamoBefore + dynamo.length);
  const unitsOf = (operations: string[]) => dynamo.reduce((s, o, i) => s + (operations.includes(o) ? (units[i] ?? 1) : 0), 0);
  const record = (await t.stack.runs.get(outcome.runId))!;
  const cost = record.cost!;
  const billed = [initializer, inference, summarizer].flatMap((f, i) => f.billed.slice(reports[i]));
  const count = (kind: string) => s3.filter((r) => r.kind === kind).length;
  const writeOperations = ['PutItem', 'UpdateItem', 'DeleteItem'];
  const readOperations = ['GetItem', 'Query'];
  const writes = unitsOf(writeOperations);
  const reads = unitsOf(readOperations);
  expect(s3.filter((r) => r.kind === 'other')).toEqual([]);
  expect(dynamo.filter((o) => [...writeOperations, ...readOperations].includes(o))).toHaveLength(dynamo.length);
  return {
    record,
    cost,
    billed,
    s3: { get: count('get'), put: count('put'), list: count('list') },
    dynamo: { writes, reads },
    /**
     * The record's two writes no counter sees are sized by DynamoDB's documented rule (numbers
     * "approximately"), the local server by its own reckoning of the stored item: each may fall a KB
     * apart, one unit for the table and each of its two indexes.
     */
    unseenWriteSlack: 2 * 3,
    transitions: t.stack.sfn.transitionsOf(outcome.runId),
    initializerBilled: initializer.billed.slice(reports[0]),
    // Lambda bills each REPORT line's Billed Duration at its Memory Size.
    gbSeconds: billed.reduce((s, b) => s + gbSecondsOf(b), 0),
    // And the inference function's ephemeral storage above 512 MB over the same Billed Duration.
    storageGbSeconds: inference.billed.slice(reports[1]).reduce((s, b) => s + ((EPHEMERAL_MB - 512) / 1024) * (b.billedMs / 1000), 0),
    storageSlack: (inference.billed.length - reports[1]) * ((EPHEMERAL_MB - 512) / 1024) * 0.3,
    // What a handler's clock cannot see (its runtime's start and end, a rank's result PUT, the
    // initializer's and the summarizer's last calls after their count; a crash billed up to the first
    // moment known after it): here under 0.3 s an invocation (0.5 s before a rank's duration was its
    // whole invocation).
    slack: billed.reduce((s, b) => s + (b.memoryMb / 1024) * 0.3, 0),
  };
}

const gbSecondsOf = (b: { memoryMb: number; billedMs: number }) => (b.memoryMb / 1024) * (b.billedMs / 1000);

/**
 * A run's self-measured Lambda bill against its REPORT lines, invocation by invocation where the run
 * says what it billed each (the initializer's in its record, each rank's in its result, each crashed
 * attempt's in summary.json; the summarizer's own only within the total), with no allowance for time:
 * - memory: each at its configured size, as Lambda bills it;
 * - INIT: a cold start's, billed as the handler measured it, which is inside Lambda's (the runtime
 *   starts before the handler's module does); a warm invocation's none;
 * - duration: a handler's clock runs inside its invocation, so what it bills is at most Lambda's,
 *   and what it cannot see (its runtime's start and end, its last writes after its count) is part of
 *   the invocation after INIT: never more than that;
 * - a crashed attempt: billed up to the failure the state machine saw, after the death: at least Lambda's.
 */
async function expectBilledAsLambda(run: Awaited<ReturnType<typeof tallied>>, name: string) {
  const { record, billed } = run;
  const folder = `results/${name}/${record.runId}`;
  const summary = JSON.parse(await t.readText('cai-control', `${folder}/summary.json`));
  const ranks = await Promise.all(
    Array.from(
      { length: record.ranks! },
      async (_, r) => JSON.parse(await t.readText('cai-control', `${folder}/ranks/${r}.json`)) as RankResult,
    ),
  );
  const [initializerReport] = run.initializerBilled;
  const own = [
    {
      report: initializerReport,
      memoryMb: record.initializer!.memoryMb,
      initMs: record.initializer!.initMs,
      durationMs: record.initializer!.durationMs,
    },
    ...ranks.map((r) => ({
      report: billed.find((b) => b.requestId === r.request_id)!,
      memoryMb: r.memory_configured_mb,
      initMs: r.init_s * 1000,
      durationMs: r.duration_ms,
    })),
  ];
  const crashes = (summary.crashedAttempts as CrashedAttempt[]).map((c) => ({
    ...c,
    report: billed.find((b) => b.requestId === c.requestId)!,
  }));
  for (const invocation of [...own, ...crashes]) {
    expect(invocation.report).toBeDefined();
    expect(invocation.memoryMb).toBe(invocation.report.memoryMb);
    if (invocation.report.initMs === 0) expect(invocation.initMs).toBe(0);
    else expect([invocation.initMs > 0, invocation.initMs <= invocation.report.initMs]).toEqual([true, true]);
  }
  for (const { report, durationMs } of own) expect(durationMs).toBeLessThanOrEqual(report.durationMs);
  for (const crash of crashes)
    expect(crash.durationMs + crash.initMs).toBeGreaterThanOrEqual(crash.report.durationMs + crash.report.initMs);
  // The whole bill: what the crashed attempts add aside, at most Lambda's, and short of it by no more than the invocations past INIT.
  const crashed = crashes.reduce((s, c) => s + gbSecondsOf({ memoryMb: c.memoryMb, billedMs: Math.ceil(c.durationMs + c.initMs) }), 0);
  const others = billed.filter((b) => !crashes.some((c) => c.report === b));
  const lambda = others.reduce((s, b) => s + gbSecondsOf(b), 0);
  expect(run.cost.lambda.gbSeconds - crashed).toBeLessThanOrEqual(lambda + 1e-9);
  expect(lambda - (run.cost.lambda.gbSeconds - crashed)).toBeLessThanOrEqual(
    others.reduce((s, b) => s + (b.memoryMb / 1024) * (b.durationMs / 1000), 0),
  );
}

test("a run's cost is an independent tally: its REPORT lines, the interpreter's transitions, the requests the servers saw; a crashed attempt included", async () => {
  // Two partitions of 1,000 galaxies: a rank runs for long enough to be killed mid-handler.
  await synthesizeDataset({
    samples: 2000,
    maxBytes: 4096 + 1000 * BYTES_PER_GALAXY,
    seed: 5,
    sink: sinkFor({ kind: 's3', bucket: DATA, key: 'tally' }, () => t.s3),
  });
  // A clean run: every figure exact (GB-s as the handlers' clocks saw them, within Lambda's). It also warms the
  // containers, as the crash's timer below runs from the end of INIT.
  const clean = await tallied('tally-clean', 'two');
  expect(clean.record).toMatchObject({ status: 'SUCCEEDED', attempts: { failed: 0, crashed: 0 } });
  expect(clean.cost.lambda.invocations).toBe(clean.billed.length);
  expect(clean.billed).toHaveLength(4); // initializer, two ranks, summarizer
  await expectBilledAsLambda(clean, 'tally-clean');
  expect(clean.cost.stepFunctions.transitions).toBe(clean.transitions);
  // Map and Summarize, and per rank its child execution's start and its task (AWS bills the child's start).
  expect(clean.transitions).toBe(2 + 2 * clean.record.ranks!);
  expect(Math.abs(clean.storageGbSeconds - clean.cost.lambda.storageGbSeconds)).toBeLessThan(clean.storageSlack);
  expect(clean.cost.lambda.storageGbSeconds).toBeGreaterThan(0);
  expect({ get: clean.cost.s3.get, put: clean.cost.s3.put, list: clean.cost.s3.list }).toEqual(clean.s3);
  expect(clean.cost.dynamodb.reads).toBe(clean.dynamo.reads);
  expect(Math.abs(clean.cost.dynamodb.writes - clean.dynamo.writes)).toBeLessThanOrEqual(clean.unseenWriteSlack);

  // The first attempt of one rank dies mid-handler (Runtime.ExitError), well into its 1,000 galaxies: retried, and billed.
  let crashes = 0;
  t.stack.functions.inference.intercept = async () => (crashes++ === 0 ? { crashAfterMs: 300 } : undefined);
  const crashed = await tallied('tally-crash', 'tally');
  expect(crashed.record).toMatchObject({ status: 'SUCCEEDED', attempts: { failed: 0, crashed: 1 } });
  expect(crashed.billed.filter((b) => b.status === 'error')).toHaveLength(1);
  expect(crashed.cost.lambda.invocations).toBe(crashed.billed.length);
  await expectBilledAsLambda(crashed, 'tally-crash');
  // Every retry is a transition.
  expect(crashed.cost.stepFunctions.transitions).toBe(crashed.transitions);
  expect(crashed.cost.stepFunctions.transitions).toBe(clean.cost.stepFunctions.transitions + 1);
  expect(Math.abs(crashed.storageGbSeconds - crashed.cost.lambda.storageGbSeconds)).toBeLessThan(crashed.storageSlack);
  // The dead attempt's reads are unknown: billed at the most its partition can take, never fewer than it made.
  const { bound, billed } = await crashedReads(crashed.record.runId);
  expect(billed).toBe(bound);
  expect(crashed.cost.s3.get).toBeGreaterThanOrEqual(crashed.s3.get);
  expect(crashed.cost.s3.get - crashed.s3.get).toBeLessThan(bound);
  expect({ put: crashed.cost.s3.put, list: crashed.cost.s3.list }).toEqual({ put: crashed.s3.put, list: crashed.s3.list });
  expect(crashed.cost.dynamodb.reads).toBe(crashed.dynamo.reads);
  expect(Math.abs(crashed.cost.dynamodb.writes - crashed.dynamo.writes)).toBeLessThanOrEqual(crashed.unseenWriteSlack);
});

test("an attempt that dies before writing its record is in the run's cost: its rank's attempt number shows it", async () => {
  // Rank 1's first attempt cannot write its record (S3 throttles it: the SDK retries for seconds) and is killed 1.5 s in,
  // before any of its retries lands; its retry, attempt 1, finds S3 well again and succeeds.
  const firstRecord = /^cai-control\/results\/tally-early\/[^/]+\/attempts\/1-/;
  // Warm containers: the kill's timer runs from the end of INIT.
  await t.run('early-warm', payload('early-warm'));
  t.stack.functions.inference.intercept = async (event) => {
    const { item, attempt } = event as RankInvocation;
    if (item.rank !== 1) return;
    t.stack.s3.injectFaults(...(attempt === 0 ? [{ code: 'SlowDown' as const, method: 'PUT', key: firstRecord }] : []));
    return attempt === 0 ? { crashAfterMs: 1_500 } : undefined;
  };
  const early = await tallied('tally-early', 'two');
  t.stack.s3.injectFaults();
  expect(early.billed.filter((b) => b.status === 'error')).toHaveLength(1);
  // The run's cost, against what the stack itself saw: every REPORT line billed, the GB-s within what handlers cannot see.
  expect(early.cost.lambda.invocations).toBe(early.billed.length);
  expect(Math.abs(early.gbSeconds - early.cost.lambda.gbSeconds)).toBeLessThan(early.slack);
  expect(early.record).toMatchObject({ status: 'SUCCEEDED', attempts: { failed: 0, crashed: 1 } });
  const summary = JSON.parse(await t.readText('cai-control', `results/tally-early/${early.record.runId}/summary.json`));
  // No record of it: found in its child execution's history, which the attempt number of rank 1's result had read.
  expect(summary.crashedAttempts).toEqual([expect.objectContaining({ rank: 1, requestId: '-', billedUntil: 'failure' })]);
  expect(JSON.parse(await t.readText('cai-control', `results/tally-early/${early.record.runId}/ranks/1.json`)).attempt).toBe(1);
  expect(early.cost.stepFunctions.transitions).toBe(early.transitions);
  expect(early.cost.s3.get).toBeGreaterThanOrEqual(early.s3.get);
  // The throttled PUTs are not billed (S3 answered them 503) nor seen among the server's requests.
  expect({ put: early.cost.s3.put, list: early.cost.s3.list }).toEqual({ put: early.s3.put, list: early.s3.list });
  expect(early.cost.dynamodb.reads).toBe(early.dynamo.reads);
  expect(Math.abs(early.cost.dynamodb.writes - early.dynamo.writes)).toBeLessThanOrEqual(early.unseenWriteSlack);
});

test("a throttled attempt is a retry, so a transition, though Lambda ran and billed nothing: the rank's attempt number shows it", async () => {
  // Rank 0's first two invocations are refused as Lambda refuses one over the account's concurrency; its attempt 2 runs.
  let refusals = 0;
  t.stack.functions.inference.intercept = async (event) => {
    if ((event as RankInvocation).item.rank === 0 && refusals < 2) {
      refusals++;
      throw new TooManyRequestsError();
    }
  };
  const throttled = await tallied('tally-throttled', 'two');
  expect(refusals).toBe(2);
  expect(throttled.record).toMatchObject({ status: 'SUCCEEDED', attempts: { failed: 0, crashed: 0 } });
  expect(JSON.parse(await t.readText('cai-control', `results/tally-throttled/${throttled.record.runId}/ranks/0.json`)).attempt).toBe(2);
  // Two ranks, no REPORT line for a refusal: four invocations billed, and two more transitions than a clean run's.
  expect(throttled.billed).toHaveLength(4);
  expect(throttled.transitions).toBe(2 + 2 * throttled.record.ranks! + 2);
  expect(throttled.cost.stepFunctions.transitions).toBe(throttled.transitions);
  expect(throttled.cost.lambda.invocations).toBe(throttled.billed.length);
});

test("a rank's billed duration is its whole invocation: a slow start record's PUT is in it, as in its REPORT line", async () => {
  // Every attempt's start record (written before the rank begins) is answered a second late.
  const DELAY_MS = 1_000;
  t.stack.s3.injectFaults({ delayMs: DELAY_MS, method: 'PUT', key: /^cai-control\/results\/slow-start\/[^/]+\/attempts\// });
  const { inference } = t.stack.functions;
  const before = inference.billed.length;
  const { runId } = await upload('slow-start', 'two');
  await t.stack.idle();
  t.stack.s3.injectFaults();
  const record = (await t.stack.runs.get(runId!))!;
  expect(record.status).toBe('SUCCEEDED');
  const reports = inference.billed.slice(before);
  expect(reports).toHaveLength(record.ranks!);
  for (let rank = 0; rank < record.ranks!; rank++) {
    const result = JSON.parse(await t.readText('cai-control', `results/slow-start/${runId}/ranks/${rank}.json`)) as RankResult;
    const report = reports.find((r) => r.requestId === result.request_id)!;
    expect(result.duration_ms).toBeGreaterThanOrEqual(DELAY_MS);
    // Outside the handler's clock only the result's own PUT and the runtime's edges: far less than the delayed PUT.
    expect(report.durationMs - result.duration_ms).toBeLessThan(DELAY_MS / 2);
  }
});

/**
 * The most reads the crashed attempt can have made (`bound`), from its partitions' sizes as the
 * bucket lists them and docs/architecture.md's rule (readRequestsBound): 16 GETs to open an archive,
 * then one per 8 MiB part and one per 16 MiB chunk; which partitions were its: the manifest's item
 * of its rank. Beside it, the reads summary.json billed the attempt with (`billed`).
 */
async function crashedReads(runId: string): Promise<{ bound: number; billed: number }> {
  const summary = JSON.parse(await t.readText('cai-control', `results/tally-crash/${runId}/summary.json`));
  const items = JSON.parse(await t.readText('cai-control', `results/tally-crash/${runId}/manifest.json`)) as RankItem[];
  const keys = items.find((item) => item.rank === summary.crashedAttempts[0].rank)!.partitions.map((p) => p.key);
  const listed = (await t.s3.send(new ListObjectsV2Command({ Bucket: DATA, Prefix: 'tally/' }))).Contents ?? [];
  const MiB = 2 ** 20;
  const bound = keys.reduce((n, key) => {
    const bytes = listed.find((o) => o.Key === key)!.Size!;
    return n + 16 + Math.ceil(bytes / (8 * MiB)) + Math.ceil(bytes / (16 * MiB));
  }, 0);
  return { bound, billed: summary.crashedAttempts[0].requests.s3Get };
}
