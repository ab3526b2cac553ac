import { PartitionLayoutError } from '../../functions/commons/errors';
import { BANDS, IMAGE_ELEMENTS, IMAGE_SHAPE } from '../../functions/commons/partitions/galaxy';
import { openPartition, type TensorPartition } from '../../functions/commons/partitions/partition';
import { partitionChunks as tensorChunks, ROW_CHUNK_BYTES } from '../../functions/commons/partitions/chunks';
import type { ByteSource } from '../../functions/commons/tensors/byte-source';

/**
 * CAI's own partitions (the prototype's format) as images, magnitudes and redshifts: what the dataset
 * tools (split, inspect's peers, the benches) read. The inference path reads any partition through
 * its model's card (functions/commons/partitions/partition.ts); this is that reader with the galaxy
 * layout's feeds and checks.
 */

/** Rows [start, start+count) of a partition, widened to float32 where the file held another dtype. */
export interface PartitionRows {
  start: number;
  count: number;
  /** [count, 5, 32, 32] */
  images: Float32Array;
  /** [count, 5] */
  magnitudes: Float32Array;
  /** [count], absent for unlabelled partitions. */
  redshift?: Float32Array;
}

export interface PartitionReader {
  name: string;
  /** Size of the file in bytes. */
  bytes: number;
  samples: number;
  labelled: boolean;
  /** `into`, when given, receives the image bytes (float32 partitions read straight into it). */
  readRows(start: number, end: number, into?: Uint8Array): Promise<PartitionRows>;
  close(): Promise<void>;
}

const EXPECTED =
  'expected TensorDataset(images float[N,5,32,32], magnitudes float[N,5], optional redshift float[N]), or a dict of those keys';

/** The galaxy layout: images, magnitudes and the redshift label, by key in a dict, else by position. */
export const GALAXY_FEEDS = [
  { name: 'images', tensor: 'images', position: 0, dtype: 'float32' },
  { name: 'magnitudes', tensor: 'magnitudes', position: 1, dtype: 'float32' },
  { name: 'redshift', tensor: 'redshift', position: 2, dtype: 'float32', optional: true },
] as const;

function checkLayout(partition: TensorPartition): void {
  const { images, magnitudes, redshift } = partition.feeds;
  const same = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
  const fits =
    same(images.rowShape, IMAGE_SHAPE) &&
    same(magnitudes.rowShape, [BANDS]) &&
    (!redshift || redshift.rowShape.length === 0 || same(redshift.rowShape, [1]));
  if (!fits) {
    const found = Object.entries(partition.feeds).map(([, f]) => `${f.stored}[${[partition.samples, ...f.rowShape].join(',')}]`);
    throw new PartitionLayoutError(`${partition.name}: ${EXPECTED}; found ${found.join(', ')}`);
  }
}

/**
 * Opens a partition for reading row ranges. Nothing but the zip directory and the pickle is read
 * here, and the small per-object tensors; images are read range by range as rows are asked for.
 */
export async function openTorchPartition(source: ByteSource): Promise<PartitionReader> {
  let partition: TensorPartition;
  try {
    partition = await openPartition(source, [...GALAXY_FEEDS]);
  } catch (error) {
    if (!(error instanceof PartitionLayoutError)) throw error;
    throw new PartitionLayoutError(`${source.name}: ${EXPECTED}; ${error.message.slice(source.name.length + 2)}`, { cause: error });
  }
  checkLayout(partition);
  return {
    name: partition.name,
    bytes: partition.bytes,
    samples: partition.samples,
    labelled: 'redshift' in partition.feeds,
    async readRows(start, end, into) {
      const rows = await partition.readRows(start, end, into ? { images: into } : undefined);
      return {
        start,
        count: rows.count,
        images: rows.tensors.images as Float32Array,
        magnitudes: rows.tensors.magnitudes as Float32Array,
        redshift: rows.tensors.redshift as Float32Array | undefined,
      };
    },
    close: () => partition.close(),
  };
}

export const ROWS_PER_CHUNK = Math.floor(ROW_CHUNK_BYTES / (IMAGE_ELEMENTS * 4));

/** Walks a galaxy partition in row chunks, reading ahead (functions/commons/partitions/partition.ts's walk). */
export async function* partitionChunks(
  reader: PartitionReader,
  options: { rowsPerChunk?: number; readAhead?: number } = {},
): AsyncGenerator<PartitionRows> {
  const adapter: TensorPartition = {
    name: reader.name,
    format: 'torch',
    firstRow: 0,
    bytes: reader.bytes,
    samples: reader.samples,
    feeds: { images: { rowShape: IMAGE_SHAPE, stored: 'float32' } },
    readRows: async (start, end, into) => {
      const rows = await reader.readRows(start, end, into?.images);
      return {
        start,
        count: rows.count,
        tensors: { images: rows.images, magnitudes: rows.magnitudes, ...(rows.redshift ? { redshift: rows.redshift } : {}) },
      };
    },
    close: () => reader.close(),
  };
  for await (const rows of tensorChunks(adapter, { rowsPerChunk: options.rowsPerChunk ?? ROWS_PER_CHUNK, readAhead: options.readAhead })) {
    const t = rows.tensors as Record<string, Float32Array>;
    yield { start: rows.start, count: rows.count, images: t.images, magnitudes: t.magnitudes, redshift: t.redshift };
  }
}
