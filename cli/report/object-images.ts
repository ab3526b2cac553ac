import pLimit from 'p-limit';
import { describeError, PartitionLayoutError } from '../../functions/commons/errors';
import { openTorchArchive, readTensorRows, type TensorRef, type TorchArchive } from '../../functions/commons/torch/archive';
import type { ByteSource } from '../../functions/commons/tensors/byte-source';
import { toFloat32 } from '../../functions/commons/tensors/dtype';
import { rgbComposite } from './composite';
import { pngDataUri } from './png';

/**
 * Thumbnails of a few objects (a score's top list), read from their partitions: each partition is
 * opened once for all of its objects, and only their rows of the image tensor are read (runs of
 * consecutive rows as one range), so a report of 50 objects reads kilobytes, not partitions.
 */
export interface ObjectRef {
  /** The partition's key in the run's data bucket. */
  partition: string;
  row: number;
}

export const objectKey = ({ partition, row }: ObjectRef) => `${partition}#${row}`;

export interface ObjectImages {
  /** Each object's thumbnail as a data: URI (PNG), by objectKey. */
  images: Map<string, string>;
  /** Partitions whose images could not be read, and why. */
  unread: { partition: string; error: string }[];
}

/** A partition's images: its first tensor of [N, C, H, W] with C ≥ 3 (a cutout per object, a band per channel). */
export function imageTensorOf(archive: TorchArchive): TensorRef | undefined {
  return archive.tensors.find((t) => t.shape.length === 4 && t.shape[1] >= 3 && t.shape[2] > 0 && t.shape[3] > 0);
}

/** Larger cutouts are not drawn: one row would be megabytes, for a thumbnail of 64 px. */
export const MAX_IMAGE_SIDE = 256;

/** Distinct rows as runs of consecutive rows, [start, end) each, in order. */
export function rowRuns(rows: number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const row of [...new Set(rows)].sort((a, b) => a - b)) {
    const last = runs[runs.length - 1];
    if (last && last[1] === row) last[1]++;
    else runs.push([row, row + 1]);
  }
  return runs;
}

async function partitionImages(source: ByteSource, rows: number[]): Promise<Map<number, string>> {
  const archive = await openTorchArchive(source);
  const ref = imageTensorOf(archive);
  if (!ref) throw new PartitionLayoutError(`${source.name}: no image tensor of [N, C ≥ 3, H, W] in it`);
  const [objects, channels, height, width] = ref.shape;
  if (height > MAX_IMAGE_SIDE || width > MAX_IMAGE_SIDE) {
    throw new PartitionLayoutError(
      `${source.name}: its images are ${height}×${width}, larger than the ${MAX_IMAGE_SIDE}×${MAX_IMAGE_SIDE} drawn`,
    );
  }
  const perObject = channels * height * width;
  const images = new Map<number, string>();
  for (const [start, end] of rowRuns(rows)) {
    if (start < 0 || end > objects)
      throw new PartitionLayoutError(`${source.name}: rows ${start}..${end - 1} are outside its ${objects} objects`);
    const pixels = toFloat32(ref.dtype, (await readTensorRows(archive, ref, start, end)).data);
    for (let row = start; row < end; row++) {
      const offset = (row - start) * perObject;
      images.set(row, pngDataUri(rgbComposite(pixels.subarray(offset, offset + perObject), channels, height, width)));
    }
  }
  return images;
}

/** Partitions opened at once. */
const CONCURRENCY = 4;

/** The objects' thumbnails; a partition that cannot be opened or read leaves its objects without one, and says why. */
export async function readObjectImages(objects: ObjectRef[], open: (partition: string) => Promise<ByteSource>): Promise<ObjectImages> {
  const byPartition = new Map<string, number[]>();
  for (const o of objects) byPartition.set(o.partition, [...(byPartition.get(o.partition) ?? []), o.row]);
  const result: ObjectImages = { images: new Map(), unread: [] };
  const limit = pLimit(CONCURRENCY);
  await Promise.all(
    [...byPartition].map(([partition, rows]) =>
      limit(async () => {
        let source: ByteSource | undefined;
        try {
          source = await open(partition);
          for (const [row, uri] of await partitionImages(source, rows)) result.images.set(objectKey({ partition, row }), uri);
        } catch (error) {
          result.unread.push({ partition, error: describeError(error) });
        } finally {
          await source?.close().catch(() => {});
        }
      }),
    ),
  );
  result.unread.sort((a, b) => a.partition.localeCompare(b.partition));
  return result;
}
