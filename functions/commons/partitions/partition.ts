import { PartitionLayoutError } from '../errors';
import { allocateAligned, type ByteSource, S3_PART_BYTES } from '../tensors/byte-source';
import { DTYPES, toFloat32, type DType } from '../tensors/dtype';
import { PyObject } from '../torch/pickle';
import { numelOf, openTorchArchive, readTensorRows, type TensorRef, type TorchArchive } from '../torch/archive';

/**
 * A partition read for a model: the tensors its card names, each by position (a TensorDataset, or a
 * dict's tensors in order) or by key (a dict of tensors), every one with a row per object. Small
 * tensors (magnitudes, labels) are read whole when it opens; large ones (images) row range by row
 * range, as they are asked for, so a reader holds no more than the rows in hand.
 */

/** One tensor a model reads, as its card names it: `name` is the graph input (or the output it labels). */
export interface TensorFeed {
  name: string;
  tensor: number | string;
  /** What it is given as: float32 from any numeric dtype, int64 from an integer one. */
  dtype: 'float32' | 'int64';
  /** A label: a partition without it is read all the same (the run reports no accuracy). */
  optional?: boolean;
  /** For a feed named by key: its position when the partition is no dict (a TensorDataset). */
  position?: number;
}

export type FeedData = Float32Array | BigInt64Array;

/** Rows [start, start+count) of each tensor present, contiguous, row-major. */
export interface TensorRows {
  start: number;
  count: number;
  tensors: Record<string, FeedData>;
}

export interface TensorPartition {
  name: string;
  /** Size of the file in bytes. */
  bytes: number;
  samples: number;
  /** Each present feed's shape of one object, and the dtype the file holds it in. */
  feeds: Record<string, { rowShape: number[]; stored: DType }>;
  /** `into` receives the bytes of the feed named so, when that tensor is float32 in the file (read straight into it). */
  readRows(start: number, end: number, into?: Record<string, Uint8Array>): Promise<TensorRows>;
  close(): Promise<void>;
}

/** A tensor read whole when the partition opens rather than range by range: its whole size at most. */
const WHOLE_TENSOR_BYTES = 8 * 1024 * 1024;

/** The tensors of an archive by position, and by key when it is a dict. */
function layoutOf(archive: TorchArchive): { positions: TensorRef[]; keys?: Map<string, TensorRef>; kind: string } {
  const { root, tensors } = archive;
  const isTensor = (v: unknown): v is TensorRef => tensors.includes(v as TensorRef);
  if (isTensor(root)) return { positions: [root], kind: 'a single tensor' };
  if (root instanceof Map) {
    const keys = new Map([...root].filter(([key, value]) => typeof key === 'string' && isTensor(value)) as [string, TensorRef][]);
    return { positions: [...keys.values()], keys, kind: `a dict of ${[...keys.keys()].join(', ') || 'no tensors'}` };
  }
  const list = root instanceof PyObject && root.state instanceof Map ? root.state.get('tensors') : root;
  if (Array.isArray(list) && list.every(isTensor)) return { positions: list, kind: `${list.length} tensors by position` };
  return { positions: [], kind: 'no tensors CAI can name' };
}

const shapeText = (t: TensorRef) => `${t.dtype}[${t.shape.join(', ')}]`;
const INTEGER: DType[] = ['int64', 'int32', 'uint8', 'bool'];

/** Opens a partition for the given feeds; a PartitionLayoutError names the first feed it cannot give. */
export async function openPartition(source: ByteSource, feeds: TensorFeed[]): Promise<TensorPartition> {
  const archive = await openTorchArchive(source);
  const layout = layoutOf(archive);
  const found = new Map<string, { feed: TensorFeed; ref: TensorRef }>();
  for (const feed of feeds) {
    const ref =
      typeof feed.tensor === 'number'
        ? layout.positions[feed.tensor]
        : layout.keys
          ? layout.keys.get(feed.tensor)
          : feed.position !== undefined
            ? layout.positions[feed.position]
            : fail(`${feed.name} names tensor "${feed.tensor}", but the partition holds ${layout.kind}: name it by position`);
    if (!ref) {
      if (feed.optional) continue;
      fail(
        `no tensor ${typeof feed.tensor === 'number' ? `at position ${feed.tensor}` : `"${feed.tensor}"`} for ${feed.name}: it holds ${layout.kind}`,
      );
    }
    if (ref.shape.length === 0) fail(`${feed.name}: tensor ${shapeText(ref)} has no row per object`);
    if (feed.dtype === 'int64' && !INTEGER.includes(ref.dtype)) fail(`${feed.name}: a ${ref.dtype} tensor cannot be fed as int64`);
    found.set(feed.name, { feed, ref });
  }
  function fail(message: string): never {
    throw new PartitionLayoutError(`${source.name}: ${message}`);
  }
  const rows = new Set([...found.values()].map(({ ref }) => ref.shape[0]));
  if (rows.size > 1) {
    fail(`its tensors hold different numbers of objects: ${[...found].map(([name, { ref }]) => `${name} ${shapeText(ref)}`).join(', ')}`);
  }
  const samples = rows.size ? [...rows][0] : 0;

  const decode = (feed: TensorFeed, dtype: DType, data: Parameters<typeof toFloat32>[1]): FeedData => {
    if (feed.dtype === 'float32') return toFloat32(dtype, data);
    if (dtype === 'int64') return data as BigInt64Array;
    return BigInt64Array.from(data as Int32Array | Uint8Array, (v) => BigInt(v));
  };
  const whole = new Map<string, FeedData>();
  for (const [name, { feed, ref }] of found) {
    if (samples * numelOf(ref.shape.slice(1)) * DTYPES[ref.dtype].itemSize <= WHOLE_TENSOR_BYTES) {
      whole.set(name, decode(feed, ref.dtype, (await readTensorRows(archive, ref, 0, samples)).data));
    }
  }
  return {
    name: source.name,
    bytes: source.size,
    samples,
    feeds: Object.fromEntries([...found].map(([name, { ref }]) => [name, { rowShape: ref.shape.slice(1), stored: ref.dtype }])),
    async readRows(start, end, into) {
      const tensors: Record<string, FeedData> = {};
      for (const [name, { feed, ref }] of found) {
        const per = numelOf(ref.shape.slice(1));
        const held = whole.get(name);
        if (held) {
          tensors[name] = held.subarray(start * per, end * per);
          continue;
        }
        // Only float32 rows land in a float32-sized buffer; other dtypes are converted into a new one.
        const buffer = ref.dtype === 'float32' && feed.dtype === 'float32' ? into?.[name] : undefined;
        tensors[name] = decode(feed, ref.dtype, (await readTensorRows(archive, ref, start, end, buffer)).data);
      }
      return { start, count: end - start, tensors };
    },
    close: () => source.close(),
  };
}

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
