import { allocateAligned, type ByteSource, S3_PART_BYTES } from '../torch/byte-source';
import { toFloat32 } from '../torch/dtype';
import { PartitionLayoutError } from '../errors';
import { PyObject } from '../torch/pickle';
import { numelOf, openTorchArchive, readTensorRows, type TensorRef, type TorchArchive } from '../torch/archive';

/** What one object of a partition is: a 5-band 32×32 cutout and 5 magnitudes (u g r i z). */
export const BANDS = 5;
export const IMAGE_SIDE = 32;
export const IMAGE_SHAPE = [BANDS, IMAGE_SIDE, IMAGE_SIDE];
export const IMAGE_ELEMENTS = numelOf(IMAGE_SHAPE);
export const MAGNITUDE_SHAPE = [BANDS];
/** Bytes of one galaxy in a float32 partition: its 5×32×32 image, 5 magnitudes and 1 redshift. */
export const BYTES_PER_GALAXY = (IMAGE_ELEMENTS + BANDS + 1) * 4;

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

const shapeText = (t: TensorRef) => `${t.dtype}[${t.shape.join(',')}]`;
const EXPECTED = 'expected TensorDataset(images float[N,5,32,32], magnitudes float[N,5], optional redshift float[N])';

/** The tensors a container holds, as the prototype and common alternatives lay them out. */
function datasetTensors(archive: TorchArchive): TensorRef[] {
  const { root, tensors } = archive;
  const isTensor = (v: unknown): v is TensorRef => tensors.includes(v as TensorRef);
  let list: unknown = root;
  if (root instanceof PyObject && root.state instanceof Map) list = root.state.get('tensors');
  if (root instanceof Map) {
    const pick = (...names: string[]) => names.map((n) => root.get(n)).find(isTensor);
    list = [pick('images', 'image'), pick('magnitudes', 'magnitude'), pick('redshift', 'z')].filter(Boolean);
  }
  if (isTensor(root)) list = [root];
  return Array.isArray(list) && list.every(isTensor) ? list : [];
}

/**
 * Opens a partition for reading row ranges. Nothing but the zip directory and the pickle is read
 * here, and the small per-object tensors; images are read range by range as rows are asked for,
 * so a reader holds no more than the rows in hand.
 */
export async function openTorchPartition(source: ByteSource): Promise<PartitionReader> {
  const archive = await openTorchArchive(source);
  const tensors = datasetTensors(archive);
  const [images, magnitudes, redshift] = tensors;
  const n = images?.shape[0];
  const fits =
    (tensors.length === 2 || tensors.length === 3) &&
    images.shape.length === 4 &&
    images.shape.slice(1).every((d, i) => d === IMAGE_SHAPE[i]) &&
    magnitudes.shape.length === 2 &&
    magnitudes.shape[0] === n &&
    magnitudes.shape[1] === BANDS &&
    (!redshift || (redshift.shape[0] === n && (redshift.shape.length === 1 || (redshift.shape.length === 2 && redshift.shape[1] === 1))));
  if (!fits) {
    throw new PartitionLayoutError(`${source.name}: ${EXPECTED}; found ${archive.tensors.map(shapeText).join(', ') || 'no tensors'}`);
  }
  const all = async (ref: TensorRef) => toFloat32(ref.dtype, (await readTensorRows(archive, ref, 0, n)).data);
  const allMagnitudes = await all(magnitudes);
  const allRedshift = redshift ? await all(redshift) : undefined;

  return {
    name: source.name,
    bytes: source.size,
    samples: n,
    labelled: Boolean(redshift),
    async readRows(start, end, into) {
      // Only float32 rows can land in a float32-sized buffer; other dtypes are widened into a new one.
      const rows = await readTensorRows(archive, images, start, end, images.dtype === 'float32' ? into : undefined);
      return {
        start,
        count: end - start,
        images: toFloat32(images.dtype, rows.data),
        magnitudes: allMagnitudes.subarray(start * BANDS, end * BANDS),
        redshift: allRedshift?.subarray(start, end),
      };
    },
    close: () => source.close(),
  };
}

/** Bytes of images read per step when a whole partition is walked. */
export const ROW_CHUNK_BYTES = 16 * 1024 * 1024;
export const ROWS_PER_CHUNK = Math.floor(ROW_CHUNK_BYTES / (IMAGE_ELEMENTS * 4));

/**
 * At most how many GETs (HEAD included) reading a whole S3 partition of these bytes sends: opening
 * its archive (the zip's records, the pickle) takes about a dozen, then each 16 MiB chunk one per
 * 8 MiB part, plus one where a part straddles a chunk. What a crashed attempt may have read is
 * billed with this (tests/integration/pipeline.test.ts holds it over the counts ranks send).
 */
export const readRequestsBound = (bytes: number) => 16 + Math.ceil(bytes / S3_PART_BYTES) + Math.ceil(bytes / ROW_CHUNK_BYTES);

export interface ChunkOptions {
  rowsPerChunk?: number;
  /** Chunks read ahead of the one in hand, so reading overlaps whatever the caller does. */
  readAhead?: number;
}

/**
 * Walks a partition in row chunks, in order, reading ahead. Chunks are read into a small ring of
 * reused buffers, so a chunk's arrays are valid until the caller asks for the next one; memory is
 * (readAhead + 1) chunks whatever the partition's size, and no page is faulted in twice.
 */
export async function* partitionChunks(reader: PartitionReader, options: ChunkOptions = {}): AsyncGenerator<PartitionRows> {
  const { rowsPerChunk = ROWS_PER_CHUNK, readAhead = 1 } = options;
  const chunks = Math.ceil(reader.samples / rowsPerChunk);
  const ring = Array.from({ length: Math.min(chunks, readAhead + 1) }, () =>
    allocateAligned(Math.min(reader.samples, rowsPerChunk) * IMAGE_ELEMENTS * 4),
  );
  const read = (k: number) => reader.readRows(k * rowsPerChunk, Math.min(reader.samples, (k + 1) * rowsPerChunk), ring[k % ring.length]);
  const pending: Promise<PartitionRows>[] = [];
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
