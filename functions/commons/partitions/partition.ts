import { PartitionLayoutError } from '../errors';
import type { ByteSource } from '../tensors/byte-source';
import { DTYPES, toFloat32, toInt64, type DType, type TensorData } from '../tensors/dtype';
import { describeTensor, numelOf, type StoredTensor, type TensorFile, type TensorFormat } from '../tensors/tensor-file';
import type { TorchFile } from '../torch/tensor-file';
import { openTensorFile } from './tensor-files';

/**
 * A partition read for a model: the arrays its card names, in the file's own terms (a torch position
 * or key, an HDF5 dataset, a Parquet column, a FITS HDU or column, an .npz array), every one with a
 * row per object, over the whole file or a range of its rows. Small arrays (magnitudes, labels) are
 * read whole when it opens; large ones (images) row range by row range, as they are asked for, so a
 * reader holds no more than the rows in hand. Each array is given as the model wants it: widened to
 * float32 or int64, channel-last made channel-first, scaled and offset, as its card declares.
 */

/** What a card may ask of an array on its way to the model, so that nobody rewrites the data for it. */
export interface FeedTransform {
  /** Each object's values read as this shape (a flat list as an image): as many values, row-major. */
  shape?: number[];
  /** The file holds each object channel-last ([H, W, C]); the model wants it channel-first ([C, H, W]). */
  channelsLast?: boolean;
  /** value × scale + offset (uint8 0–255 → 0–1: scale 1/255). */
  scale?: number;
  offset?: number;
}

/** One tensor a model reads, as its card names it: `name` is the graph input (or the output it labels). */
export interface TensorFeed {
  name: string;
  tensor: number | string;
  /** What it is given as: float32 from any numeric dtype, int64 from an integer one. */
  dtype: 'float32' | 'int64';
  /** A label: a partition without it is read all the same (the run reports no accuracy). */
  optional?: boolean;
  /** For a feed named by key: its position when the partition is a torch archive and no dict (a TensorDataset). */
  position?: number;
  transform?: FeedTransform;
}

export type FeedData = Float32Array | BigInt64Array;

/** Rows [start, start+count) of each tensor present, contiguous, row-major. */
export interface TensorRows {
  start: number;
  count: number;
  tensors: Record<string, FeedData>;
}

/** Rows [start, end) of a file: the part of it one manifest item names. */
export interface RowRange {
  start: number;
  end: number;
}

export interface TensorPartition {
  name: string;
  format: TensorFormat;
  /** Size of the file in bytes. */
  bytes: number;
  /** Objects in this partition (the file's, or its row range's). */
  samples: number;
  /** Where its rows begin in the file (0 unless it is a row range). */
  firstRow: number;
  /** Each present feed's shape of one object as the model gets it, and the dtype the file holds it in. */
  feeds: Record<string, { rowShape: number[]; stored: DType }>;
  /**
   * Rows [start, end) of the partition (0 is its first row). `into` receives the bytes of the feed named
   * so, when that tensor is float32 in the file and given as it is (read straight into it).
   */
  readRows(start: number, end: number, into?: Record<string, Uint8Array>): Promise<TensorRows>;
  close(): Promise<void>;
}

/** A tensor read whole when the partition opens rather than range by range: its whole size at most. */
const WHOLE_TENSOR_BYTES = 8 * 1024 * 1024;

/** An object's shape as read: the file's, or the one the card reads its values as. */
const readShape = (rowShape: number[], transform?: FeedTransform) => transform?.shape ?? rowShape;

/** The per-object shape the model gets: channel-last moved to channel-first. */
function givenShape(rowShape: number[], transform?: FeedTransform): number[] {
  const shape = readShape(rowShape, transform);
  return transform?.channelsLast && shape.length >= 2 ? [shape[shape.length - 1], ...shape.slice(0, -1)] : shape;
}

/**
 * Float32 values of rows of a dtype, as the card gives them to the model, in one pass: each value
 * widened, moved from channel-last to channel-first when asked, then scaled and offset.
 */
function transformed(dtype: DType, data: TensorData, rows: number, rowShape: number[], transform: FeedTransform): Float32Array {
  const { channelsLast, scale = 1, offset = 0 } = transform;
  if (!channelsLast && scale === 1 && offset === 0) return toFloat32(dtype, data);
  // float16 and 64-bit integers need their own widening first; every other dtype indexes as numbers.
  const source = dtype === 'float16' || dtype === 'int64' || dtype === 'uint64' ? toFloat32(dtype, data) : (data as Float32Array);
  const out = new Float32Array(data.length);
  if (!channelsLast || rowShape.length < 2) {
    for (let i = 0; i < source.length; i++) out[i] = source[i] * scale + offset;
    return out;
  }
  const channels = rowShape[rowShape.length - 1];
  const pixels = numelOf(rowShape) / channels;
  for (let r = 0, base = 0; r < rows; r++, base += pixels * channels) {
    for (let c = 0; c < channels; c++) {
      const to = base + c * pixels;
      for (let p = 0, from = base + c; p < pixels; p++, from += channels) out[to + p] = source[from] * scale + offset;
    }
  }
  return out;
}

function feedData(feed: TensorFeed, dtype: DType, data: TensorData, rows: number, rowShape: number[]): FeedData {
  if (feed.dtype === 'int64') return toInt64(dtype, data);
  return feed.transform ? transformed(dtype, data, rows, rowShape, feed.transform) : toFloat32(dtype, data);
}

/** The array a feed names, or a line saying why it is not there. */
function findTensor(file: TensorFile, feed: TensorFeed): StoredTensor | string {
  const found = file.find(feed.tensor);
  if (typeof found === 'string' && feed.position !== undefined && file.format === 'torch' && !(file as TorchFile).keyed) {
    return file.find(feed.position);
  }
  return found;
}

/**
 * Opens a partition (a whole file, or `rows` of it) for the given feeds; a PartitionLayoutError names
 * the first feed it cannot give, and what the file holds instead.
 */
export async function openPartition(source: ByteSource, feeds: TensorFeed[], rows?: RowRange): Promise<TensorPartition> {
  const file = await openTensorFile(source);
  try {
    return await partitionOf(file, feeds, rows);
  } catch (error) {
    await file.close();
    throw error;
  }
}

async function partitionOf(file: TensorFile, feeds: TensorFeed[], rows?: RowRange): Promise<TensorPartition> {
  const fail = (message: string): never => {
    throw new PartitionLayoutError(`${file.name}: ${message}`);
  };
  const found = new Map<string, { feed: TensorFeed; tensor: StoredTensor }>();
  for (const feed of feeds) {
    const tensor = findTensor(file, feed);
    if (typeof tensor === 'string') {
      if (feed.optional) continue;
      fail(`${feed.name}: ${tensor}`);
    } else {
      if (tensor.shape.length === 0) fail(`${feed.name}: ${describeTensor(tensor)} has no row per object`);
      if (feed.dtype === 'int64' && !DTYPES[tensor.dtype].integer) fail(`${feed.name}: a ${tensor.dtype} array cannot be fed as int64`);
      const shape = feed.transform?.shape;
      if (shape && numelOf(shape) !== numelOf(tensor.shape.slice(1))) {
        fail(
          `${feed.name}: ${describeTensor(tensor)} has ${numelOf(tensor.shape.slice(1))} values per object, not the ${numelOf(shape)} of shape [${shape.join(', ')}]`,
        );
      }
      if (feed.transform?.channelsLast && readShape(tensor.shape.slice(1), feed.transform).length < 2) {
        fail(`${feed.name}: ${describeTensor(tensor)} has no channel axis to move (channelsLast wants [N, ..., C])`);
      }
      found.set(feed.name, { feed, tensor });
    }
  }
  const counts = new Set([...found.values()].map(({ tensor }) => tensor.shape[0]));
  if (counts.size > 1) {
    fail(
      `its arrays hold different numbers of objects: ${[...found].map(([name, { tensor }]) => `${name} ${describeTensor(tensor)}`).join(', ')}`,
    );
  }
  const fileRows = counts.size ? [...counts][0] : 0;
  const first = rows?.start ?? 0;
  const last = rows?.end ?? fileRows;
  if (!(Number.isSafeInteger(first) && Number.isSafeInteger(last) && 0 <= first && first <= last && last <= fileRows)) {
    fail(`rows ${first}..${last} are not within its ${fileRows} rows`);
  }
  const samples = last - first;

  const whole = new Map<string, FeedData>();
  for (const [name, { feed, tensor }] of found) {
    const rowShape = tensor.shape.slice(1);
    if (samples * numelOf(rowShape) * DTYPES[tensor.dtype].itemSize <= WHOLE_TENSOR_BYTES) {
      whole.set(name, feedData(feed, tensor.dtype, await file.readRows(tensor, first, last), samples, readShape(rowShape, feed.transform)));
    }
  }
  return {
    name: file.name,
    format: file.format,
    bytes: file.size,
    samples,
    firstRow: first,
    feeds: Object.fromEntries(
      [...found].map(([name, { feed, tensor }]) => [
        name,
        { rowShape: givenShape(tensor.shape.slice(1), feed.transform), stored: tensor.dtype },
      ]),
    ),
    async readRows(start, end, into) {
      if (!(0 <= start && start <= end && end <= samples)) throw new RangeError(`rows ${start}..${end} outside a partition of ${samples}`);
      const tensors: Record<string, FeedData> = {};
      for (const [name, { feed, tensor }] of found) {
        const rowShape = tensor.shape.slice(1);
        const per = numelOf(rowShape);
        const held = whole.get(name);
        if (held) {
          tensors[name] = held.subarray(start * per, end * per);
          continue;
        }
        // Only float32 rows given as they are (or only reshaped) land in the caller's float32-sized buffer; others are converted into a new one.
        const { channelsLast, scale = 1, offset = 0 } = feed.transform ?? {};
        const direct = tensor.dtype === 'float32' && feed.dtype === 'float32' && !channelsLast && scale === 1 && offset === 0;
        const data = await file.readRows(tensor, first + start, first + end, direct ? into?.[name] : undefined);
        tensors[name] = feedData(feed, tensor.dtype, data, end - start, readShape(rowShape, feed.transform));
      }
      return { start, count: end - start, tensors };
    },
    close: () => file.close(),
  };
}
