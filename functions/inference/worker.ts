import { parentPort, workerData } from 'node:worker_threads';
import { loadRedshiftModel, type RedshiftModel } from '../commons/model/session';
import type { BatchRequest, WorkerData, WorkerMessage } from '../commons/model/worker-pool';

/**
 * One inference worker of the inference function's pool (functions/commons/model/worker-pool.ts):
 * its own ONNX session of one intra-op thread, running the batches the pool sends it.
 */
const port = parentPort!;
const send = (message: WorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);
const described = (error: unknown) => ({ name: (error as Error).name ?? 'Error', message: (error as Error).message ?? String(error) });

void (async () => {
  const started = performance.now();
  let model: RedshiftModel;
  try {
    model = await loadRedshiftModel((workerData as WorkerData).modelPath, { intraOpThreads: 1 });
  } catch (error) {
    send({ failed: described(error) });
    return;
  }
  port.on('message', async ({ id, images, magnitudes, count }: BatchRequest) => {
    try {
      // A copy of the result, which views onnxruntime's output tensor: its buffer is moved to the pool.
      const redshift = (await model.predict(images, magnitudes, count)).slice();
      send({ id, redshift }, [redshift.buffer]);
    } catch (error) {
      send({ id, error: described(error) });
    }
  });
  send({ ready: true, initMs: performance.now() - started });
})();
