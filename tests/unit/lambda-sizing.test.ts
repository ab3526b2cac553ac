import {
  ARM64_RATE_FACTOR,
  galaxiesPerSecond,
  lambdaRate,
  lambdaVcpus,
  type Throughput,
  workersFor,
} from '../../functions/commons/model/lambda-sizing';
import { REFERENCE_WORKER_SPEEDUP, referenceSpeedup } from '../../functions/commons/model/reference-scaling';
import committed from '../../functions/commons/model/throughput.json';

/** A bench result of a 2-core machine: rates of 1 and 2 workers. */
const table: Throughput = {
  measured: 'a test machine',
  vnni: true,
  batchSize: 16,
  workers: { fp32: { 1: 100, 2: 190 }, int8: { 1: 230, 2: 450 } },
};
const rate = (memoryMb: number, precision: 'fp32' | 'int8' = 'fp32', vnni = false) =>
  lambdaRate(memoryMb, precision, { throughput: table, vnni });

test('workers follow memory: one per 1,769 MB, rounded, at least one, six at most', () => {
  expect([128, 1024, 1769, 2048, 3008, 3538, 5307, 10240].map(workersFor)).toEqual([1, 1, 1, 1, 2, 2, 3, 6]);
  expect(lambdaVcpus(10240)).toBeCloseTo(10240 / 1769, 10); // the share of 6 vCPUs it can use
});

test('where this machine has the cores, the rates are its measurements; a share of one vCPU slows one worker in proportion', () => {
  expect(rate(1769).galaxiesPerSecond).toBeCloseTo(100, 10);
  expect(rate(3538).galaxiesPerSecond).toBeCloseTo(190, 10);
  expect(rate(1769 / 2).galaxiesPerSecond).toBeCloseTo(50, 10);
  expect(rate(3538).sources).toEqual(['fp32, 2 worker(s): measured here (a test machine)']);
});

test('beyond them, the reference scaling of a 16-core server scales the one-worker rate, never a linear extrapolation', () => {
  expect(rate(4 * 1769).galaxiesPerSecond).toBeCloseTo(100 * 2.76, 6);
  expect(rate(6 * 1769 - 0.5).galaxiesPerSecond).toBeCloseTo(100 * 5.11, 1);
  // 3 and 5 cores were not measured there: between its neighbours.
  expect(referenceSpeedup(REFERENCE_WORKER_SPEEDUP.fp32, 3)).toBeCloseTo((1.57 + 2.76) / 2, 10);
  expect(rate(3 * 1769).galaxiesPerSecond).toBeCloseTo(100 * ((1.57 + 2.76) / 2), 6);
  expect(rate(4 * 1769).sources).toEqual([
    'fp32, 1 worker: measured here (a test machine)',
    '×2.76 for 4 workers (vcpu-scaling-16core.json (16-core Xeon, 2026-11-27, lower of 2 runs))',
  ]);
  // The control: what each further vCPU adding what the second added would have promised at 6 vCPUs.
  const linear = 100 + (190 - 100) * 5;
  expect(rate(6 * 1769).galaxiesPerSecond).toBeLessThan(linear);
});

test('int8 plans assume a CPU without VNNI unless told otherwise', () => {
  expect(rate(1769, 'int8').galaxiesPerSecond).toBeCloseTo(100 * 1.59, 6);
  expect(rate(1769, 'int8').sources.at(-1)).toMatch(/^int8 ×1\.59 over fp32 on a CPU without VNNI/);
  expect(rate(1769, 'int8', true).galaxiesPerSecond).toBeCloseTo(230, 6);
  expect(rate(4 * 1769, 'int8', true).galaxiesPerSecond).toBeCloseTo(230 * 4.18, 6);
});

test('arm64 plans at the x86_64 rate × ARM64_RATE_FACTOR, a conservative assumption until measured on Graviton, and says so', () => {
  expect(ARM64_RATE_FACTOR).toBeGreaterThan(0);
  expect(ARM64_RATE_FACTOR).toBeLessThan(1); // conservative: slower than x86_64, never faster
  for (const [memoryMb, precision] of [
    [1769, 'fp32'],
    [4 * 1769, 'int8'],
  ] as const) {
    const x86 = lambdaRate(memoryMb, precision, { throughput: table });
    const arm = lambdaRate(memoryMb, precision, { throughput: table, architecture: 'arm64' });
    expect(arm.galaxiesPerSecond).toBeCloseTo(x86.galaxiesPerSecond * ARM64_RATE_FACTOR, 10);
    expect(arm.sources).toEqual([...x86.sources, `arm64: the x86_64 rate × ${ARM64_RATE_FACTOR}, assumed (not measured on Graviton)`]);
    // The control: x86_64 named is the measured rate itself.
    expect(lambdaRate(memoryMb, precision, { throughput: table, architecture: 'x86_64' })).toEqual(x86);
  }
  expect(galaxiesPerSecond(1769, 'arm64')).toBeCloseTo(galaxiesPerSecond(1769) * ARM64_RATE_FACTOR, 10);
});

test('the committed rates are measurements: they name when and where, and every memory size gets a positive rate', () => {
  expect(committed.measured).toMatch(/^npm run bench, \d{4}-\d{2}-\d{2}, /);
  for (const memoryMb of [128, 1024, 1769, 3008, 5307, 7076, 8845, 10240]) {
    for (const precision of ['fp32', 'int8'] as const) expect(lambdaRate(memoryMb, precision).galaxiesPerSecond).toBeGreaterThan(0);
  }
});
