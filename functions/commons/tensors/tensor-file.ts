import type { ByteSource } from './byte-source';
import type { DType, TensorData } from './dtype';

/**
 * What every format's reader gives the partition layer: a file's arrays that hold a row per object,
 * by the names the file itself uses, and rows of them read on demand. A reader never executes
 * anything from the file and never believes a size it has not checked against the file's bytes.
 */

export type TensorFormat = 'torch' | 'hdf5' | 'fits' | 'parquet' | 'numpy';

/** One array of a file: its first axis is the object. */
export interface StoredTensor {
  /**
   * Its name in the file's own terms, as a card names it: an HDF5 dataset path (`images`,
   * `/cutouts/flux`), a Parquet column, a FITS HDU (`1`, `SCI`) or HDU and column (`1/FLUX`,
   * `CATALOG/REDSHIFT`), an `.npz` array name, a torch position or key.
   */
  name: string;
  /** As read: the reader has made it native-endian. */
  dtype: DType;
  /** [objects, ...one object's]. */
  shape: number[];
  /**
   * Rows the reader must decode together to give any one of them (an HDF5 chunk's rows, a Parquet row
   * group, a compressed .npz entry's whole array); 1 where any row can be read alone. The rank's memory
   * plan holds this many rows' bytes beside what it asked for.
   */
  rowsReadTogether: number;
  /** Bytes of the file one row of it takes as stored (compressed where it is): for sizing row ranges. */
  storedBytesPerRow: number;
}

export interface TensorFile {
  readonly format: TensorFormat;
  readonly name: string;
  /** Size of the file in bytes. */
  readonly size: number;
  /** Every array CAI can read, in the file's order. */
  readonly tensors: StoredTensor[];
  /**
   * The array a card's reference names; otherwise a line saying why not, naming what the file does
   * hold (its datasets, columns or HDUs), to follow "<file>: ".
   */
  find(ref: number | string): StoredTensor | string;
  /**
   * Rows [start, end) of a tensor, contiguous, row-major, native-endian. `into` is filled when given and
   * large enough (its bytes then back the result), so a caller can reuse buffers.
   */
  readRows(tensor: StoredTensor, start: number, end: number, into?: Uint8Array): Promise<TensorData>;
  close(): Promise<void>;
}

/** Opens one format's file: throws an ArchiveError or UnsupportedTensorError, in one line, on what it cannot read. */
export type TensorFileOpener = (source: ByteSource) => Promise<TensorFile>;

/** Elements of an array of this shape. */
export const numelOf = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** A tensor's description in a message: `images uint8[17736, 256, 256, 3]`. */
export const describeTensor = (t: StoredTensor) => `${t.name} ${t.dtype}[${t.shape.join(', ')}]`;

/** What a file holds, for messages: every tensor, or the first few and a count. */
export function describeTensors(file: Pick<TensorFile, 'tensors'>, noun: string, most = 12): string {
  const { tensors } = file;
  if (!tensors.length) return `no ${noun} CAI can read`;
  const shown = tensors.slice(0, most).map(describeTensor).join(', ');
  return `${noun} ${shown}${tensors.length > most ? ` and ${tensors.length - most} more` : ''}`;
}
