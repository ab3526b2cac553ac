import { crc32 } from 'node:zlib';
import { DTYPES, type DType, type TensorData } from '../../functions/commons/tensors/dtype';
import { UsageError } from '../../functions/commons/errors';
import { MAX_ZIP32, writeStoredZipRecords, ZIP_CENTRAL_HEADER, ZIP_END_RECORD, ZIP_LOCAL_HEADER } from './zip-writer';

/** One array of an .npz: row-major, native (little-endian) data. */
export interface NpzArray {
  dtype: DType;
  shape: number[];
  data: TensorData;
}

const DESCR: Record<DType, string> = {
  float64: '<f8',
  float32: '<f4',
  float16: '<f2',
  int64: '<i8',
  int32: '<i4',
  int16: '<i2',
  int8: '|i1',
  uint64: '<u8',
  uint32: '<u4',
  uint16: '<u2',
  uint8: '|u1',
  bool: '|b1',
};

/** numpy pads a header so the data starts on this boundary; entries' data are aligned to it in the zip too. */
const ALIGNMENT = 64;
/** An extra field of no meaning (its id is unassigned) that pads an entry's data to the alignment. */
const PADDING_FIELD_ID = 0xcafe;

/** A version 1.0 .npy header: magic, version, length, then the dict literal padded with spaces and a newline. */
export function npyHeader(dtype: DType, shape: number[]): Uint8Array {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${dims}, }`;
  const total = Math.ceil((10 + dict.length + 1) / ALIGNMENT) * ALIGNMENT;
  const text = dict.padEnd(total - 10 - 1, ' ') + '\n';
  const out = new Uint8Array(total);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, text.length, true);
  out.set(Buffer.from(text, 'latin1'), 10);
  return out;
}

/**
 * An .npz as np.savez writes it: each array a stored (uncompressed) `<name>.npy` entry, so that a
 * reader reads rows of it by range. Zip32 only: an archive past 4 GiB is refused.
 */
export function writeNpz(arrays: Record<string, NpzArray>): Uint8Array {
  const entries = Object.entries(arrays).map(([name, array]) => {
    const numel = array.shape.reduce((a, b) => a * b, 1);
    if (array.shape.length === 0 || numel !== array.data.length) {
      throw new UsageError(`npz array ${name}: shape [${array.shape}] does not hold its ${array.data.length} elements`);
    }
    if (DTYPES[array.dtype].itemSize !== array.data.BYTES_PER_ELEMENT) {
      throw new UsageError(`npz array ${name}: ${array.dtype} data given as ${array.data.constructor.name}`);
    }
    const header = npyHeader(array.dtype, array.shape);
    const data = new Uint8Array(array.data.buffer, array.data.byteOffset, array.data.byteLength);
    const fileName = Buffer.from(`${name}.npy`, 'utf8');
    return { fileName, header, data, size: header.length + data.length, crc: crc32(data, crc32(header)) };
  });

  let offset = 0;
  const placed = entries.map((entry) => {
    const before = offset + ZIP_LOCAL_HEADER + entry.fileName.length;
    // The padding field is at least its own 4 bytes, so pad to the next boundary past those.
    const padding = entry.size ? (ALIGNMENT - ((before + 4) % ALIGNMENT)) % ALIGNMENT : 0;
    const headerOffset = offset;
    const dataOffset = before + (entry.size ? 4 + padding : 0);
    offset = dataOffset + entry.size;
    return { ...entry, name: entry.fileName, headerOffset, dataOffset };
  });
  const directoryAt = offset;
  const directoryLength = entries.reduce((sum, e) => sum + ZIP_CENTRAL_HEADER + e.fileName.length, 0);
  const total = directoryAt + directoryLength + ZIP_END_RECORD;
  if (total > MAX_ZIP32 || entries.length > 0xffff) {
    throw new UsageError(`an .npz of ${total} bytes in ${entries.length} arrays is beyond what a zip32 archive holds`);
  }
  const out = new Uint8Array(total);
  for (const entry of placed) {
    out.set(entry.header, entry.dataOffset);
    out.set(entry.data, entry.dataOffset + entry.header.length);
  }
  writeStoredZipRecords(out, placed, directoryAt, { paddingFieldId: PADDING_FIELD_ID, flags: 0x0800, dosDate: 0 });
  return out;
}
