import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../functions/commons/aws/clients';
import type { RankItem } from '../../functions/commons/run/contracts';
import { InferenceWorkerError } from '../../functions/commons/model/worker-pool';
import { ModelSource, type LoadedModel } from '../../functions/commons/run/model-source';
import { runRank } from '../../functions/commons/run/rank';
import { ROOT } from '../../local/paths';
import { startLocalS3, type LocalS3 } from '../../local/s3-server';
import { writeTestPartition } from '../helpers/partitions';
import { tempFolder } from '../helpers/temp';

/**
 * A dead inference worker fails its rank, never its partitions, and its pool is never handed to
 * another rank: through runRank and the container's ModelSource, with the inference function's own
 * worker (dist/cli/inference-worker.js, as `npm run build` bundles it) and the embedded S3. The
 * worker dies the way local/worker-fault.ts kills one on the local stack: a `kill-worker` file,
 * taken by the first worker thread that sees it.
 */
const work = tempFolder('cai-dead-worker-');
const faults = join(work, 'faults');
let server: LocalS3;
let s3: S3Client;
let source: ModelSource;

/** The real worker behind the local stack's fault preload, as a Lambda runtime started with `--require` runs it. */
const workerScript = join(work, 'worker.cjs');

const item: RankItem = {
  runId: 'dead-worker-run',
  rank: 0,
  worldSize: 1,
  batchSize: 16,
  dataBucket: 'cai-data',
  partitions: [1, 2, 3].map((n) => ({ key: `survey/${n}.pt`, bytes: 0 })),
  resultBucket: 'cai-control',
  resultPath: 'results/dead-worker',
};

beforeAll(async () => {
  server = await startLocalS3(join(work, 's3'), ['cai-control', 'cai-data']);
  s3 = createS3Client({ ...process.env, CAI_S3_ENDPOINT: server.endpoint, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
  for (const [n, p] of item.partitions.entries()) {
    const file = join(work, `${n}.pt`);
    writeTestPartition(file, 400, { seed: n + 1 });
    await s3.send(new PutObjectCommand({ Bucket: 'cai-data', Key: p.key, Body: readFileSync(file) }));
  }
  mkdirSync(faults);
  // Set in the worker itself: a test file's process.env is its own copy, which worker threads do not see.
  writeFileSync(
    workerScript,
    `process.env.CAI_LOCAL_FAULT_DIR = ${JSON.stringify(faults)};\n` +
      `require(${JSON.stringify(join(ROOT, 'dist', 'local', 'worker-fault.js'))});\n` +
      `require(${JSON.stringify(join(ROOT, 'dist', 'cli', 'inference-worker.js'))});\n`,
  );
  source = new ModelSource({
    s3,
    workers: 2,
    workerScript,
    deployed: { path: join(ROOT, 'model', 'default.onnx'), cardPath: join(ROOT, 'model', 'default.card.json') },
    directory: join(work, 'tmp'),
  });
});
afterAll(async () => {
  await (await source.forItem()).pool.release();
  await server?.close();
});

const rankContext = (model: LoadedModel) => ({
  s3,
  model: model.pool,
  card: model.card,
  signature: model.signature,
  modelId: model.id,
  modelLoadSeconds: model.loadSeconds,
  memoryMb: 1769,
  workers: 2,
  batchSize: 16,
  initSeconds: 0,
});

test('a worker that dies mid-rank fails the rank (for the state machine to retry), not its partitions; the next rank gets a new pool', async () => {
  const first = await source.forItem();
  // The worker dies after the rank's first batches have landed: mid-partition, with partitions still to come.
  let batches = 0;
  const run = first.pool.run.bind(first.pool);
  first.pool.run = (feeds, count) => {
    if (++batches === 6) writeFileSync(join(faults, 'kill-worker'), '');
    return run(feeds, count);
  };
  const failed = runRank(item, rankContext(first));
  await expect(failed).rejects.toThrow(InferenceWorkerError);
  await expect(failed).rejects.toThrow(/^inference worker [12] exited \(code 70\)$/);
  expect(first.pool.broken).toBeInstanceOf(InferenceWorkerError);

  // The container's next rank: the broken pool is replaced, never reused, and every partition has its predictions.
  const second = await source.forItem();
  expect(second.pool).not.toBe(first.pool);
  expect(second.replacedBroken).toMatch(/^inference worker [12] exited \(code 70\)$/);
  expect(second.loadSeconds).toBeGreaterThan(0);
  const result = await runRank(item, rankContext(second));
  expect(result.failures).toEqual([]);
  expect(result.partitions.map((p) => p.key)).toEqual(item.partitions.map((p) => p.key));
  expect(result.samples).toBe(1200);
  // And the rank after it keeps that pool: a working pool is reused as before.
  const third = await source.forItem();
  expect([third.pool, third.loadSeconds, third.replacedBroken]).toEqual([second.pool, 0, undefined]);
});
