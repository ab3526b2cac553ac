import { peakRssMb } from '../../functions/commons/model/peak-rss';

test("the peak RSS is this process's own high-water mark: at least what it holds now", () => {
  const held = Buffer.alloc(64 * 2 ** 20, 1); // touched, so resident
  const now = process.memoryUsage().rss / 2 ** 20;
  expect(peakRssMb()).toBeGreaterThanOrEqual(now - 1);
  expect(peakRssMb()).toBeGreaterThan(64);
  expect(held[held.length - 1]).toBe(1);
});
