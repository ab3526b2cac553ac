import { parentPort, workerData } from 'node:worker_threads';
import { loadModel, type OnnxModel } from '../commons/model/session';
import type { BatchRequest, CloseRequest, WorkerData, WorkerMessage } from '../commons/model/worker-pool';

/**
 * One inference worker of the inference function's pool (functions/commons/model/worker-pool.ts):
 * its own ONNX session of one intra-op thread, running the batches the pool sends it.
 */
const port = parentPort!;
const send = (message: WorkerMessage, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);
const described = (error: unknown) => ({ name: (error as Error).name ?? 'Error', message: (error as Error).message ?? String(error) });

void (async () => {
  const started = performance.now();
  let model: OnnxModel;
  const running = new Set<Promise<void>>();
  try {
    model = await loadModel((workerData as WorkerData).modelPath, { intraOpThreads: 1 });
  } catch (error) {
    send({ failed: described(error) });
    return;
  }
  port.on('message', async (request: BatchRequest | CloseRequest) => {
    if ('close' in request) {
      // Batches still running end first: a session is released only once nothing runs on it.
      await Promise.allSettled(running);
      await model.release();
      port.close();
      return;
    }
    const { id, feeds, count } = request;
    const batch = runBatch(id, feeds, count);
    running.add(batch);
    void batch.finally(() => running.delete(batch));
  });
  send({ ready: true, initMs: performance.now() - started });

  async function runBatch(id: number, feeds: BatchRequest['feeds'], count: number): Promise<void> {
    try {
      // Copies of the results, which view onnxruntime's output tensors: their buffers are moved to the pool.
      const outputs = Object.fromEntries(Object.entries(await model.run(feeds, count)).map(([name, data]) => [name, data.slice()]));
      send(
        { id, outputs },
        Object.values(outputs).map((data) => data.buffer as ArrayBuffer),
      );
    } catch (error) {
      send({ id, error: described(error) });
    }
  }
})();
