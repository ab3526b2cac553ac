import { DTYPES, elementAsNumber, type DType } from '../../functions/commons/tensors/dtype';
import { numelOf, type StoredTensor, type TensorFile } from '../../functions/commons/tensors/tensor-file';

/** One array of a file as `cai inspect` shows it: its name in the file's terms, and its values summarised. */
export interface TensorSummary {
  name: string;
  shape: number[];
  dtype: DType;
  min: number | null;
  max: number | null;
  mean: number | null;
  /** NaN elements, left out of min, max and mean. */
  nan?: number;
}

/** Bytes of one array read per step when summarising: bounded, whatever the file's size. */
const SUMMARY_CHUNK_BYTES = 16 * 1024 * 1024;

/** Decoded bytes of an array: what summarising it reads, for progress. */
export const decodedBytes = (t: StoredTensor) => numelOf(t.shape) * DTYPES[t.dtype].itemSize;

/** Every value of the array read, range by range, into its min, max and mean. */
export async function summarizeTensor(
  file: TensorFile,
  tensor: StoredTensor,
  onProgress?: (bytes: number) => void,
): Promise<TensorSummary> {
  const rows = tensor.shape[0];
  const rowBytes = Math.max(1, numelOf(tensor.shape.slice(1)) * DTYPES[tensor.dtype].itemSize);
  // Whole runs of the rows its reader decodes together, so no chunk is decoded twice.
  const together = Math.max(1, tensor.rowsReadTogether);
  const step = Math.max(together, Math.floor(SUMMARY_CHUNK_BYTES / rowBytes / together) * together);
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let counted = 0;
  let nan = 0;
  for (let start = 0; start < rows; start += step) {
    const data = await file.readRows(tensor, start, Math.min(rows, start + step));
    for (let i = 0; i < data.length; i++) {
      const v = elementAsNumber(tensor.dtype, data, i);
      if (Number.isNaN(v)) {
        nan++;
        continue;
      }
      if (v < min) min = v;
      if (v > max) max = v;
      sum += v;
      counted++;
    }
    onProgress?.(data.byteLength);
  }
  const summary: TensorSummary = {
    name: tensor.name,
    shape: tensor.shape,
    dtype: tensor.dtype,
    min: counted ? min : null,
    max: counted ? max : null,
    mean: counted ? sum / counted : null,
  };
  if (nan) summary.nan = nan;
  return summary;
}

/** The first dimension all arrays share, or null when they do not share one. */
export function sharedSamples(tensors: { shape: number[] }[]): number | null {
  if (tensors.length === 0 || tensors.some((t) => t.shape.length === 0)) return null;
  const n = tensors[0].shape[0];
  return tensors.every((t) => t.shape[0] === n) ? n : null;
}
