import { UsageError } from '../../functions/commons/errors';
import type { ObjectSink } from '../locations';
import { type PartitionRows } from './galaxy-partition';
import { IMAGE_SHAPE, MAGNITUDE_SHAPE } from '../../functions/commons/partitions/galaxy';
import { numelOf } from '../../functions/commons/tensors/tensor-file';
import { DTYPES } from '../../functions/commons/tensors/dtype';
import { TorchDatasetArchive, torchDatasetSize, type TensorSpec } from './torch-writer';

/** The tensors of one partition being written, to be filled in place. */
export type PartitionTensors = Omit<PartitionRows, 'start' | 'count'> & {
  /** [count] morphology class index, when the partition holds one. */
  morphology?: BigInt64Array;
  /** [count] 1 for an injected oddity, 0 otherwise, when the partition holds the label. */
  anomaly?: Uint8Array;
};

/**
 * How a partition's tensors are stored: `dataset` is the prototype's TensorDataset (images,
 * magnitudes, redshift by position); `dict` is a dict of named tensors, which can also carry the
 * per-object labels a TensorDataset has no agreed position for.
 */
export type PartitionLayout = 'dataset' | 'dict';

/** What a partition holds beyond images, magnitudes and (when labelled) redshift. */
export interface PartitionContents {
  layout?: PartitionLayout;
  /** An int64 `morphology` tensor (dict layout only). */
  morphology?: boolean;
  /** A uint8 `anomaly` tensor (dict layout only). */
  anomaly?: boolean;
}

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
  /** Present for dict partitions only, so that a dataset manifest stays what it always was. */
  layout?: 'dict';
  /** The dict's keys, in order (dict partitions only). */
  tensors?: string[];
  partitions: PartitionEntry[];
}

export const PARTITION_MANIFEST = 'partitions.json';

/** Each tensor a partition may hold, under the key a dict partition gives it. */
const TENSORS = {
  images: (rows: number): TensorSpec => ({ dtype: 'float32', shape: [rows, ...IMAGE_SHAPE] }),
  magnitudes: (rows: number): TensorSpec => ({ dtype: 'float32', shape: [rows, ...MAGNITUDE_SHAPE] }),
  redshift: (rows: number): TensorSpec => ({ dtype: 'float32', shape: [rows] }),
  morphology: (rows: number): TensorSpec => ({ dtype: 'int64', shape: [rows] }),
  anomaly: (rows: number): TensorSpec => ({ dtype: 'uint8', shape: [rows] }),
};
type TensorName = keyof typeof TENSORS;

/** The tensors of a partition, in file order. */
function tensorNames(labelled: boolean, contents: PartitionContents): TensorName[] {
  if (contents.layout !== 'dict' && (contents.morphology || contents.anomaly)) {
    throw new UsageError('morphology and anomaly labels need the dict layout: a TensorDataset has no position for them');
  }
  const names: TensorName[] = ['images', 'magnitudes'];
  if (labelled) names.push('redshift');
  if (contents.morphology) names.push('morphology');
  if (contents.anomaly) names.push('anomaly');
  return names;
}

const specsFor = (rows: number, labelled: boolean, contents: PartitionContents = {}): TensorSpec[] =>
  tensorNames(labelled, contents).map((key) => (contents.layout === 'dict' ? { ...TENSORS[key](rows), key } : TENSORS[key](rows)));

/** The most objects a partition of at most `maxBytes` holds (file size, headers included). */
export function rowsPerPartition(maxBytes: number, labelled: boolean, contents: PartitionContents = {}): number {
  const rowBytes = specsFor(1, labelled, contents).reduce((n, s) => n + numelOf(s.shape) * DTYPES[s.dtype].itemSize, 0);
  const fits = (rows: number) => torchDatasetSize(specsFor(rows, labelled, contents)) <= maxBytes;
  // Headers and alignment padding are not linear in rows: estimate, then settle exactly.
  let rows = Math.max(0, Math.floor((maxBytes - torchDatasetSize(specsFor(0, labelled, contents))) / rowBytes));
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
  /** Layout and extra labels; the prototype's TensorDataset when absent. */
  contents?: PartitionContents;
  sink: ObjectSink;
  /** Fills the tensors with objects [start, start+count) of the dataset: every element of them. */
  fill(tensors: PartitionTensors, start: number, count: number): Promise<void> | void;
  onProgress?(progress: WriteProgress): void;
}

/**
 * Writes `1.pt … N.pt` in the prototype's format (TensorDataset of float32 tensors) or as dicts of
 * named tensors, each at most `maxBytes`, and `partitions.json`. One partition is in memory at a time.
 */
export async function writePartitions(options: WritePartitionsOptions): Promise<PartitionManifest> {
  const { samples, maxBytes, labelled, sink, contents = {} } = options;
  if (!Number.isSafeInteger(samples) || samples < 1) throw new UsageError(`cannot write a dataset of ${samples} objects`);
  const perPartition = rowsPerPartition(maxBytes, labelled, contents);
  const names = tensorNames(labelled, contents);
  const totalPartitions = Math.ceil(samples / perPartition);
  const manifest: PartitionManifest = {
    format: 'cai.partitions/1',
    samples,
    labelled,
    maxPartitionBytes: maxBytes,
    ...(contents.layout === 'dict' ? { layout: 'dict' as const, tensors: names } : {}),
    partitions: [],
  };
  let bytes = 0;
  let archive: TorchDatasetArchive | undefined;
  for (let index = 0; index < totalPartitions; index++) {
    const start = index * perPartition;
    const count = Math.min(perPartition, samples - start);
    // Full partitions share one layout, so one buffer serves them all: memory stays at one
    // partition instead of however many the garbage collector has not yet released.
    if (archive?.specs[0].shape[0] !== count) archive = new TorchDatasetArchive(specsFor(count, labelled, contents));
    const tensor = (name: TensorName) => (names.includes(name) ? archive!.tensor(names.indexOf(name)) : undefined);
    await options.fill(
      {
        images: tensor('images') as Float32Array,
        magnitudes: tensor('magnitudes') as Float32Array,
        redshift: tensor('redshift') as Float32Array | undefined,
        morphology: tensor('morphology') as BigInt64Array | undefined,
        anomaly: tensor('anomaly') as Uint8Array | undefined,
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
