import { RANK_MEMORY, rankMemory } from '../../functions/commons/model/rank-memory';

/**
 * The rank memory plan against what it was fitted to: the inference artifact's peak RSS over one
 * rank under the local emulator (Lambda's node flags; 2026-11-27), for the two AstroMAE exports at
 * 1, 2 and 6 workers. When `npm run bench` measures other figures, they go here and into
 * RANK_MEMORY together.
 */
const MiB = 1024 * 1024;
const MODEL_BYTES = { default: 3_695_611, full: 63_204_746 };
// [model, workers, batch, partition MiB, measured peak RSS MB]
const MEASURED: [keyof typeof MODEL_BYTES, number, number, number, number][] = [
  ['default', 1, 16, 1, 159],
  ['default', 1, 16, 16, 203],
  ['default', 1, 16, 64, 264],
  ['default', 1, 16, 128, 259],
  ['default', 1, 16, 256, 264],
  ['default', 1, 256, 1, 165],
  ['default', 1, 256, 64, 353],
  ['default', 2, 16, 1, 186],
  ['default', 2, 16, 64, 281],
  ['default', 2, 256, 1, 190],
  ['default', 2, 256, 64, 509],
  ['default', 6, 16, 1, 285],
  ['default', 6, 16, 64, 407],
  ['default', 6, 256, 1, 277],
  ['default', 6, 256, 64, 1086],
  ['full', 1, 16, 1, 244],
  ['full', 1, 16, 64, 345],
  ['full', 1, 256, 1, 267],
  ['full', 1, 256, 64, 657],
  ['full', 2, 16, 1, 358],
  ['full', 2, 16, 64, 481],
  ['full', 2, 256, 1, 397],
  ['full', 2, 256, 64, 1116],
  ['full', 6, 16, 1, 787],
  ['full', 6, 16, 64, 973],
  ['full', 6, 256, 1, 870],
  ['full', 6, 256, 64, 2973],
];

test.each(MEASURED)(
  '%s model, %i worker(s), batch %i, a %i MiB partition: measured %i MB',
  (model, workers, batchSize, partitionMiB, measured) => {
    const { totalMb } = rankMemory({ modelBytes: MODEL_BYTES[model], workers, batchSize, partitionBytes: partitionMiB * MiB });
    // Within a few per cent where memory matters (partitions of 16 MiB and more); a little over for the smallest, never far under.
    const [low, high] = partitionMiB >= 16 ? [0.97, 1.07] : [0.97, 1.19];
    expect(totalMb / measured).toBeGreaterThanOrEqual(low);
    expect(totalMb / measured).toBeLessThanOrEqual(high);
  },
);

test('the parts add up, and each grows with what it is charged for', () => {
  const base = { modelBytes: MODEL_BYTES.full, workers: 2, batchSize: 16, partitionBytes: 64 * MiB };
  const plan = rankMemory(base);
  expect(plan.totalMb).toBe(Math.ceil(plan.runtimeMb + plan.sessionsMb + plan.batchesMb + plan.readAheadMb));
  expect(plan.runtimeMb).toBe(RANK_MEMORY.runtimeMb);
  expect(rankMemory({ ...base, workers: 6 }).sessionsMb).toBeCloseTo(3 * plan.sessionsMb, 6);
  expect(rankMemory({ ...base, batchSize: 256 }).batchesMb).toBeCloseTo(16 * plan.batchesMb, 6);
  // Two chunks of 16 MiB and eight 8 MiB parts in flight, whatever the partition's size beyond them.
  expect(rankMemory({ ...base, partitionBytes: 1024 * MiB }).readAheadMb).toBeCloseTo(plan.readAheadMb, 0);
  expect(plan.readAheadMb).toBeCloseTo(96, 0);
});
