import { billLambda, billRun, pricesFor, prototypeCost } from '../../functions/commons/billing/cost';
import { stateTransitions } from '../../functions/commons/billing/run-usage';
import { rankRetries } from '../../functions/commons/run/attempts';
import type { CrashedAttempt, FailedAttempt, RankResult } from '../../functions/commons/run/contracts';

test("the prototype's cost table (seeds/001) is reproduced from its inputs", () => {
  // Partition | Requests | Duration (s) | Memory | Cost ($), as the seed prints them.
  const table = [
    ['25MB', 517, 6.55, 2.8, 0.16],
    ['50MB', 259, 11.8, 4.0, 0.2],
    ['75MB', 173, 17.6, 5.9, 0.3],
    ['100MB', 130, 25, 7.0, 0.38],
  ] as const;
  for (const [, requests, duration, memory, cost] of table) {
    expect(Number(prototypeCost(requests, duration, memory).toFixed(2))).toBe(cost);
  }
});

test('Lambda bills configured memory over duration plus INIT, rounded up to the millisecond', () => {
  const { prices } = pricesFor('us-east-1');
  // The seed's CloudWatch line: Duration 6434.80 ms, Init 945.56 ms, Memory Size 10240 MB.
  const bill = billLambda({ memoryMb: 10240, durationMs: 6434.8, initMs: 945.56 }, 'x86_64', prices);
  expect(bill.billedMs).toBe(7381); // what that REPORT line says was billed
  expect(bill.gbSeconds).toBeCloseTo(10 * 7.381, 10);
  expect(bill.computeUsd).toBeCloseTo(10 * 7.381 * 0.0000166667, 12);
  expect(billLambda({ memoryMb: 1024, durationMs: 1000, initMs: 0 }, 'arm64', prices).computeUsd).toBeCloseTo(0.0000133334, 12);
});

test('a run adds Lambda, state transitions, S3 requests and DynamoDB writes', () => {
  const cost = billRun(
    {
      invocations: [
        { memoryMb: 2048, durationMs: 1500, initMs: 500 },
        { memoryMb: 2048, durationMs: 999.2, initMs: 0 },
      ],
      stateTransitions: 40,
      s3: { get: 1000, put: 10, list: 2 },
      dynamo: { writes: 4, reads: 0 },
    },
    'us-east-1',
    'x86_64',
  );
  expect(cost.lambda.gbSeconds).toBeCloseTo(2 * 2 + 2 * 1, 10);
  expect(cost.lambda.requestsUsd).toBeCloseTo(4e-7, 15);
  expect(cost.stepFunctions.usd).toBeCloseTo(40 * 0.000025, 12);
  expect(cost.s3.usd).toBeCloseTo(1000 * 4e-7 + 12 * 5e-6, 12);
  expect(cost.dynamodb.usd).toBeCloseTo(4 * 6.25e-7, 15);
  expect(cost.totalUsd).toBeCloseTo(
    cost.lambda.computeUsd + cost.lambda.requestsUsd + cost.stepFunctions.usd + cost.s3.usd + cost.dynamodb.usd,
    15,
  );
  expect(cost).toMatchObject({ region: 'us-east-1', priceRegion: 'us-east-1' });
  expect(cost).not.toHaveProperty('warning');
});

test('a region without a price table is still billed, at us-east-1 prices, and says so', () => {
  const usage = {
    invocations: [{ memoryMb: 1769, durationMs: 1000, initMs: 0 }],
    stateTransitions: 3,
    s3: { get: 2, put: 1, list: 0 },
    dynamo: { writes: 1, reads: 0 },
  };
  const elsewhere = billRun(usage, 'eu-central-1', 'arm64');
  expect(elsewhere).toMatchObject({ region: 'eu-central-1', priceRegion: 'us-east-1' });
  expect(elsewhere.warning).toBe(
    'no price table for region eu-central-1 (known: us-east-1, us-east-2, us-west-2): the cost uses us-east-1 prices',
  );
  expect(elsewhere.totalUsd).toBeCloseTo(billRun(usage, 'us-east-1', 'arm64').totalUsd, 15);
});

test('ephemeral storage above 512 MB is billed per GB-second of the billed duration; 512 MB and less is not', () => {
  const { prices } = pricesFor('us-east-1');
  // 10,240 MB of /tmp for 2,000.4 ms (1,500.4 + 500 INIT): 9,728 MB above the included 512 MB, over 2,001 billed ms.
  const bill = billLambda({ memoryMb: 2048, durationMs: 1500.4, initMs: 500, ephemeralStorageMb: 10240 }, 'x86_64', prices);
  expect(bill.storageGbSeconds).toBeCloseTo((9728 / 1024) * 2.001, 10);
  expect(bill.storageUsd).toBeCloseTo((9728 / 1024) * 2.001 * 0.0000000309, 15);
  for (const ephemeralStorageMb of [undefined, 512]) {
    expect(billLambda({ memoryMb: 2048, durationMs: 1000, initMs: 0, ephemeralStorageMb }, 'x86_64', prices).storageUsd).toBe(0);
  }
  const cost = billRun(
    {
      invocations: [
        { memoryMb: 1024, durationMs: 1000, initMs: 0, ephemeralStorageMb: 1536 },
        { memoryMb: 1024, durationMs: 3000, initMs: 0 },
      ],
      stateTransitions: 0,
      s3: { get: 0, put: 0, list: 0 },
      dynamo: { writes: 0, reads: 0 },
    },
    'us-east-1',
    'arm64',
  );
  expect(cost.lambda.storageGbSeconds).toBeCloseTo(1, 12);
  expect(cost.lambda.storageUsd).toBeCloseTo(0.0000000309, 16);
  expect(cost.totalUsd).toBeCloseTo((1 + 3) * 0.0000133334 + 2 * 2e-7 + 0.0000000309, 15);
});

test('a Distributed Map child execution is billed a transition for its start, beside its task, each retry and a caught failure', () => {
  // Map + Summarize, then per child: its start and its task.
  expect(stateTransitions({ ranks: 3, retries: 0, caughtRanks: 0, failurePath: false, mapResultFiles: 1 })).toBe(2 + 3 * 2);
  // Two retries, one rank caught (its RankFailed state), on the failure path (RecordFailure, RunFailed).
  expect(stateTransitions({ ranks: 3, retries: 2, caughtRanks: 1, failurePath: true, mapResultFiles: 0 })).toBe(2 + 2 + 3 * 2 + 2 + 1);
});

test("a rank's retries number its last attempt's: throttled attempts included, none counted twice", () => {
  const result = (rank: number, attempt?: number) => ({ rank, attempt }) as RankResult;
  const failed = (rank: number, attempt?: number) => ({ rank, attempt }) as FailedAttempt;
  const crashed = (rank: number) => ({ rank }) as CrashedAttempt;
  // Rank 0: clean. Rank 1: attempt 3 succeeded after a caught failure (attempt 0) and two throttles that left no record.
  expect(rankRetries([result(0, 0), result(1, 3)], [failed(1, 0)], [])).toBe(0 + 3);
  // Rank 2 crashed once (no number), then its attempt 1 succeeded: one retry, not two.
  expect(rankRetries([result(2, 1)], [], [crashed(2)])).toBe(1);
  // Rank 3 failed twice and was caught: its last attempt (1) was not retried.
  expect(rankRetries([], [failed(3, 0), failed(3, 1)], [])).toBe(1);
  // Records without numbers (older ones): one attempt each, the last not retried.
  expect(rankRetries([result(4)], [failed(4), failed(4)], [crashed(4)])).toBe(3);
});
