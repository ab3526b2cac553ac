import pLimit from 'p-limit';
import { describeError } from '../errors';
import { DTYPES } from '../tensors/dtype';
import { numelOf, type StoredTensor, type TensorFile } from '../tensors/tensor-file';
import type { PartitionObject } from './contracts';
import { PlanError } from './rank-plan';

/**
 * Large files as row ranges: a dataset may be one 2.5 GB HDF5 file or a few large Parquet or FITS
 * files, and nobody should have to split them before a run. A file over `targetBytes` is opened (its
 * headers only: a few ranged reads) and planned as ranges of about `targetBytes` of it each, aligned
 * to the rows its reader decodes together (an HDF5 chunk, a Parquet row group), so that no two ranks
 * decode the same chunk. Smaller files stay whole, unopened.
 */

/** A file over this is planned as row ranges of about this size: what a partition of the prototype held, and what a rank reads in a few seconds. */
export const ROW_RANGE_BYTES = 128 * 1024 * 1024;
/** Files opened at once while planning. */
const OPEN_CONCURRENCY = 8;

/** The array that sets a file's rows: the one taking the most bytes (a dataset's images). */
function mainTensor(file: TensorFile): StoredTensor | undefined {
  return file.tensors.reduce<StoredTensor | undefined>(
    (most, t) => (!most || t.storedBytesPerRow * t.shape[0] > most.storedBytesPerRow * most.shape[0] ? t : most),
    undefined,
  );
}

/** Bytes a reader holds to give any row of the file's arrays of `rows` rows: their rows decoded together, as read and as decoded. */
function decodeBytesOf(file: TensorFile, rows: number): number {
  return file.tensors
    .filter((t) => t.shape[0] === rows && t.rowsReadTogether > 1)
    .reduce((sum, t) => sum + t.rowsReadTogether * (t.storedBytesPerRow + numelOf(t.shape.slice(1)) * DTYPES[t.dtype].itemSize), 0);
}

/** One file's row ranges (or the file whole, when it has no rows to range over). */
export function rowRangesOf(object: PartitionObject, file: TensorFile, targetBytes = ROW_RANGE_BYTES): PartitionObject[] {
  const main = mainTensor(file);
  const rows = main?.shape[0] ?? 0;
  if (!main || rows < 2) return [object];
  const together = Math.max(1, main.rowsReadTogether);
  const bytesPerRow = object.bytes / rows;
  const perRange = Math.max(together, Math.floor(targetBytes / bytesPerRow / together) * together);
  if (perRange >= rows) return [object];
  const decodeBytes = decodeBytesOf(file, rows);
  const ranges: PartitionObject[] = [];
  for (let start = 0; start < rows; start += perRange) {
    const end = Math.min(rows, start + perRange);
    ranges.push({
      key: object.key,
      bytes: Math.round(object.bytes * ((end - start) / rows)),
      rows: { start, end },
      ...(decodeBytes ? { decodeBytes } : {}),
    });
  }
  return ranges;
}

/**
 * The files as partitions: large ones as row ranges, in the files' order. A large file that cannot be
 * opened refuses the run, naming it (a rank could only fail every range of it).
 */
export async function planRowRanges(
  files: PartitionObject[],
  open: (key: string) => Promise<TensorFile>,
  options: { targetBytes?: number; onFile?: (opened: number, of: number) => void } = {},
): Promise<PartitionObject[]> {
  const targetBytes = options.targetBytes ?? ROW_RANGE_BYTES;
  const large = files.filter((f) => f.bytes > targetBytes);
  const limit = pLimit(OPEN_CONCURRENCY);
  let opened = 0;
  const planned = new Map(
    await Promise.all(
      large.map((object) =>
        limit(async () => {
          let file: TensorFile;
          try {
            file = await open(object.key);
          } catch (error) {
            throw new PlanError(`${object.key} cannot be planned as row ranges: ${describeError(error)}`, 'data_prefix');
          }
          try {
            return [object, rowRangesOf(object, file, targetBytes)] as const;
          } finally {
            await file.close();
            options.onFile?.(++opened, large.length);
          }
        }),
      ),
    ),
  );
  return files.flatMap((f) => planned.get(f) ?? [f]);
}
