import { ArchiveError } from '../errors';
import { withCachedEnds, type ByteSource } from '../tensors/byte-source';
import type { TensorFile, TensorFormat } from '../tensors/tensor-file';
import { openFitsFile } from '../fits/fits-file';
import { openHdf5File } from '../hdf5/hdf5-file';
import { openNumpyFile } from '../numpy/numpy-file';
import { openParquetFile } from '../parquet/parquet-file';
import { openTorchFile } from '../torch/tensor-file';
import { TENSOR_FILE_KINDS } from './file-names';

/**
 * The one place that chooses a reader: by the file's first bytes (its magic), never by its name, so a
 * misnamed file is read for what it is and nothing in a file decides which code runs beyond that.
 */

const ascii = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const MAGIC: { format: TensorFormat | 'zip'; bytes: Uint8Array }[] = [
  { format: 'zip', bytes: ascii('PK\x03\x04') },
  { format: 'zip', bytes: ascii('PK\x05\x06') },
  // torch.save's format before 1.6: a bare pickle (its reader names it and refuses it).
  { format: 'torch', bytes: Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46]) },
  { format: 'hdf5', bytes: ascii('\x89HDF\r\n\x1a\n') },
  { format: 'fits', bytes: ascii('SIMPLE  =') },
  { format: 'parquet', bytes: ascii('PAR1') },
  { format: 'numpy', bytes: ascii('\x93NUMPY') },
];
const HEAD_BYTES = MAGIC.reduce((most, m) => Math.max(most, m.bytes.length), 0);

/** The format of a file by its first bytes; a zip is a torch archive or an .npz by its first entry. */
export async function formatOf(source: ByteSource): Promise<TensorFormat> {
  if (source.size === 0) throw new ArchiveError(`${source.name}: is empty`);
  const head = await source.read(0, Math.min(HEAD_BYTES, source.size));
  const match = MAGIC.find(({ bytes }) => head.length >= bytes.length && bytes.every((b, i) => head[i] === b));
  if (!match) {
    throw new ArchiveError(`${source.name}: not a file CAI reads: its first bytes are those of none of ${TENSOR_FILE_KINDS}`);
  }
  return match.format === 'zip' ? zipKind(source) : match.format;
}

/**
 * A zip is an .npz when its first entry is an array (`<name>.npy`, as np.savez writes), else a torch
 * archive (whose reader says so if it is not one). Read from the first local header only: the
 * directory is parsed once, by the reader, within that reader's bounds on entries.
 */
async function zipKind(source: ByteSource): Promise<TensorFormat> {
  const LOCAL_HEADER = 30;
  if (source.size < LOCAL_HEADER) return 'torch';
  const header = await source.read(0, LOCAL_HEADER);
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  if (view.getUint32(0, true) !== 0x04034b50) return 'torch';
  const nameLength = Math.min(view.getUint16(26, true), source.size - LOCAL_HEADER);
  const name = new TextDecoder().decode(await source.read(LOCAL_HEADER, nameLength));
  return name.endsWith('.npy') ? 'numpy' : 'torch';
}

const OPENERS: Record<TensorFormat, (source: ByteSource) => Promise<TensorFile>> = {
  torch: openTorchFile,
  hdf5: openHdf5File,
  fits: openFitsFile,
  parquet: openParquetFile,
  numpy: openNumpyFile,
};

/** Opens any file CAI reads with its format's reader (its start and end read once, for both). */
export async function openTensorFile(source: ByteSource): Promise<TensorFile> {
  const cached = withCachedEnds(source);
  try {
    return await OPENERS[await formatOf(cached)](cached);
  } catch (error) {
    // A file no reader opens is closed here: its reader never held it.
    await source.close();
    throw error;
  }
}
