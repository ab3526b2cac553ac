import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { RankError } from '../errors';
import { ModelError, type Feeds, type OnnxModel } from './session';

/**
 * A pool of inference workers: N worker threads, each with its own ONNX session of one intra-op
 * thread. onnxruntime-node runs a session on the JavaScript thread that calls it, so sessions in one
 * thread run one after another; N threads run N batches at once, one per vCPU a Lambda pays for,
 * which scales better than one session of N intra-op threads (docs/performance.md).
 */

/** What the pool sends a worker: one batch. */
export interface BatchRequest {
  id: number;
  feeds: Feeds;
  count: number;
}

/** What the pool sends a worker when it is done with it: release the session and end. */
export interface CloseRequest {
  close: true;
}

/** What a worker sends back: that it is ready (or could not load the model), or a batch's result. */
export type WorkerMessage =
  | { ready: true; initMs: number }
  | { failed: { name: string; message: string } }
  | { id: number; outputs: Record<string, Float32Array> }
  | { id: number; error: { name: string; message: string } };

/** The data a worker starts with. */
export interface WorkerData {
  modelPath: string;
}

/**
 * A worker died or threw outside a batch: the pool is broken for good. The rank fails with this (the
 * state machine retries it) and the pool is never used again (ModelSource starts another).
 */
export class InferenceWorkerError extends RankError {}

/** A batch failed in a worker that lives on: the model could not run that partition's data. */
export class InferenceBatchError extends ModelError {}

export interface InferencePool extends OnnxModel {
  workers: number;
  /** Why the pool no longer runs batches (a worker died or threw, or it was released), once it does not. */
  readonly broken: Error | undefined;
  /** Milliseconds from the first worker's start to the last session ready: sessions load in parallel. */
  initMs: number;
}

/** How long a worker asked to end may take (a session still loading finishes first). */
const WORKER_CLOSE_MS = 60_000;

interface Job {
  request: BatchRequest;
  resolve: (outputs: Record<string, Float32Array>) => void;
  reject: (error: Error) => void;
}

/** Starts `workers` threads running `workerScript` (functions/inference/worker.ts, as built) and waits until every session is ready. */
export async function startInferencePool(options: { modelPath: string; workers: number; workerScript: string }): Promise<InferencePool> {
  const { modelPath, workerScript } = options;
  const started = performance.now();
  const threads = Array.from(
    { length: options.workers },
    () => new Worker(workerScript, { workerData: { modelPath } satisfies WorkerData }),
  );
  const idle: Worker[] = [];
  const queue: Job[] = [];
  const running = new Map<Worker, Job>();
  let broken: Error | undefined;
  let closing = false;
  const exited = new Set<Worker>();
  let nextId = 0;

  const fail = (error: Error) => {
    broken ??= error;
    for (const job of [...running.values(), ...queue.splice(0)]) job.reject(broken);
    running.clear();
  };
  const dispatch = () => {
    while (!broken && idle.length && queue.length) {
      const worker = idle.shift()!;
      const job = queue.shift()!;
      running.set(worker, job);
      worker.postMessage(
        job.request,
        Object.values(job.request.feeds).map(({ data }) => data.buffer as ArrayBuffer),
      );
    }
  };

  const ready = threads.map(
    (worker, index) =>
      new Promise<void>((resolveReady, rejectReady) => {
        worker.on('message', (message: WorkerMessage) => {
          if ('ready' in message) {
            idle.push(worker);
            resolveReady();
          } else if ('failed' in message) {
            rejectReady(new ModelError(message.failed.message));
          } else {
            const job = running.get(worker);
            running.delete(worker);
            if ('error' in message)
              job?.reject(new InferenceBatchError(`inference worker ${index + 1}: ${message.error.name}: ${message.error.message}`));
            else job?.resolve(message.outputs);
            idle.push(worker);
          }
          dispatch();
        });
        // A worker that throws outside a batch, or dies (killed, out of memory), fails what it holds and the pool.
        worker.on('error', (error) => {
          const failure = new InferenceWorkerError(`inference worker ${index + 1} failed: ${error.name}: ${error.message}`, {
            cause: error,
          });
          rejectReady(failure);
          fail(failure);
        });
        worker.on('exit', (code) => {
          exited.add(worker);
          if (closing) return;
          const failure = new InferenceWorkerError(`inference worker ${index + 1} exited (code ${code})`);
          rejectReady(failure);
          fail(failure);
        });
      }),
  );
  // A worker is asked to end rather than terminated: terminating a thread while onnxruntime's native
  // side works for it (loading a session, running a batch) aborts the whole process. One that does not
  // end in time (hung) is terminated all the same.
  const release = async () => {
    closing = true;
    fail(new InferenceWorkerError('the inference pool was released'));
    await Promise.all(
      threads.map(async (worker) => {
        if (exited.has(worker)) return;
        const exit = once(worker, 'exit');
        worker.postMessage({ close: true } satisfies CloseRequest);
        const timer = setTimeout(() => void worker.terminate(), WORKER_CLOSE_MS);
        await exit;
        clearTimeout(timer);
      }),
    );
  };
  try {
    await Promise.all(ready);
  } catch (error) {
    await release();
    throw error;
  }
  return {
    path: modelPath,
    workers: threads.length,
    concurrency: threads.length,
    initMs: performance.now() - started,
    get broken() {
      return broken;
    },
    run(feeds, count) {
      if (broken) return Promise.reject(broken);
      // Copied now, so the caller may reuse its buffers as soon as this returns; the copies are moved, not cloned, to the worker.
      const copies: Feeds = Object.fromEntries(Object.entries(feeds).map(([name, { data, dims }]) => [name, { data: data.slice(), dims }]));
      const request: BatchRequest = { id: nextId++, feeds: copies, count };
      return new Promise<Record<string, Float32Array>>((resolve, reject) => {
        queue.push({ request, resolve, reject });
        dispatch();
      });
    },
    release,
  };
}
