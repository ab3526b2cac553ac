import { UsageError } from '../../functions/commons/errors';
import type { ObjectSink } from '../locations';
import { type PartitionRows } from './galaxy-partition';
import { IMAGE_SHAPE, MAGNITUDE_SHAPE } from '../../functions/commons/partitions/galaxy';
import { numelOf } from '../../functions/commons/torch/archive';
import { TorchDatasetArchive, torchDatasetSize, type TensorSpec } from './torch-writer';

/** The tensors of one partition being written, to be filled in place. */
export type PartitionTensors = Omit<PartitionRows, 'start' | 'count'>;

export interface PartitionEntry {
  key: string;
  bytes: number;
  samples: number;
  /** Index of this partition's first object in the whole dataset. */
  firstRow: number;
}

/** partitions.json: what a split or synth wrote, so that nothing has to be opened to plan a run. */
export interface PartitionManifest {
  format: 'cai.partitions/1';
  samples: number;
  labelled: boolean;
  maxPartitionBytes: number;
  partitions: PartitionEntry[];
}

export const PARTITION_MANIFEST = 'partitions.json';

const specsFor = (rows: number, labelled: boolean): TensorSpec[] => [
  { dtype: 'float32', shape: [rows, ...IMAGE_SHAPE] },
  { dtype: 'float32', shape: [rows, ...MAGNITUDE_SHAPE] },
  ...(labelled ? [{ dtype: 'float32' as const, shape: [rows] }] : []),
];

/** The most objects a partition of at most `maxBytes` holds (file size, headers included). */
export function rowsPerPartition(maxBytes: number, labelled: boolean): number {
  const rowBytes = specsFor(1, labelled).reduce((n, s) => n + numelOf(s.shape) * 4, 0);
  const fits = (rows: number) => torchDatasetSize(specsFor(rows, labelled)) <= maxBytes;
  // Headers and alignment padding are not linear in rows: estimate, then settle exactly.
  let rows = Math.max(0, Math.floor((maxBytes - torchDatasetSize(specsFor(0, labelled))) / rowBytes));
  while (rows > 0 && !fits(rows)) rows--;
  while (fits(rows + 1)) rows++;
  if (rows < 1) {
    throw new UsageError(`a partition of at most ${maxBytes} bytes cannot hold one object (${rowBytes} bytes each)`);
  }
  return rows;
}

export interface WriteProgress {
  partitions: number;
  totalPartitions: number;
  samples: number;
  bytes: number;
}

export interface WritePartitionsOptions {
  samples: number;
  maxBytes: number;
  labelled: boolean;
  sink: ObjectSink;
  /** Fills the tensors with objects [start, start+count) of the dataset: every element of them. */
  fill(tensors: PartitionTensors, start: number, count: number): Promise<void> | void;
  onProgress?(progress: WriteProgress): void;
}

/**
 * Writes `1.pt … N.pt` in the prototype's format (TensorDataset of float32 tensors), each at most
 * `maxBytes`, and `partitions.json`. One partition is in memory at a time.
 */
export async function writePartitions(options: WritePartitionsOptions): Promise<PartitionManifest> {
  const { samples, maxBytes, labelled, sink } = options;
  if (!Number.isSafeInteger(samples) || samples < 1) throw new UsageError(`cannot write a dataset of ${samples} objects`);
  const perPartition = rowsPerPartition(maxBytes, labelled);
  const totalPartitions = Math.ceil(samples / perPartition);
  const manifest: PartitionManifest = {
    format: 'cai.partitions/1',
    samples,
    labelled,
    maxPartitionBytes: maxBytes,
    partitions: [],
  };
  let bytes = 0;
  let archive: TorchDatasetArchive | undefined;
  for (let index = 0; index < totalPartitions; index++) {
    const start = index * perPartition;
    const count = Math.min(perPartition, samples - start);
    // Full partitions share one layout, so one buffer serves them all: memory stays at one
    // partition instead of however many the garbage collector has not yet released.
    if (archive?.specs[0].shape[0] !== count) archive = new TorchDatasetArchive(specsFor(count, labelled));
    await options.fill(
      {
        images: archive.tensor(0) as Float32Array,
        magnitudes: archive.tensor(1) as Float32Array,
        redshift: labelled ? (archive.tensor(2) as Float32Array) : undefined,
      },
      start,
      count,
    );
    const file = archive.finish();
    const key = `${index + 1}.pt`;
    await sink.put(key, file);
    bytes += file.byteLength;
    manifest.partitions.push({ key, bytes: file.byteLength, samples: count, firstRow: start });
    options.onProgress?.({ partitions: index + 1, totalPartitions, samples: start + count, bytes });
  }
  await sink.put(PARTITION_MANIFEST, new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`), 'application/json');
  return manifest;
}
