/**
 * CAI's side of `npm run bench`: the inference Lambda's path (openPartition → runPartition
 * → onnxruntime-node), in one long-lived process, so no start-up is in any timing.
 *
 *   node dist/bench/cai-worker.js            JSON requests on stdin, one JSON answer per line:
 *     {"model": M, "partition": P, "batch": B, "threads": T, "workers": W?, "out": F?}
 *       → {"seconds", "samples", "inference_s", "read_wait_s"}; predictions as raw float32 in F.
 *       With W, the inference Lambda's pool of W workers of one thread each (T is then 1).
 *   node dist/bench/cai-worker.js --cold-start MODEL --threads T
 *       → one line {"cold_start_s"}: from this process's start to a session ready to run
 */
import { writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileSource } from '../functions/commons/tensors/byte-source';
import { join } from 'node:path';
import { cardFeeds, parseCard } from '../functions/commons/model/card';
import { loadModel, runPartition, type OnnxModel } from '../functions/commons/model/session';
import { startInferencePool } from '../functions/commons/model/worker-pool';
import { openPartition } from '../functions/commons/partitions/partition';
import { readFileSync } from 'node:fs';
import { ROOT } from '../local/paths';

interface Request {
  model: string;
  partition: string;
  batch: number;
  threads: number;
  workers?: number;
  out?: string;
}

// The bench's models are AstroMAE exports (fp32, int8): the quick-start model's card fits each.
const CARD = parseCard(readFileSync(join(ROOT, 'model', 'default.card.json'), 'utf8'), 'model/default.card.json');
const sessions = new Map<string, OnnxModel>();

async function infer(request: Request) {
  const key = `${request.model}|${request.threads}|${request.workers ?? 0}`;
  let model = sessions.get(key);
  if (!model) {
    // One model in memory at a time: the bench measures one configuration after another.
    for (const other of sessions.values()) await other.release();
    sessions.clear();
    model = request.workers
      ? await startInferencePool({
          modelPath: request.model,
          workers: request.workers,
          workerScript: join(ROOT, 'dist', 'cli', 'inference-worker.js'),
        })
      : await loadModel(request.model, { intraOpThreads: request.threads });
    // First runs allocate: one per worker, at once.
    const one = {
      image: { data: new Float32Array(5 * 32 * 32), dims: [1, 5, 32, 32] },
      magnitude: { data: new Float32Array(5), dims: [1, 5] },
    };
    await Promise.all(Array.from({ length: model.concurrency }, () => model!.run(one, 1)));
    sessions.set(key, model);
  }
  const start = performance.now();
  const reader = await openPartition(await fileSource(request.partition), cardFeeds(CARD));
  try {
    const result = await runPartition(model, CARD, reader, request.batch);
    const seconds = (performance.now() - start) / 1000;
    if (request.out) await writeFile(request.out, result.outputs.redshift.values);
    return { seconds, samples: reader.samples, inference_s: result.inferenceSeconds, read_wait_s: result.readWaitSeconds };
  } finally {
    await reader.close();
  }
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === '--cold-start') {
    const threads = Number(argv[argv.indexOf('--threads') + 1] ?? 1);
    await loadModel(argv[1], { intraOpThreads: threads });
    // performance.now() counts from this process's start: Node's own start-up is included.
    process.stdout.write(`${JSON.stringify({ cold_start_s: performance.now() / 1000 })}\n`);
    return;
  }
  for await (const line of createInterface({ input: process.stdin })) {
    process.stdout.write(`${JSON.stringify(await infer(JSON.parse(line) as Request))}\n`);
  }
}

main(process.argv.slice(2)).catch((error: Error) => {
  process.stderr.write(`cai-worker: ${error.message}\n`);
  process.exit(1);
});
