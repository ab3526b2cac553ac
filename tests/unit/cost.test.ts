import { billLambda, billRun, pricesFor, prototypeCost } from '../../functions/commons/billing/cost';

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
