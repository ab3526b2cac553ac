/**
 * CAI's side of `npm run bench`: the inference Lambda's path (openTorchPartition → predictPartition
 * → onnxruntime-node), in one long-lived process, so no start-up is in any timing.
 *
 *   node dist/bench/cai-worker.js            JSON requests on stdin, one JSON answer per line:
 *     {"model": M, "partition": P, "batch": B, "threads": T, "out": F?}
 *       → {"seconds", "samples", "inference_s", "read_wait_s"}; predictions as raw float32 in F
 *   node dist/bench/cai-worker.js --cold-start MODEL --threads T
 *       → one line {"cold_start_s"}: from this process's start to a session ready to run
 */
import { writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileSource } from '../functions/commons/torch/byte-source';
import { loadRedshiftModel, predictPartition, type RedshiftModel } from '../functions/commons/model/session';
import { openTorchPartition } from '../functions/commons/partitions/reader';

interface Request {
  model: string;
  partition: string;
  batch: number;
  threads: number;
  out?: string;
}

const sessions = new Map<string, RedshiftModel>();

async function infer(request: Request) {
  const key = `${request.model}|${request.threads}`;
  let model = sessions.get(key);
  if (!model) {
    model = await loadRedshiftModel(request.model, { intraOpThreads: request.threads });
    await model.predict(new Float32Array(5 * 32 * 32), new Float32Array(5), 1); // first run allocates
    sessions.set(key, model);
  }
  const start = performance.now();
  const reader = await openTorchPartition(await fileSource(request.partition));
  try {
    const result = await predictPartition(model, reader, request.batch);
    const seconds = (performance.now() - start) / 1000;
    if (request.out) await writeFile(request.out, result.predictions);
    return { seconds, samples: reader.samples, inference_s: result.inferenceSeconds, read_wait_s: result.readWaitSeconds };
  } finally {
    await reader.close();
  }
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === '--cold-start') {
    const threads = Number(argv[argv.indexOf('--threads') + 1] ?? 1);
    await loadRedshiftModel(argv[1], { intraOpThreads: threads });
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
