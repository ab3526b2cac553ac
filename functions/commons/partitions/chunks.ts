import { allocateAligned, S3_PART_BYTES } from '../tensors/byte-source';
import { numelOf } from '../tensors/tensor-file';
import type { TensorPartition, TensorRows } from './partition';

/**
 * How a partition is walked: in row chunks of bounded size, read ahead into reused buffers. Apart
 * from partition.ts (which opens files) so that what only walks (the inference workers' sessions)
 * bundles no reader.
 */

/** Bytes of the largest tensor read per step when a whole partition is walked. */
export const ROW_CHUNK_BYTES = 16 * 1024 * 1024;

/**
 * At most how many GETs (HEAD included) reading a whole S3 partition of these bytes sends: opening
 * its archive (the zip's records, the pickle) takes about a dozen, then each 16 MiB chunk one per
 * 8 MiB part, plus one where a part straddles a chunk. What a crashed attempt may have read is
 * billed with this (tests/integration/pipeline.test.ts holds it over the counts ranks send).
 */
export const readRequestsBound = (bytes: number) => 16 + Math.ceil(bytes / S3_PART_BYTES) + Math.ceil(bytes / ROW_CHUNK_BYTES);

/** Rows per step: as many as keep the largest tensor's chunk within ROW_CHUNK_BYTES, a whole number of batches. */
export function rowsPerChunk(partition: TensorPartition, batchSize: number): number {
  const widest = Object.values(partition.feeds).reduce((most, f) => Math.max(most, numelOf(f.rowShape) * 4), 4);
  return batchSize * Math.max(1, Math.floor(ROW_CHUNK_BYTES / widest / batchSize));
}

/**
 * Walks a partition in row chunks, in order, reading ahead. Chunks are read into a small ring of
 * reused buffers, so a chunk's arrays are valid until the caller asks for the next one; memory is
 * (readAhead + 1) chunks whatever the partition's size, and no page is faulted in twice.
 */
export async function* partitionChunks(
  partition: TensorPartition,
  options: { rowsPerChunk: number; readAhead?: number },
): AsyncGenerator<TensorRows> {
  const { rowsPerChunk: per, readAhead = 1 } = options;
  const chunks = Math.ceil(partition.samples / per);
  const ring = Array.from({ length: Math.min(chunks, readAhead + 1) }, () =>
    Object.fromEntries(
      Object.entries(partition.feeds).map(([name, f]) => [
        name,
        allocateAligned(Math.min(partition.samples, per) * numelOf(f.rowShape) * 4),
      ]),
    ),
  );
  const read = (k: number) => partition.readRows(k * per, Math.min(partition.samples, (k + 1) * per), ring[k % ring.length]);
  const pending: Promise<TensorRows>[] = [];
  for (let k = 0; k < Math.min(chunks, readAhead + 1); k++) pending.push(read(k));
  // Reads in flight that nobody awaits must not become unhandled rejections if the walk stops.
  for (const p of pending) p.catch(() => {});
  for (let k = 0; k < chunks; k++) {
    const rows = await pending.shift()!;
    yield rows;
    const next = k + readAhead + 1;
    if (next < chunks) {
      const p = read(next);
      p.catch(() => {});
      pending.push(p);
    }
  }
}
