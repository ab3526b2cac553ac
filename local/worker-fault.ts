import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { isMainThread, threadId } from 'node:worker_threads';

/**
 * Preloaded (`node --require`) into every local Lambda runtime and so into each of its worker threads:
 * the local stack's way to kill one inference worker thread mid-invocation, as a worker that throws
 * outside a batch or runs out of its heap dies on Lambda, while the runtime process lives on. A test
 * asks for it (LocalFunction.intercept's `killWorkerAfterMs`); the container drops a `kill-worker`
 * file in its fault folder, and the first worker thread to take it exits. Does nothing in the main
 * thread, nor outside the local stack (no CAI_LOCAL_FAULT_DIR).
 */
const folder = process.env.CAI_LOCAL_FAULT_DIR;
if (!isMainThread && folder) {
  setInterval(() => {
    try {
      // Taken by one thread only: a rename succeeds once.
      renameSync(join(folder, 'kill-worker'), join(folder, `killed-${threadId}`));
    } catch {
      return;
    }
    process.stderr.write(`local stack: inference worker thread ${threadId} killed (fault injected)\n`);
    process.exit(70);
  }, 20).unref();
}
