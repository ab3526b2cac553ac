import type { RankItem, RankResult } from '../../functions/commons/run/contracts';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { billRun } from '../../functions/commons/billing/cost';
import { stateTransitions } from '../../functions/commons/billing/run-usage';
import { runProgress, type MapRunCounts, type ProgressInput } from '../../toolkit/run-progress';
import { renderer } from '../../cli/run-watch';

/** Four ranks of two partitions each, 100 bytes a partition. */
const items: RankItem[] = [0, 1, 2, 3].map((rank) => ({
  runId: 'r',
  rank,
  worldSize: 4,
  dataBucket: 'data',
  resultBucket: 'control',
  resultPath: 'results',
  partitions: [0, 1].map((i) => ({ key: `p/${rank}-${i}.pt`, bytes: 100 })),
}));

const requests = { s3Get: 3, s3Put: 2, s3List: 0, dynamoWrite: 0, dynamoRead: 0 };

/** What rank `rank` writes to ranks/<rank>.json (only the fields the view reads matter). */
function result(rank: number, samples: number, failed: string[] = []): RankResult {
  return {
    rank,
    samples,
    partitions: items[rank].partitions.filter((p) => !failed.includes(p.key)).map((p) => ({ ...p, samples: samples / 2 })),
    failures: failed.map((partition) => ({ partition, rank, error: `${partition} is truncated\nstack` })),
    memory_configured_mb: 2048,
    duration_ms: 1000,
    init_s: 0.5,
    requests,
  } as unknown as RankResult;
}

const started = Date.parse('2026-01-01T00:00:00Z');
const record = {
  runId: 'r',
  status: 'RUNNING',
  startedAt: new Date(started).toISOString(),
  ranks: 4,
  partitions: 8,
  initializer: { durationMs: 200, initMs: 0, memoryMb: 512, requests: { ...requests, dynamoWrite: 2 } },
} as RunRecord;

const counts = (c: Partial<MapRunCounts>): MapRunCounts => ({
  pending: 0,
  running: 0,
  succeeded: 0,
  failed: 0,
  timedOut: 0,
  aborted: 0,
  total: 4,
  resultsWritten: 0,
  ...c,
});

const input = (over: Partial<ProgressInput>): ProgressInput => ({
  record,
  items,
  results: [],
  now: started + 10_000,
  region: 'us-east-1',
  architecture: 'x86_64',
  ...over,
});

test('mid-run: ranks from the Map Run, objects and rate from the results, an ETA from the bytes done', () => {
  const p = runProgress(
    input({
      mapRun: { status: 'RUNNING', startDate: new Date(started), counts: counts({ pending: 1, running: 1, succeeded: 2 }) },
      results: [result(0, 500), result(1, 300, ['p/1-1.pt'])],
    }),
  );
  expect(p.ranks).toEqual({ pending: 1, running: 1, succeeded: 2, failed: 0, total: 4 });
  expect(p.objects).toBe(800);
  expect(p.objectsPerSecond).toBeCloseTo(80, 10);
  expect(p.partitions).toEqual({ done: 4, failed: 1, total: 8 });
  // Half the bytes in 10 s: 10 s more.
  expect(p.etaSeconds).toBeCloseTo(10, 10);
  expect(p.failures).toEqual([{ partition: 'p/1-1.pt', rank: 1, error: 'p/1-1.pt is truncated\nstack' }]);
  expect(p.ranksEnded).toBe(false);
});

test('a result written before its child execution ends counts as succeeded, not also as running', () => {
  const p = runProgress(input({ mapRun: { status: 'RUNNING', counts: counts({ pending: 2, running: 2 }) }, results: [result(0, 10)] }));
  expect(p.ranks).toEqual({ pending: 2, running: 1, succeeded: 1, failed: 0, total: 4 });
});

test('a rank the Map counts ended without a result is failed; once all ended, its partitions are failed as the summary counts them', () => {
  const running = runProgress(
    input({ mapRun: { status: 'RUNNING', counts: counts({ running: 1, succeeded: 3 }) }, results: [result(0, 10), result(1, 10)] }),
  );
  expect(running.ranks).toMatchObject({ succeeded: 2, failed: 1, running: 1, pending: 0 });
  // Which rank failed is not known yet: its partitions are not counted.
  expect(running.partitions).toEqual({ done: 4, failed: 0, total: 8 });

  const ended = runProgress(
    input({
      mapRun: { status: 'SUCCEEDED', counts: counts({ succeeded: 4, resultsWritten: 4 }) },
      results: [result(0, 10), result(1, 10), result(3, 10, ['p/3-0.pt'])],
    }),
  );
  expect(ended.ranks).toEqual({ pending: 0, running: 0, succeeded: 3, failed: 1, total: 4 });
  expect(ended.partitions).toEqual({ done: 8, failed: 3, total: 8 });
  expect(ended.failures.map((f) => f.partition)).toEqual(['p/3-0.pt', 'p/2-0.pt', 'p/2-1.pt']);
  expect(ended.etaSeconds).toBe(0);
});

test('before the Map has read its items: the planned ranks, all pending, no ETA, the initializer its only cost', () => {
  const p = runProgress(input({ results: [] }));
  expect(p.ranks).toEqual({ pending: 4, running: 0, succeeded: 0, failed: 0, total: 4 });
  expect(p.etaSeconds).toBeNull();
  const initializer = billRun(
    {
      invocations: [record.initializer!],
      stateTransitions: 0,
      s3: { get: 3, put: 2, list: 0 },
      dynamo: { writes: 2, reads: 0 },
    },
    'us-east-1',
    'x86_64',
  );
  expect(p.costUsd).toBeCloseTo(initializer.totalUsd, 15);
});

test("the cost so far bills the ranks' invocations, requests and transitions at the region's prices", () => {
  const results = [result(0, 10), result(1, 10)];
  const p = runProgress(input({ mapRun: { status: 'RUNNING', counts: counts({ succeeded: 2, running: 2 }) }, results }));
  const expected = billRun(
    {
      invocations: [record.initializer!, ...results.map(() => ({ memoryMb: 2048, durationMs: 1000, initMs: 500 }))],
      // The Map's transition and each rank's task; the Summarize state's comes later.
      stateTransitions: stateTransitions({ ranks: 2, retries: 0, caughtRanks: 0, failurePath: false, mapResultFiles: 0 }) - 1,
      s3: { get: 9, put: 6, list: 0 },
      dynamo: { writes: 2, reads: 0 },
    },
    'us-east-1',
    'x86_64',
  );
  expect(p.costUsd).toBeCloseTo(expected.totalUsd, 15);
  const arm = runProgress(
    input({ mapRun: { status: 'RUNNING', counts: counts({ succeeded: 2, running: 2 }) }, results, architecture: 'arm64' }),
  );
  expect(arm.costUsd).toBeLessThan(p.costUsd);
});

test('--json lines: one per change of the counts, each with the same fields; the last always', () => {
  const render = renderer('json');
  const mapRun = { status: 'RUNNING', counts: counts({ pending: 2, running: 2 }) };
  const first = render(runProgress(input({ mapRun })), false);
  // Only time moved: no line.
  expect(render(runProgress(input({ mapRun, now: started + 20_000 })), false)).toBe('');
  const second = render(
    runProgress(input({ mapRun: { ...mapRun, counts: counts({ pending: 1, running: 2, succeeded: 1 }) }, results: [result(0, 7)] })),
    false,
  );
  const last = render(
    runProgress(input({ mapRun: { ...mapRun, counts: counts({ pending: 1, running: 2, succeeded: 1 }) }, results: [result(0, 7)] })),
    true,
  );
  const lines = [first, second, last].map((line) => JSON.parse(line));
  for (const line of lines) {
    expect(Object.keys(line).sort()).toEqual(
      ['cost_usd', 'elapsed_s', 'eta_s', 'failures', 'objects', 'objects_per_s', 'partitions', 'ranks', 'runId', 'status'].sort(),
    );
  }
  expect(lines[1]).toMatchObject({ objects: 7, ranks: { succeeded: 1, running: 2, pending: 1 } });
});

test('piped lines name each failure once, when it first appears', () => {
  const render = renderer('lines');
  const mapRun = { status: 'RUNNING', counts: counts({ running: 2, succeeded: 2 }) };
  const results = [result(0, 10), result(1, 10, ['p/1-0.pt'])];
  const first = render(runProgress(input({ mapRun, results })), false);
  expect(first).toMatch(/^ {2}failed p\/1-0\.pt \(rank 1\): p\/1-0\.pt is truncated\nrun r: RUNNING {2}ranks 2\/4/);
  expect(render(runProgress(input({ mapRun, results })), true)).not.toMatch(/failed p\//);
});
