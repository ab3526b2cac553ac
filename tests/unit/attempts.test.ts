import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { runDetails } from '../../cli/run-format';
import { billLambda, pricesFor } from '../../functions/commons/billing/cost';
import { readRequestsBound } from '../../functions/commons/partitions/chunks';
import {
  billCrashes,
  type CrashContext,
  HISTORY_READ_CONCURRENCY,
  rankFailureText,
  taskFailures,
} from '../../functions/commons/run/attempts';
import type {
  AttemptStart,
  CrashedAttempt,
  MapChildExecution,
  MapResultManifest,
  RankItem,
  RankResult,
} from '../../functions/commons/run/contracts';
import { outputKeys } from '../../functions/commons/run/output-keys';
import type { RunStore } from '../../functions/commons/run/run-store';
import { SUMMARY_WRITE_MARGIN_MS, summarizeRun } from '../../functions/commons/run/summarize';

/**
 * An invocation whose runtime died is billed from its start record up to the earliest moment known
 * after the death (docs/architecture.md, Cost): these pin each bound, and that a run with one such
 * attempt costs exactly that attempt more than the same run without it.
 */
const T = Date.parse('2026-11-27T12:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const item = (rank: number, bytes = 20_000_000): RankItem => ({
  runId: 'run-1',
  rank,
  worldSize: 2,
  dataBucket: 'data',
  partitions: [{ key: `p/${rank}.pt`, bytes }],
  resultBucket: 'out',
  resultPath: 'results',
});
const start = (rank: number, requestId: string, at: number, extra: Partial<AttemptStart> = {}): AttemptStart => ({
  rank,
  requestId,
  startedAt: iso(at),
  memoryMb: 1769,
  initMs: 0,
  deadline: iso(at + 900_000),
  ...extra,
});
const context = (extra: Partial<CrashContext> = {}): CrashContext => ({
  items: [item(0), item(1)],
  failed: [],
  results: [],
  ends: new Map(),
  memoryMb: 1769,
  now: T + 3_600_000,
  ...extra,
});

test("with the rank's history, a crash is billed up to the failure the state machine saw, with its error", async () => {
  const failuresOf = async () => [
    { startedAt: T - 20, at: T + 4_321, error: 'Runtime.OutOfMemory: RequestId: a Error: Runtime exited with error: signal: killed' },
  ];
  const {
    crashed: [crash],
  } = await billCrashes(
    [start(0, 'a', T, { initMs: 812 })],
    context({ ends: new Map([[0, { executionArn: 'arn:child-0' }]]), failuresOf }),
  );
  expect(crash).toEqual({
    rank: 0,
    requestId: 'a',
    startedAt: iso(T),
    memoryMb: 1769,
    initMs: 812,
    durationMs: 4_321,
    billedUntil: 'failure',
    error: 'Runtime.OutOfMemory: RequestId: a Error: Runtime exited with error: signal: killed',
    requests: { s3Get: readRequestsBound(20_000_000), s3Put: 0, s3List: 0, dynamoWrite: 0, dynamoRead: 0 },
  });
});

test('an invocation that died before writing its record is found in the history and billed from its task’s start', async () => {
  const failuresOf = async () => [
    { startedAt: T, at: T + 700, error: 'Runtime.ExitError: early' }, // no record: it died in INIT or its first moments
    { startedAt: T + 900, at: T + 2_000, error: 'RankError: caught' }, // its handler recorded this one
  ];
  const { crashed } = await billCrashes([], {
    ...context({ ends: new Map([[1, { executionArn: 'arn:child-1', caught: { Error: 'RankError' } }]]), failuresOf }),
    failed: [
      {
        rank: 1,
        requestId: 'b',
        startedAt: iso(T + 950),
        durationMs: 1_000,
        initMs: 0,
        memoryMb: 1769,
        error: 'caught',
        requests: {} as never,
      },
    ],
  });
  expect(crashed).toEqual([
    expect.objectContaining({
      rank: 1,
      requestId: '-',
      startedAt: iso(T),
      durationMs: 700,
      memoryMb: 1769,
      billedUntil: 'failure',
      error: 'Runtime.ExitError: early',
    }),
  ]);
});

test('without a history: the next attempt’s start, else the rank’s end with its caught error, else now; never past the timeout', async () => {
  const result = { rank: 0, started_at: iso(T + 5_000) } as RankResult;
  const ends = new Map([
    [
      1,
      {
        stoppedAt: T + 9_000,
        caught: { Error: 'Runtime.OutOfMemory', Cause: '{"errorMessage":"RequestId: x Error: Runtime exited with error: signal: killed"}' },
      },
    ],
  ]);
  const { crashed } = await billCrashes(
    [start(0, 'a', T), start(1, 'b', T + 1_000), start(1, 'c', T + 4_000), start(2, 'd', T, { deadline: iso(T + 60_000) })],
    { ...context({ results: [result], ends }), items: [item(0), item(1), item(2)] },
  );
  expect(
    crashed.map(({ rank, requestId, durationMs, billedUntil, error }) => ({ rank, requestId, durationMs, billedUntil, error })),
  ).toEqual([
    {
      rank: 0,
      requestId: 'a',
      durationMs: 5_000,
      billedUntil: 'next attempt',
      error: expect.stringMatching(/state machine's error is unknown/),
    },
    { rank: 1, requestId: 'b', durationMs: 3_000, billedUntil: 'next attempt', error: expect.stringMatching(/unknown/) },
    {
      rank: 1,
      requestId: 'c',
      durationMs: 5_000,
      billedUntil: 'rank end',
      error: 'Runtime.OutOfMemory: RequestId: x Error: Runtime exited with error: signal: killed',
    },
    { rank: 2, requestId: 'd', durationMs: 60_000, billedUntil: 'timeout', error: expect.stringMatching(/unknown/) },
  ]);
});

test("a history's failures come with their task's start; invocations Lambda refused (Lambda.*Exception) were never billed and are left out", async () => {
  const at = (ms: number) => new Date(T + ms);
  const pages = [
    {
      events: [
        { type: 'ExecutionStarted', timestamp: at(0) },
        { type: 'TaskStarted', timestamp: at(10) },
        {
          type: 'TaskFailed',
          timestamp: at(20),
          taskFailedEventDetails: { error: 'Lambda.TooManyRequestsException', cause: 'Rate Exceeded.' },
        },
        { type: 'TaskStarted', timestamp: at(2_000) },
      ],
      nextToken: 'more',
    },
    {
      events: [
        {
          type: 'TaskFailed',
          timestamp: at(3_000),
          taskFailedEventDetails: {
            error: 'Runtime.OutOfMemory',
            cause: '{"errorType":"Runtime.OutOfMemory","errorMessage":"RequestId: r Error: Runtime exited with error: signal: killed"}',
          },
        },
        { type: 'TaskStarted', timestamp: at(5_000) },
        { type: 'TaskSucceeded', timestamp: at(6_000) },
      ],
    },
  ];
  const asked: unknown[] = [];
  // A client whose requests are answered here (the SDK's paginators want the client class itself).
  const sfn = Object.assign(new SFNClient({ region: 'us-east-1' }), {
    send: async (command: { input: unknown }) => (asked.push(command.input), pages[asked.length - 1]),
  });
  expect(await taskFailures(sfn, 'arn:child')).toEqual([
    { startedAt: T + 2_000, at: T + 3_000, error: 'Runtime.OutOfMemory: RequestId: r Error: Runtime exited with error: signal: killed' },
  ]);
  expect(asked).toEqual([expect.objectContaining({ executionArn: 'arn:child' }), expect.objectContaining({ nextToken: 'more' })]);
});

/** An S3 of objects in memory, enough for the summarizer. */
function memoryS3(objects: Record<string, unknown>): S3Client {
  const body = (key: string) => ({ transformToString: async () => JSON.stringify(objects[key]) });
  return Object.assign(new S3Client({ region: 'us-east-1' }), {
    send: async (command: unknown) => {
      const { Key, Prefix, Body } = (command as { input: { Key?: string; Prefix?: string; Body?: string } }).input;
      if (command instanceof GetObjectCommand) {
        if (!(Key! in objects)) throw Object.assign(new Error('no such key'), { name: 'NoSuchKey' });
        return { Body: body(Key!) };
      }
      if (command instanceof PutObjectCommand) return void (objects[Key!] = JSON.parse(Body!));
      if (command instanceof ListObjectsV2Command)
        return {
          Contents: Object.keys(objects)
            .filter((k) => k.startsWith(Prefix!))
            .map((k) => ({ Key: k })),
        };
      throw new Error(`unexpected ${(command as object).constructor.name}`);
    },
  }) as S3Client;
}

test('a run with one crashed attempt costs exactly that attempt more than the same run without it', async () => {
  const keys = outputKeys('results', 'run-1');
  const requests = { s3Get: 30, s3Put: 2, s3List: 0, dynamoWrite: 0, dynamoRead: 0 };
  const result = (rank: number, at: number): RankResult =>
    ({
      rank,
      samples: 10,
      bytes: 20_000_000,
      partitions: [],
      failures: [],
      memory_configured_mb: 1769,
      duration_ms: 8_000,
      init_s: 0.5,
      requests,
      peak_rss_mb: 300,
      wall_s: { total: 8 },
      started_at: iso(at),
      request_id: `ok-${rank}`,
    }) as unknown as RankResult;
  const run = (withCrash: boolean) => {
    const objects: Record<string, unknown> = {
      [keys.manifest]: [item(0), item(1)],
      [keys.rank(0)]: result(0, T),
      [keys.rank(1)]: result(1, T + 12_345),
      [keys.attempt(0, 'ok-0')]: start(0, 'ok-0', T),
      [keys.attempt(1, 'ok-1')]: start(1, 'ok-1', T + 12_345),
      // Rank 1's first attempt: started, never completed (its runtime died); the retry started 12,345 ms later.
      ...(withCrash ? { [keys.attempt(1, 'dead')]: start(1, 'dead', T) } : {}),
    };
    const runs = { get: async () => undefined, update: async () => {} } as unknown as RunStore;
    return summarizeRun(
      { runId: 'run-1', resultBucket: 'out', resultPath: 'results' },
      {
        s3: memoryS3(objects),
        runs,
        region: 'us-east-1',
        architecture: 'x86_64',
        invocation: () => ({ memoryMb: 1024, durationMs: 1_000, initMs: 0 }),
      },
    );
  };
  const [crashed, plain] = [await run(true), await run(false)];
  expect(crashed.attempts).toEqual({ failed: 0, crashed: 1 });
  expect(plain.attempts).toEqual({ failed: 0, crashed: 0 });
  const { prices } = pricesFor('us-east-1');
  const attempt = billLambda({ memoryMb: 1769, durationMs: 12_345, initMs: 0 }, 'x86_64', prices);
  const [a, b] = [crashed.cost!, plain.cost!];
  expect(a.lambda.invocations - b.lambda.invocations).toBe(1);
  expect(a.lambda.gbSeconds - b.lambda.gbSeconds).toBeCloseTo((1769 / 1024) * 12.345, 9);
  expect(a.stepFunctions.transitions - b.stepFunctions.transitions).toBe(1); // its retry
  expect([a.s3.put - b.s3.put, a.s3.get - b.s3.get]).toEqual([1, readRequestsBound(20_000_000)]); // its start record, its reads at most
  const expected =
    attempt.computeUsd + attempt.requestUsd + prices.stepFunctionsTransition + prices.s3Put + readRequestsBound(20_000_000) * prices.s3Get;
  expect(a.totalUsd - b.totalUsd).toBeCloseTo(expected, 12);
});

test('a rank killed for memory fails in one line: the memory size, what it needs, what to do; Lambda.Unknown carrying it counts too', () => {
  const killed = '{"errorType":"Runtime.OutOfMemory","errorMessage":"RequestId: r Error: Runtime exited with error: signal: killed"}';
  const crash = (error: string) => ({ rank: 0, memoryMb: 1769, error }) as CrashedAttempt;
  const twice = [crash('Runtime.OutOfMemory: RequestId: a …'), crash('Runtime.OutOfMemory: RequestId: b …')];
  const planned = { ...item(0), batchSize: 4096, plannedMemoryMb: 2345 };
  expect(rankFailureText({ Error: 'Runtime.OutOfMemory', Cause: killed }, planned, twice, 1769)).toBe(
    'out of memory at 1769 MB on all 2 attempts: needs about 2345 MB; split the partition, lower batch_size or raise InferenceMemorySize',
  );
  // As AWS documents unhandled errors reaching Step Functions; and a plan that held it: the plan was short.
  expect(rankFailureText({ Error: 'Lambda.Unknown', Cause: killed }, { ...item(0), plannedMemoryMb: 1500 }, twice.slice(1), 1769)).toBe(
    'out of memory at 1769 MB: needs more than 1769 MB (planned at ~1500 MB: more than the plan holds for this model or batch); split the partition or raise InferenceMemorySize',
  );
  // Any other error is the state machine's, in one line.
  expect(rankFailureText({ Error: 'Runtime.ExitError', Cause: killed.replace('OutOfMemory', 'ExitError') }, item(0), [], 1769)).toBe(
    'Runtime.ExitError: RequestId: r Error: Runtime exited with error: signal: killed',
  );
});

// An attempt that died before writing its record (in INIT, or its first moments) leaves nothing in S3;
// the attempt number the state machine passes (its $$.State.RetryCount) shows it was there.
const okResult = (rank: number, attempt: number | undefined, at = T + 2_000): RankResult =>
  ({ rank, started_at: iso(at), request_id: `ok-${rank}`, attempt }) as RankResult;
const earlyDeath = { startedAt: T, at: T + 40, error: 'Runtime.ExitError: RequestId: x Error: Runtime exited with error: signal: killed' };

test('a rank whose successful attempt is numbered 1, with no record of the first: its history is read and the first billed', async () => {
  const read: string[] = [];
  const bill = (attempt: number | undefined) =>
    billCrashes([], {
      ...context({ results: [okResult(0, attempt)], ends: new Map([[0, { executionArn: 'arn:child-0' }]]) }),
      failuresOf: async (arn) => (read.push(arn), [earlyDeath]),
    });
  const numbered = await bill(1);
  expect(read).toEqual(['arn:child-0']);
  expect(numbered).toEqual({
    crashed: [
      expect.objectContaining({ rank: 0, requestId: '-', startedAt: iso(T), durationMs: 40, memoryMb: 1769, billedUntil: 'failure' }),
    ],
    historiesNotRead: 0,
    attemptsNotBilled: 0,
  });
  // The control: the same rank without its attempt number (as before it was passed) shows no trouble, and the death goes unbilled.
  read.length = 0;
  expect(await bill(undefined)).toEqual({ crashed: [], historiesNotRead: 0, attemptsNotBilled: 0 });
  expect(read).toEqual([]);
});

test('attempts the records account for need no history; throttled attempts (Lambda.*) shown by the number cost nothing', async () => {
  const read: string[] = [];
  const failedRecord = { rank: 0, requestId: 'f', startedAt: iso(T), durationMs: 900, initMs: 0, memoryMb: 1769, error: 'S3: down' };
  const { crashed } = await billCrashes([], {
    ...context({
      // Rank 0: attempt 1 succeeded, attempt 0 recorded its error. Rank 1: attempt 2 succeeded after two refusals.
      results: [okResult(0, 1), okResult(1, 2)],
      ends: new Map([
        [0, { executionArn: 'arn:child-0' }],
        [1, { executionArn: 'arn:child-1' }],
      ]),
    }),
    failed: [{ ...failedRecord, attempt: 0, requests: {} as never }],
    // taskFailures leaves out Lambda's refusals: rank 1's history has no failure that ran.
    failuresOf: async (arn) => (read.push(arn), []),
  });
  expect(read).toEqual(['arn:child-1']);
  expect(crashed).toEqual([]);
});

/** A child execution's history as GetExecutionHistory gives it: a first attempt that died, a second that succeeded. */
const deathThenSuccess = {
  events: [
    { type: 'ExecutionStarted', timestamp: new Date(T) },
    { type: 'TaskStarted', timestamp: new Date(T + 10) },
    { type: 'TaskFailed', timestamp: new Date(T + 50), taskFailedEventDetails: { error: 'Runtime.ExitError', cause: '{}' } },
    { type: 'TaskStarted', timestamp: new Date(T + 2_000) },
    { type: 'TaskSucceeded', timestamp: new Date(T + 9_000) },
  ],
};

/** A run of `ranks` ranks, each succeeding on its second attempt with no record of its first, with the Map's results. */
function retriedRun(ranks: number) {
  const keys = outputKeys('results', 'run-1');
  const items = Array.from({ length: ranks }, (_, rank) => item(rank));
  const children: MapChildExecution[] = items.map((i) => ({
    ExecutionArn: `arn:child-${i.rank}`,
    Name: `child-${i.rank}`,
    Input: JSON.stringify(i),
    Output: JSON.stringify({ rank: i.rank, status: 'SUCCEEDED' }),
    Status: 'SUCCEEDED',
    StopDate: iso(T + 9_000),
  }));
  const manifest: MapResultManifest = {
    DestinationBucket: 'out',
    MapRunArn: 'arn:map-run',
    ResultFiles: { SUCCEEDED: [{ Key: 'map-results/m/SUCCEEDED_0.json', Size: 0 }], FAILED: [], PENDING: [] },
  };
  const objects: Record<string, unknown> = {
    [keys.manifest]: items,
    'map-results/m/manifest.json': manifest,
    'map-results/m/SUCCEEDED_0.json': children,
  };
  for (const i of items) {
    objects[keys.rank(i.rank)] = {
      ...okResult(i.rank, 1),
      samples: 1,
      partitions: [],
      failures: [],
      memory_configured_mb: 1769,
      duration_ms: 7_000,
      init_s: 0,
      requests: { s3Get: 3, s3Put: 2, s3List: 0, dynamoWrite: 0, dynamoRead: 0 },
      peak_rss_mb: 300,
      wall_s: { total: 7 },
    };
    objects[keys.attempt(i.rank, `ok-${i.rank}`)] = start(i.rank, `ok-${i.rank}`, T + 2_000, { attempt: 1 });
  }
  return {
    objects,
    input: {
      runId: 'run-1',
      resultBucket: 'out',
      resultPath: 'results',
      mapRun: { MapRunArn: 'arn:map-run', ResultWriterDetails: { Bucket: 'out', Key: 'map-results/m/manifest.json' } },
    },
  };
}

/** An SFN client whose GetExecutionHistory is `history`, for the paginator (which wants the client class itself). */
const historySource = (history: (arn: string) => Promise<unknown>) =>
  Object.assign(new SFNClient({ region: 'us-east-1' }), {
    send: async (command: { input: { executionArn: string } }) => history(command.input.executionArn),
  });

const summarize = (run: ReturnType<typeof retriedRun>, sfn: SFNClient, deadline?: number) =>
  summarizeRun(run.input, {
    s3: memoryS3(run.objects),
    runs: { get: async () => undefined, update: async () => {} } as unknown as RunStore,
    region: 'us-east-1',
    architecture: 'x86_64',
    invocation: () => ({ memoryMb: 1024, durationMs: 1_000, initMs: 0 }),
    sfn,
    inferenceMemoryMb: 1769,
    deadline,
  });

test(`histories are read ${HISTORY_READ_CONCURRENCY} at a time, never more, and every death is billed`, async () => {
  let inFlight = 0;
  let most = 0;
  const sfn = historySource(async () => {
    most = Math.max(most, ++inFlight);
    await new Promise((r) => setTimeout(r, 2));
    inFlight--;
    return deathThenSuccess;
  });
  const record = await summarize(retriedRun(60), sfn);
  expect(most).toBe(HISTORY_READ_CONCURRENCY);
  expect(record.attempts).toEqual({ failed: 0, crashed: 60 });
  expect(record.warnings ?? []).toEqual([]);
});

test('at the deadline the summary stops reading histories, says how many it did not read and which attempts are not billed, and finishes', async () => {
  // Ranks 0–4 answer at once; every other history read never answers (and ignores the abort), as a read stuck past the deadline.
  const sfn = historySource((arn) => (Number(arn.split('-').pop()) < 5 ? Promise.resolve(deathThenSuccess) : new Promise(() => {})));
  const record = await summarize(retriedRun(200), sfn, Date.now() + SUMMARY_WRITE_MARGIN_MS + 1_000);
  expect(record.attempts).toEqual({ failed: 0, crashed: 5, historiesNotRead: 195, notBilled: 195 });
  expect(record.warnings).toEqual([
    "195 ranks' execution histories were not read (attempts.historiesNotRead: the summary's deadline came first, or a read failed): " +
      "their crashed attempts with a record are billed up to the next moment known after them (an estimate, at or above Lambda's bill); " +
      "195 attempts known only by a later attempt's number (died before writing a record, or throttled, which Lambda does not bill) are not in the cost",
  ]);
  // What was read is billed: the five deaths, 40 ms each, at the inference function's memory size.
  expect(record.cost!.lambda.invocations).toBe(200 + 5 + 1);
  expect(runDetails(record)).toContain(
    "195 ranks' execution histories not read: their crashes estimated, 195 attempts known only by number not billed",
  );
});
