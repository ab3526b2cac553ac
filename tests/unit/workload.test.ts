import { billRun } from '../../functions/commons/billing/cost';
import { CostModelError, estimateWorkload } from '../../toolkit/forecast/workload';
import { BYTES_PER_GALAXY } from '../../functions/commons/partitions/galaxy';

const MiB = 2 ** 20;
const base = {
  totalBytes: 12.6 * 2 ** 30,
  partitionBytes: 100 * MiB,
  bytesPerSample: BYTES_PER_GALAXY,
  memoryMb: 1769,
  architecture: 'x86_64' as const,
  region: 'us-east-1',
  secondsPerSample: 0.01,
  initSeconds: 0.5,
  s3MiBps: 100,
  firstChunkBytes: 16 * MiB,
  concurrency: 1000,
};

test("the prototype's 12.6 GB in 100 MB partitions: 130 ranks, one wave, billed as billRun bills it", () => {
  const estimate = estimateWorkload(base);
  expect(estimate.partitions).toBe(130);
  expect(estimate.samples).toBe(Math.floor(base.totalBytes / BYTES_PER_GALAXY));
  // Its galaxies at 10 ms each, after the 0.16 s first read; the rest of the read hides behind compute.
  expect(estimate.durationS).toBeCloseTo(0.16 + Math.floor((100 * MiB) / BYTES_PER_GALAXY) * 0.01, 6);
  expect(estimate.wallS).toBeCloseTo(0.5 + estimate.durationS, 6);
  const lambda = billRun(
    {
      invocations: Array(130).fill({ memoryMb: 1769, durationMs: estimate.durationS * 1000, initMs: 500 }),
      stateTransitions: 0,
      s3: { get: 0, put: 0, list: 0 },
      dynamo: { writes: 0, reads: 0 },
    },
    'us-east-1',
    'x86_64',
  ).lambda;
  expect(estimate.cost.lambda).toEqual(lambda);
  // Map and Summarize; per rank its child execution's start and its task.
  expect(estimate.cost.stepFunctions.transitions).toBe(2 + 130 * 2);
  // The payload; per rank at most 16 GETs to open its archive, 13 parts of 8 MiB and one per 16 MiB
  // chunk (7); the summarizer's manifest, rank results and the Map's two result files; the ItemReader's manifest.
  expect(estimate.cost.s3.get).toBe(1 + 130 * (16 + 13 + 7) + 1 + 130 + 2 + 1);
});

test('a slow S3 read sets the duration when it cannot hide behind compute', () => {
  const estimate = estimateWorkload({ ...base, s3MiBps: 10, secondsPerSample: 1e-6 });
  expect(estimate.durationS).toBeCloseTo(10, 6);
});

test('more partitions than concurrency run in waves; arm64 bills less per GB-second', () => {
  const waves = estimateWorkload({ ...base, partitionBytes: 25 * MiB, concurrency: 100 });
  expect(waves.partitions).toBe(517);
  expect(waves.wallS).toBeCloseTo(6 * (0.5 + waves.durationS), 6);
  expect(estimateWorkload({ ...base, architecture: 'arm64' }).cost.lambda.computeUsd).toBeLessThan(
    estimateWorkload(base).cost.lambda.computeUsd,
  );
});

test('nonsense workloads are refused by name', () => {
  expect(() => estimateWorkload({ ...base, partitionBytes: 0 })).toThrow(CostModelError);
  expect(() => estimateWorkload({ ...base, totalBytes: MiB })).toThrow(/no larger than the whole/);
});
