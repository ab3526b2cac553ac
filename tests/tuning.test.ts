import { WORKER_SETTINGS, wholeVcpus, workerSettings } from '../functions/commons/model/tuning';

test('vCPUs follow memory: 1,769 MB each, rounded up, one below it, six at most', () => {
  expect([128, 1024, 1769, 1770, 3538, 5307, 10240].map(wholeVcpus)).toEqual([1, 1, 1, 2, 2, 3, 6]);
});

test('measured sizes take the measured settings; larger ones one thread per vCPU', () => {
  expect(workerSettings(1769)).toEqual(WORKER_SETTINGS[1]);
  expect(workerSettings(3538)).toEqual(WORKER_SETTINGS[2]);
  expect(workerSettings(10240)).toEqual({ threads: 6, batchSize: WORKER_SETTINGS[2].batchSize });
  expect(workerSettings(7076).threads).toBe(4);
});
