import { lambdaVcpus, rateAtVcpus, WORKER_SETTINGS, wholeVcpus, workerSettings } from '../../functions/commons/model/lambda-sizing';

test('vCPUs follow memory: 1,769 MB each, rounded up, one below it, six at most', () => {
  expect([128, 1024, 1769, 1770, 3538, 5307, 10240].map(wholeVcpus)).toEqual([1, 1, 1, 2, 2, 3, 6]);
});

test('measured sizes take the measured settings; larger ones one thread per vCPU', () => {
  expect(workerSettings(1769)).toEqual(WORKER_SETTINGS[1]);
  expect(workerSettings(3538)).toEqual(WORKER_SETTINGS[2]);
  expect(workerSettings(10240)).toEqual({ threads: 6, batchSize: WORKER_SETTINGS[2].batchSize });
  expect(workerSettings(7076).threads).toBe(4);
});

test('vCPU scaling: a share of one vCPU slows it in proportion; beyond two, each vCPU adds what the second did', () => {
  const measured = { one: 100, two: 180 };
  expect(lambdaVcpus(1769 / 2)).toBeCloseTo(0.5, 10);
  expect(lambdaVcpus(10240)).toBeCloseTo(10240 / 1769, 10); // the share of 6 vCPUs it can use
  expect([0.5, 1, 2, 4].map((v) => rateAtVcpus(v, measured))).toEqual([50, 100, 180, 340]);
});
