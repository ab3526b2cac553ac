import { firstReadJitterMs, firstReadWaitMs } from '../../functions/commons/run/rank';

/**
 * A run's first wave of ranks starts cold, all at once: each cold rank waits a random share of up
 * to 2 ms per rank of the run (at most 2 s) before its first read; a warm rank does not wait.
 */
describe("a cold rank's wait before its first read", () => {
  test('spreads over 2 ms per rank of the run, up to 2 s', () => {
    expect([1, 10, 999, 1000, 1001, 10_240].map(firstReadJitterMs)).toEqual([2, 20, 1998, 2000, 2000, 2000]);
  });

  test('is a random share of that for a cold start, any share from none to all of it', () => {
    for (const share of [0, 0.25, 0.999]) {
      expect(firstReadWaitMs(0.4, 100, () => share)).toBe(share * 200);
      expect(firstReadWaitMs(0.4, 10_240, () => share)).toBe(share * 2000);
    }
  });

  test('is none for a warm invocation, whatever the draw and the run', () => {
    for (const worldSize of [1, 1000, 10_240]) expect(firstReadWaitMs(0, worldSize, () => 0.999)).toBe(0);
  });
});
