import { S3_PARALLEL_PARTS, S3_PART_BYTES } from '../tensors/byte-source';
import { BYTES_PER_GALAXY, IMAGE_ELEMENTS } from '../partitions/galaxy';
import { ROW_CHUNK_BYTES } from '../partitions/chunks';

/** Galaxies in a 16 MiB chunk of images: what a partition walk holds at a time, twice. */
const ROWS_PER_CHUNK = Math.floor(ROW_CHUNK_BYTES / (IMAGE_ELEMENTS * 4));

/**
 * What a rank needs in memory, planned before it runs, as its time is: the runtime; each inference
 * worker's thread and ONNX session (the model's weights and the graph's own buffers); the
 * activations of the batches the workers run at once; and the partition being read (two chunks of
 * rows, and the S3 parts in flight). A rank reads its partitions one after another, so its peak is
 * its largest partition's.
 *
 * The figures are fitted to the peak RSS (VmHWM) of the inference artifact's runtime under the local
 * emulator, with the node flags Lambda's bootstrap sets, over one rank (2026-11-27, issue 21): both
 * AstroMAE exports at hand, model/default.onnx (3.5 MiB) and the full-size one (`bench/prepare.py
 * --weights model/bench-full.safetensors`, 60.3 MiB), at 1, 2 and 6 workers, batches of 16 and 256,
 * partitions of 1 to 256 MiB: estimates land within −1 % and +7 % of the measured peaks for
 * partitions of 16 MiB and more, up to +18 % over for 1 MiB ones (tests/unit/rank-memory.test.ts
 * holds the measurements; docs/planning.md the method). `npm run bench` measures the full-size
 * model's peak RSS at 1, 2 and 6 workers on its machine: where it differs, its figures replace
 * these, here and only here.
 * Activations are an AstroMAE's: a model of another shape needs its own figure.
 */
export const RANK_MEMORY = {
  /** Node.js, the runtime client, the AWS SDK and ONNX Runtime's library, before any session (MB). */
  runtimeMb: 135,
  /** Each worker's thread (its own V8 isolate) besides its session (MB). */
  workerMb: 19,
  /** A session holds its model this many times over (the weights, their prepacked copies, the graph). */
  sessionPerModelByte: 1.45,
  /** Activations per galaxy of a running batch (MB): 0.46 for the default model, 1.36 for the full-size one. */
  activationMb: { perGalaxy: 0.4, perGalaxyPerModelMiB: 0.016 },
} as const;

const MiB = 1024 * 1024;

export interface RankMemoryInput {
  /** The model file's size (bytes). */
  modelBytes: number;
  workers: number;
  batchSize: number;
  /** The rank's largest partition (bytes). */
  partitionBytes: number;
  /** What its reader holds beside the rows asked for (PartitionObject.decodeBytes), bytes. */
  decodeBytes?: number;
}

export interface RankMemory {
  /** The rank's estimated peak (MB). */
  totalMb: number;
  runtimeMb: number;
  /** Every worker's thread and session. */
  sessionsMb: number;
  /** The batches running at once. */
  batchesMb: number;
  /** The partition's chunks read ahead and its S3 parts in flight. */
  readAheadMb: number;
}

/** A rank's peak memory, by part (MB). */
export function rankMemory({ modelBytes, workers, batchSize, partitionBytes, decodeBytes = 0 }: RankMemoryInput): RankMemory {
  const galaxies = Math.max(1, Math.floor(partitionBytes / BYTES_PER_GALAXY));
  const modelMiB = modelBytes / MiB;
  const sessionsMb = workers * (RANK_MEMORY.workerMb + RANK_MEMORY.sessionPerModelByte * modelMiB);
  // No more galaxies run at once than the workers' batches, nor than the partition holds; each also has its inputs copied to its worker.
  const running = Math.min(workers * batchSize, galaxies);
  const perGalaxy = RANK_MEMORY.activationMb.perGalaxy + RANK_MEMORY.activationMb.perGalaxyPerModelMiB * modelMiB + BYTES_PER_GALAXY / MiB;
  const batchesMb = running * perGalaxy;
  // Chunks hold whole batches (predictPartition): two of them, and up to eight 8 MiB parts of the read in flight.
  const chunkRows = Math.min(galaxies, batchSize * Math.max(1, Math.floor(ROWS_PER_CHUNK / batchSize)));
  const readAheadMb =
    (2 * chunkRows * IMAGE_ELEMENTS * 4 + Math.min(partitionBytes, S3_PART_BYTES * S3_PARALLEL_PARTS) + decodeBytes) / MiB;
  const runtimeMb = RANK_MEMORY.runtimeMb;
  return { totalMb: Math.ceil(runtimeMb + sessionsMb + batchesMb + readAheadMb), runtimeMb, sessionsMb, batchesMb, readAheadMb };
}
