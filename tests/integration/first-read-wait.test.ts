import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { RankInvocation, RankItem, RankResult } from '../../functions/commons/run/contracts';
import { ModelSource } from '../../functions/commons/run/model-source';
import { firstReadJitterMs, runRank } from '../../functions/commons/run/rank';
import { ROOT } from '../../local/paths';
import { writeTestPartition } from '../helpers/partitions';
import { testStack } from '../helpers/stack';
import { tempFolder } from '../helpers/temp';

/**
 * The ranks of a run's first wave start cold, together: each waits a random share of up to 2 ms per
 * rank of the run (at most 2 s) before its first read, and a warm rank does not wait. The wait is
 * the rank's: in its wall time, its start and its bill. Through runRank, with the wait the handler
 * passes in, and through the inference artifact on the local stack, whose handler decides it.
 */
const work = tempFolder('cai-first-read-');
const DATA = 'cai-data';
const KEY = 'first-read/1.pt';
/** A run of 1,000 ranks: its cold ranks wait up to the 2 s cap. */
const WORLD = 1000;
let t: Awaited<ReturnType<typeof testStack>>;
let bytes: number;

const item = (runId: string): RankItem => ({
  runId,
  rank: 0,
  worldSize: WORLD,
  batchSize: 16,
  dataBucket: DATA,
  partitions: [{ key: KEY, bytes }],
  resultBucket: 'cai-control',
  resultPath: 'results/first-read',
});

beforeAll(async () => {
  t = await testStack(join(work, 'stack'));
  await t.bucket(DATA);
  const file = join(work, '1.pt');
  writeTestPartition(file, 40);
  bytes = statSync(file).size;
  await t.s3.send(new PutObjectCommand({ Bucket: DATA, Key: KEY, Body: readFileSync(file) }));
});
afterAll(() => t?.stack.close());

test("runRank counts the wait before it in the rank's start, wall time and bill", async () => {
  const source = new ModelSource({
    s3: t.s3,
    workers: 1,
    workerScript: join(ROOT, 'dist', 'cli', 'inference-worker.js'),
    deployed: { path: join(ROOT, 'model', 'default.onnx'), cardPath: join(ROOT, 'model', 'default.card.json') },
    directory: join(work, 'models'),
  });
  const model = await source.forItem();
  // The longest a cold rank of this run waits, as the handler would pass it in.
  const waited = firstReadJitterMs(WORLD) / 1000;
  const before = Date.now();
  const result = await runRank(item('run-rank'), {
    s3: t.s3,
    model: model.pool,
    card: model.card,
    signature: model.signature,
    modelId: model.id,
    memoryMb: 1769,
    workers: 1,
    batchSize: 16,
    initSeconds: 0.3,
    firstReadWaitSeconds: waited,
  });
  const after = Date.now();
  await model.pool.release();
  expect(result).toMatchObject({ samples: 40, failures: [] });
  expect(result.wall_s.first_read_wait).toBe(waited);
  // The rank began when its wait began: the wait before the call, whenever in it runRank read the clock.
  const began = Date.parse(result.started_at!);
  expect(began).toBeGreaterThanOrEqual(before - waited * 1000);
  expect(began).toBeLessThanOrEqual(after - waited * 1000);
  // Its wall time, and so its bill, hold the wait and the phases that followed it one after another.
  expect(result.wall_s.total).toBeGreaterThanOrEqual(waited + result.wall_s.open + result.wall_s.upload);
  expect(result.wall_s.total).toBeLessThanOrEqual(waited + (after - before) / 1000);
  expect(result.duration_ms).toBe(result.wall_s.total * 1000);
});

test('the inference function waits before its first read on a cold start only', async () => {
  const inference = t.stack.functions.inference;
  const invoke = async (runId: string) => {
    const reported = inference.billed.length;
    await inference.invoke({ item: item(runId), attempt: 0 } satisfies RankInvocation);
    const report = inference.billed[reported];
    const result = JSON.parse(await t.readText('cai-control', `results/first-read/${runId}/ranks/0.json`)) as RankResult;
    return { report, result };
  };
  // One after the other: the second invocation finds the first one's container idle, warm.
  const cold = await invoke('cold');
  const warm = await invoke('warm');
  expect([cold.result.cold_start, cold.report.initMs > 0]).toEqual([true, true]);
  expect(cold.result.wall_s.first_read_wait).toBeGreaterThanOrEqual(0);
  expect(cold.result.wall_s.first_read_wait).toBeLessThanOrEqual(firstReadJitterMs(WORLD) / 1000);
  expect(cold.result.wall_s.total).toBeGreaterThanOrEqual(cold.result.wall_s.first_read_wait!);
  expect([warm.result.cold_start, warm.report.initMs]).toEqual([false, 0]);
  expect(warm.result.wall_s.first_read_wait).toBe(0);
});
