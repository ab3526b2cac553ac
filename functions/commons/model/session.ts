import type * as Ort from 'onnxruntime-node';
import { CaiError } from '../errors';
import { numelOf } from '../tensors/tensor-file';
import { partitionChunks, rowsPerChunk } from '../partitions/chunks';
import type { FeedData, TensorPartition, TensorRows } from '../partitions/partition';
import type { ModelCard } from './card';
import { loadOnnxRuntime } from './onnxruntime';

const ort = loadOnnxRuntime();

/** An ONNX model's batch: each graph input's data and dimensions (the first is the batch). */
export type Feeds = Record<string, { data: FeedData; dims: number[] }>;

/** An ONNX model CAI runs: named inputs in, named float32 outputs out, one row per object. */
export interface OnnxModel {
  path: string;
  /** Batches it runs at once: 1 for a session, N for a pool of N workers. */
  concurrency: number;
  /**
   * Runs one batch of `count` objects. It has read its inputs by the time it returns (a session
   * runs on the calling thread, a pool copies them), so the caller may reuse their buffers.
   */
  run(feeds: Feeds, count: number): Promise<Record<string, Float32Array>>;
  release(): Promise<void>;
}

export class ModelError extends CaiError {}

export interface ModelOptions {
  /** Threads one inference uses. */
  intraOpThreads?: number;
}

/** One ONNX Runtime session on this thread. */
export async function loadModel(path: string, options: ModelOptions = {}): Promise<OnnxModel> {
  let session: Ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path, {
      intraOpNumThreads: options.intraOpThreads ?? 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (error) {
    throw new ModelError(`cannot load model ${path}: ${(error as Error).message}`, { cause: error });
  }
  return {
    path,
    concurrency: 1,
    async run(feeds, count) {
      // Copies of the caller's arrays: onnxruntime-node starts the run on a later turn (setImmediate)
      // and reads its tensors in place then, after the caller may have reused the buffers.
      const tensors = Object.fromEntries(
        Object.entries(feeds).map(([name, { data, dims }]) => [
          name,
          data instanceof BigInt64Array ? new ort.Tensor('int64', data.slice(), dims) : new ort.Tensor('float32', data.slice(), dims),
        ]),
      );
      const results = await session.run(tensors);
      const outputs: Record<string, Float32Array> = {};
      for (const [name, tensor] of Object.entries(results)) {
        if (tensor.type !== 'float32') throw new ModelError(`${path}: output ${name} is ${tensor.type}; CAI reads float32 outputs`);
        const data = tensor.data as Float32Array;
        if (data.length % Math.max(count, 1) !== 0 || (count > 0 && data.length === 0)) {
          throw new ModelError(`${path} returned ${data.length} values of ${name} for ${count} objects`);
        }
        outputs[name] = data;
      }
      return outputs;
    },
    release: () => session.release(),
  };
}

/** A model's outputs over a partition, each in row order: `width` values per object. */
export interface PartitionOutputs {
  outputs: Record<string, { values: Float32Array; width: number }>;
  /** Objects whose outputs are NaN: a non-finite input value, or a non-finite output. */
  nonFinite: number;
  /** The label tensors the card names that the partition holds, by output name. */
  labels: Record<string, Float32Array>;
  batches: number;
  /** Wall time blocked waiting for partition bytes (reading runs ahead, overlapping inference). */
  readWaitSeconds: number;
  /** The rest of the wall time: batches running, the next ones dispatched as workers free up. */
  inferenceSeconds: number;
}

/** Rows [offset, offset+count) of the chunk whose float inputs are not all finite, as offsets within the batch. */
function unmeasurableRows(rows: TensorRows, inputs: string[], offset: number, count: number): number[] {
  const found: number[] = [];
  for (let r = offset; r < offset + count; r++) {
    let finite = true;
    for (const name of inputs) {
      const data = rows.tensors[name];
      if (data instanceof BigInt64Array) continue;
      const per = data.length / rows.count;
      for (let i = r * per; finite && i < (r + 1) * per; i++) finite = Number.isFinite(data[i]);
      if (!finite) break;
    }
    if (!finite) found.push(r - offset);
  }
  return found;
}

/**
 * Runs the model over a whole partition in batches, reading ahead while it computes. Up to twice the
 * model's concurrency of batches are in flight, so a pool's workers never wait for the next one; each
 * batch's outputs land at its rows whatever order the batches finish in. An object with a non-finite
 * input value cannot be measured: all its outputs are NaN, whatever the model made of it.
 */
export async function runPartition(
  model: OnnxModel,
  card: ModelCard,
  partition: TensorPartition,
  batchSize: number,
  onBatch?: (done: number, total: number) => void,
): Promise<PartitionOutputs> {
  const samples = partition.samples;
  const inputs = Object.keys(card.inputs);
  const labelNames = Object.keys(partition.feeds).filter((name) => name.startsWith('label:'));
  const labels: Record<string, Float32Array> = Object.fromEntries(
    labelNames.map((name) => [name.slice('label:'.length), new Float32Array(samples * numelOf(partition.feeds[name].rowShape))]),
  );
  const outputs: PartitionOutputs['outputs'] = {};
  const started = process.hrtime.bigint();
  let readWait = 0n;
  let batches = 0;
  let done = 0;
  const inFlight: Promise<void>[] = [];
  const chunks = partitionChunks(partition, { rowsPerChunk: rowsPerChunk(partition, batchSize) });
  for (;;) {
    const waitStart = process.hrtime.bigint();
    const next = await chunks.next();
    readWait += process.hrtime.bigint() - waitStart;
    if (next.done) break;
    const rows = next.value;
    for (const name of labelNames) labels[name.slice('label:'.length)].set(rows.tensors[name] as Float32Array, rows.start);
    for (let offset = 0; offset < rows.count; offset += batchSize) {
      const count = Math.min(batchSize, rows.count - offset);
      const at = rows.start + offset;
      // Read now: the chunk's buffers are reused once the walk moves on.
      const unmeasurable = unmeasurableRows(rows, inputs, offset, count);
      const feeds: Feeds = Object.fromEntries(
        inputs.map((name) => {
          const data = rows.tensors[name];
          const per = data.length / rows.count;
          return [name, { data: data.subarray(offset * per, (offset + count) * per), dims: [count, ...partition.feeds[name].rowShape] }];
        }),
      );
      const landed = model.run(feeds, count).then((results) => {
        for (const name of Object.keys(card.outputs)) {
          const values = results[name];
          if (!values) throw new ModelError(`${model.path} returned no output ${name}`);
          const width = values.length / count;
          outputs[name] ??= { values: new Float32Array(samples * width), width };
          const out = outputs[name];
          if (out.width !== width) throw new ModelError(`${model.path}: output ${name} changed width between batches`);
          out.values.set(values, at * width);
          for (const r of unmeasurable) out.values.fill(NaN, (at + r) * width, (at + r + 1) * width);
        }
        batches++;
        done += count;
        onBatch?.(done, samples);
      });
      // Awaited in turn below; until then a failure must not count as unhandled.
      landed.catch(() => {});
      inFlight.push(landed);
      if (inFlight.length >= 2 * model.concurrency) await inFlight.shift();
    }
  }
  await Promise.all(inFlight);
  // An object is unmeasured when any of its outputs is NaN (a non-finite input, or output).
  let nonFinite = 0;
  for (let i = 0; i < samples; i++) {
    if (Object.values(outputs).some(({ values, width }) => values.subarray(i * width, (i + 1) * width).some((v) => !Number.isFinite(v))))
      nonFinite++;
  }
  const totalNs = process.hrtime.bigint() - started;
  return {
    outputs,
    labels,
    nonFinite,
    batches,
    readWaitSeconds: Number(readWait) / 1e9,
    inferenceSeconds: Number(totalNs - readWait) / 1e9,
  };
}
