import * as ort from 'onnxruntime-node';
import { CaiError } from '../errors';
import { BANDS, IMAGE_ELEMENTS, ROWS_PER_CHUNK, partitionChunks, type PartitionReader, type PartitionRows } from '../partitions/reader';

/** An AstroMAE ONNX model: image float32[B,5,32,32] + magnitude float32[B,5] → redshift float32[B]. */
export interface RedshiftModel {
  path: string;
  /** Batches it runs at once: 1 for a session, N for a pool of N workers. */
  concurrency: number;
  /**
   * Predicts `count` objects from the start of the arrays. It has read its inputs by the time it
   * returns (a session runs on the calling thread, a pool copies them), so the caller may reuse them.
   */
  predict(images: Float32Array, magnitudes: Float32Array, count: number): Promise<Float32Array>;
  release(): Promise<void>;
}

export class ModelError extends CaiError {}

export interface ModelOptions {
  /** Threads one inference uses; Lambda's vCPUs follow its memory size. */
  intraOpThreads?: number;
}

export async function loadRedshiftModel(path: string, options: ModelOptions = {}): Promise<RedshiftModel> {
  let session: ort.InferenceSession;
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
  const inputs = [...session.inputNames].sort().join(',');
  if (inputs !== 'image,magnitude' || !session.outputNames.includes('redshift')) {
    await session.release();
    throw new ModelError(
      `${path} is not a CAI redshift model: inputs [${session.inputNames}] and outputs [${session.outputNames}], ` +
        'expected inputs image and magnitude and output redshift (export it with npm run model:export)',
    );
  }
  return {
    path,
    concurrency: 1,
    async predict(images, magnitudes, count) {
      const feeds = {
        // Views over the caller's arrays: onnxruntime reads them in place.
        image: new ort.Tensor('float32', images.subarray(0, count * IMAGE_ELEMENTS), [count, BANDS, 32, 32]),
        magnitude: new ort.Tensor('float32', magnitudes.subarray(0, count * BANDS), [count, BANDS]),
      };
      const { redshift } = await session.run(feeds);
      const out = redshift.data as Float32Array;
      if (out.length !== count) throw new ModelError(`${path} returned ${out.length} values for ${count} objects`);
      return out;
    },
    release: () => session.release(),
  };
}

export interface PartitionPrediction {
  /** One per object, in row order; NaN for an object with a non-finite input value or output. */
  predictions: Float32Array;
  /** Objects whose prediction is NaN. */
  nonFinite: number;
  /** The partition's labels, when it has them. */
  redshift?: Float32Array;
  batches: number;
  /** Wall time blocked waiting for partition bytes (reading runs ahead, overlapping inference). */
  readWaitSeconds: number;
  /** The rest of the wall time: batches running, the next ones dispatched as workers free up. */
  inferenceSeconds: number;
}

/**
 * What a non-finite input means: the object cannot be measured, so its prediction is NaN, whatever
 * the model made of it (a NaN pixel need not reach the output). The rows [offset, offset+count) of
 * the chunk whose inputs are not all finite, as offsets within the batch.
 */
function nonFiniteRows(rows: PartitionRows, offset: number, count: number): number[] {
  const found: number[] = [];
  for (let r = offset; r < offset + count; r++) {
    let finite = true;
    for (let i = r * BANDS; finite && i < (r + 1) * BANDS; i++) finite = Number.isFinite(rows.magnitudes[i]);
    for (let i = r * IMAGE_ELEMENTS; finite && i < (r + 1) * IMAGE_ELEMENTS; i++) finite = Number.isFinite(rows.images[i]);
    if (!finite) found.push(r - offset);
  }
  return found;
}

/**
 * Runs the model over a whole partition in batches, in row order, reading ahead while it computes.
 * Up to twice the model's concurrency of batches are in flight, so a pool's workers never wait for
 * the next one; each batch's predictions land at its rows whatever order the batches finish in.
 */
export async function predictPartition(
  model: RedshiftModel,
  reader: PartitionReader,
  batchSize: number,
  onBatch?: (done: number, total: number) => void,
): Promise<PartitionPrediction> {
  const predictions = new Float32Array(reader.samples);
  const redshift = reader.labelled ? new Float32Array(reader.samples) : undefined;
  // Chunks hold whole batches, so no batch straddles two reads.
  const rowsPerChunk = batchSize * Math.max(1, Math.floor(ROWS_PER_CHUNK / batchSize));
  const started = process.hrtime.bigint();
  let readWait = 0n;
  let batches = 0;
  let nonFinite = 0;
  let done = 0;
  const inFlight: Promise<void>[] = [];
  const chunks = partitionChunks(reader, { rowsPerChunk });
  for (;;) {
    const waitStart = process.hrtime.bigint();
    const next = await chunks.next();
    readWait += process.hrtime.bigint() - waitStart;
    if (next.done) break;
    const rows = next.value;
    if (redshift && rows.redshift) redshift.set(rows.redshift, rows.start);
    for (let offset = 0; offset < rows.count; offset += batchSize) {
      const count = Math.min(batchSize, rows.count - offset);
      const at = rows.start + offset;
      // Read now: the chunk's buffers are reused once the walk moves on.
      const unmeasurable = nonFiniteRows(rows, offset, count);
      const batch = model.predict(rows.images.subarray(offset * IMAGE_ELEMENTS), rows.magnitudes.subarray(offset * BANDS), count);
      const landed = batch.then((out) => {
        if (out.length !== count) throw new ModelError(`${model.path} returned ${out.length} values for ${count} objects`);
        predictions.set(out, at);
        for (const r of unmeasurable) predictions[at + r] = NaN;
        for (let r = 0; r < count; r++) if (!Number.isFinite(predictions[at + r])) nonFinite++;
        batches++;
        done += count;
        onBatch?.(done, reader.samples);
      });
      // Awaited in turn below; until then a failure must not count as unhandled.
      landed.catch(() => {});
      inFlight.push(landed);
      if (inFlight.length >= 2 * model.concurrency) await inFlight.shift();
    }
  }
  await Promise.all(inFlight);
  const totalNs = process.hrtime.bigint() - started;
  return {
    predictions,
    nonFinite,
    redshift,
    batches,
    readWaitSeconds: Number(readWait) / 1e9,
    inferenceSeconds: Number(totalNs - readWait) / 1e9,
  };
}
