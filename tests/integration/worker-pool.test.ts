import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileSource } from '../../functions/commons/tensors/byte-source';
import { cardFeeds, parseCard } from '../../functions/commons/model/card';
import { openPartition } from '../../functions/commons/partitions/partition';
import { loadModel, ModelError, runPartition, type OnnxModel } from '../../functions/commons/model/session';
import { InferenceWorkerError, startInferencePool } from '../../functions/commons/model/worker-pool';
import { ROOT } from '../../local/paths';
import { writeTestPartition } from '../helpers/partitions';
import { tempFolder } from '../helpers/temp';

/**
 * The inference Lambda's pool with onnxruntime-node for real: the worker as `npm run build` bundles it
 * (dist/cli/inference-worker.js, the same source as the artifact's worker.mjs), the quick-start model.
 */
const WORKER = join(ROOT, 'dist', 'cli', 'inference-worker.js');
const MODEL = join(ROOT, 'model', 'default.onnx');
const CARD = parseCard(readFileSync(join(ROOT, 'model', 'default.card.json'), 'utf8'), 'default card');
const work = tempFolder('cai-pool-');

test('two workers predict exactly what one session does, row for row, over several chunks', async () => {
  const file = join(work, 'p.pt');
  writeTestPartition(file, 2000, { seed: 3 });
  const run = async (model: OnnxModel) => {
    const reader = await openPartition(await fileSource(file), cardFeeds(CARD));
    try {
      return await runPartition(model, CARD, reader, 16);
    } finally {
      await reader.close();
      await model.release();
    }
  };
  const single = await run(await loadModel(MODEL, { intraOpThreads: 1 }));
  const pool = await startInferencePool({ modelPath: MODEL, workers: 2, workerScript: WORKER });
  expect(pool.workers).toBe(2);
  const pooled = await run(pool);
  expect(pooled.batches).toBe(single.batches);
  const values = (result: typeof single) => result.outputs.redshift.values;
  expect(Buffer.from(values(pooled).buffer).equals(Buffer.from(values(single).buffer))).toBe(true);
  expect(values(single).every(Number.isFinite)).toBe(true);
});

test('a worker that dies fails the batches it holds and every later one, at once: the rank fails, it never hangs', async () => {
  const dying = join(work, 'dying.cjs');
  writeFileSync(
    dying,
    "const { parentPort } = require('node:worker_threads');\n" +
      'parentPort.postMessage({ ready: true, initMs: 0 });\n' +
      'parentPort.on("message", () => process.exit(7));\n',
  );
  const pool = await startInferencePool({ modelPath: MODEL, workers: 1, workerScript: dying });
  const batch = () =>
    pool.run(
      { image: { data: new Float32Array(5 * 32 * 32), dims: [1, 5, 32, 32] }, magnitude: { data: new Float32Array(5), dims: [1, 5] } },
      1,
    );
  await expect(batch()).rejects.toThrow(new InferenceWorkerError('inference worker 1 exited (code 7)'));
  await expect(batch()).rejects.toThrow('inference worker 1 exited (code 7)');
  await pool.release();
});

test('a model no worker can load fails the pool at start, naming the model', async () => {
  const notModel = join(work, 'not.onnx');
  writeFileSync(notModel, 'not a model');
  const started = startInferencePool({ modelPath: notModel, workers: 2, workerScript: WORKER });
  await expect(started).rejects.toThrow(ModelError);
  await expect(started).rejects.toThrow(/^cannot load model .*not\.onnx/);
});
