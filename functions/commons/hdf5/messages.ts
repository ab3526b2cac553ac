import { ArchiveError } from '../errors';
import type { DType } from '../tensors/dtype';
import { Fields, UNDEFINED_ADDRESS } from './fields';

/** A dataset's element type: a DType CAI decodes, or why not (`a compound`, `a string`). */
export type ElementType = { dtype: DType; size: number; bigEndian: boolean } | { unreadable: string; size: number };

const IEEE: Record<number, { dtype: DType; exponent: number; mantissa: number; bias: number }> = {
  2: { dtype: 'float16', exponent: 5, mantissa: 10, bias: 15 },
  4: { dtype: 'float32', exponent: 8, mantissa: 23, bias: 127 },
  8: { dtype: 'float64', exponent: 11, mantissa: 52, bias: 1023 },
};
const INTEGERS: Record<number, [DType, DType]> = {
  1: ['int8', 'uint8'],
  2: ['int16', 'uint16'],
  4: ['int32', 'uint32'],
  8: ['int64', 'uint64'],
};
const CLASS_NAMES = ['', '', 'a time', 'a string', 'a bitfield', 'an opaque', 'a compound', 'a reference', 'an enum', '', 'an array'];

/** A datatype message (also the base type inside an enum). */
export function parseDatatype(f: Fields, depth = 0): ElementType {
  const classVersion = f.u8();
  const cls = classVersion & 0x0f;
  const version = classVersion >> 4;
  const bits = [f.u8(), f.u8(), f.u8()];
  const size = f.u32();
  if (cls === 0) {
    const offset = f.u16();
    const precision = f.u16();
    const pair = INTEGERS[size];
    if (!pair || offset !== 0 || precision !== size * 8) return { unreadable: `a ${precision}-bit integer in ${size} bytes`, size };
    return { dtype: pair[bits[0] & 0x08 ? 0 : 1], size, bigEndian: (bits[0] & 0x01) !== 0 };
  }
  if (cls === 1) {
    const offset = f.u16();
    const precision = f.u16();
    const exponentAt = f.u8();
    const exponent = f.u8();
    const mantissaAt = f.u8();
    const mantissa = f.u8();
    const bias = f.u32();
    const ieee = IEEE[size];
    const vax = (bits[0] & 0x40) !== 0;
    if (
      !ieee ||
      vax ||
      offset !== 0 ||
      precision !== size * 8 ||
      exponent !== ieee.exponent ||
      mantissa !== ieee.mantissa ||
      bias !== ieee.bias ||
      mantissaAt !== 0 ||
      exponentAt !== ieee.mantissa
    ) {
      return { unreadable: `a ${size * 8}-bit float that is not IEEE 754`, size };
    }
    return { dtype: ieee.dtype, size, bigEndian: (bits[0] & 0x01) !== 0 };
  }
  if (cls === 8 && depth === 0) {
    // An enum reads as its integer base type; h5py writes numpy bools as an int8 enum FALSE=0, TRUE=1.
    const base = parseDatatype(f, depth + 1);
    if (!('dtype' in base)) return { unreadable: 'an enum', size };
    const members = bits[0] | (bits[1] << 8);
    const names: string[] = [];
    for (let i = 0; i < members; i++) {
      const start = f.at;
      names.push(f.cString());
      if (version < 3) f.at = Math.min(f.bytes.length, start + Math.ceil((f.at - start) / 8) * 8);
    }
    const values = Array.from({ length: members }, () => f.take(base.size)[0]);
    const isBool = base.size === 1 && members === 2 && names[0] === 'FALSE' && names[1] === 'TRUE' && values[0] === 0 && values[1] === 1;
    return isBool ? { dtype: 'bool', size: 1, bigEndian: false } : base;
  }
  if (cls === 9) return { unreadable: (bits[0] & 0x0f) === 1 ? 'a variable-length string' : 'a variable-length sequence', size };
  return { unreadable: CLASS_NAMES[cls] || `of datatype class ${cls}`, size };
}

export type ChunkIndex =
  | { kind: 'btree1'; address: number }
  | { kind: 'single'; address: number; filteredSize?: number; filterMask: number }
  | { kind: 'implicit'; address: number }
  | { kind: 'fixedArray'; address: number }
  | { kind: 'unsupported'; name: string };

export type Layout =
  | { kind: 'compact'; data: Uint8Array }
  | { kind: 'contiguous'; address: number; size: number }
  | { kind: 'chunked'; chunk: number[]; index: ChunkIndex; filterEdgeChunks: boolean };

const INDEX_NAMES: Record<number, string> = {
  4: 'an extensible array (written for unlimited dimensions)',
  5: 'a version 2 B-tree (written for several unlimited dimensions)',
};

/** The data layout message, versions 1 to 5; `rank` is the dataspace's. */
export function parseLayout(f: Fields, rank: number): Layout {
  const version = f.u8();
  if (version === 1 || version === 2) {
    const dimensionality = f.u8();
    const cls = f.u8();
    f.skip(5);
    const address = cls === 0 ? 0 : f.offset();
    const dims = Array.from({ length: dimensionality }, () => f.u32());
    if (cls === 0) return { kind: 'compact', data: f.take(f.u32()) };
    if (cls === 1) return { kind: 'contiguous', address, size: dims.reduce((a, b) => a * b, 1) };
    if (cls === 2) return { kind: 'chunked', chunk: chunkDims(f, dims, rank), index: { kind: 'btree1', address }, filterEdgeChunks: true };
    throw new ArchiveError(`${f.what}: layout class ${cls}`);
  }
  if (version < 1 || version > 5) throw new ArchiveError(`${f.what}: layout version ${version} is not 1 to 5`);
  const cls = f.u8();
  if (cls === 0) return { kind: 'compact', data: f.take(f.u16()) };
  if (cls === 1) return { kind: 'contiguous', address: f.offset(), size: f.length() };
  if (cls === 3) return { kind: 'chunked', chunk: [], index: { kind: 'unsupported', name: 'a virtual dataset' }, filterEdgeChunks: true };
  if (cls !== 2) throw new ArchiveError(`${f.what}: layout class ${cls}`);
  if (version === 3) {
    const dimensionality = f.u8();
    const address = f.offset();
    const dims = Array.from({ length: dimensionality }, () => f.u32());
    return { kind: 'chunked', chunk: chunkDims(f, dims, rank), index: { kind: 'btree1', address }, filterEdgeChunks: true };
  }
  const flags = f.u8();
  const dimensionality = f.u8();
  const encoded = f.u8();
  const dims = Array.from({ length: dimensionality }, () => f.uint(encoded));
  const indexType = f.u8();
  let index: ChunkIndex;
  if (indexType === 1) {
    const filtered = (flags & 0x02) !== 0;
    const filteredSize = filtered ? f.length() : undefined;
    const filterMask = filtered ? f.u32() : 0;
    index = { kind: 'single', address: f.offset(), filteredSize, filterMask };
  } else if (indexType === 2) {
    index = { kind: 'implicit', address: f.offset() };
  } else if (indexType === 3) {
    f.skip(1); // page bits: read again from the array's header
    index = { kind: 'fixedArray', address: f.offset() };
  } else {
    index = { kind: 'unsupported', name: INDEX_NAMES[indexType] ?? `chunk index type ${indexType}` };
  }
  return { kind: 'chunked', chunk: chunkDims(f, dims, rank), index, filterEdgeChunks: (flags & 0x01) === 0 };
}

/** Chunk dimensions are the dataset's rank plus one, the last the element's size. */
function chunkDims(f: Fields, dims: number[], rank: number): number[] {
  if (dims.length !== rank + 1) throw new ArchiveError(`${f.what}: chunks of ${dims.length - 1} dimensions in a dataset of ${rank}`);
  const chunk = dims.slice(0, rank);
  if (chunk.some((d) => d === 0 || d === UNDEFINED_ADDRESS)) throw new ArchiveError(`${f.what}: a chunk dimension of 0`);
  return chunk;
}

export interface Filter {
  id: number;
  name: string;
  optional: boolean;
  values: number[];
}

export const FILTER_NAMES: Record<number, string> = {
  1: 'deflate',
  2: 'shuffle',
  3: 'fletcher32',
  4: 'szip',
  5: 'nbit',
  6: 'scaleoffset',
  32000: 'lzf',
  32001: 'blosc',
  32004: 'lz4',
  32008: 'bitshuffle',
  32013: 'zfp',
  32015: 'zstd',
  32026: 'blosc2',
};

export function parseFilters(f: Fields): Filter[] {
  const version = f.u8();
  const count = f.u8();
  if (version === 1) f.skip(6);
  else if (version !== 2) throw new ArchiveError(`${f.what}: filter pipeline version ${version} is not 1 or 2`);
  if (count > 32) throw new ArchiveError(`${f.what}: ${count} filters (HDF5 allows 32)`);
  const filters: Filter[] = [];
  for (let i = 0; i < count; i++) {
    const id = f.u16();
    const nameLength = version === 1 || id >= 256 ? f.u16() : 0;
    const flags = f.u16();
    const valueCount = f.u16();
    let name = FILTER_NAMES[id] ?? '';
    if (nameLength) {
      const raw = f.take(version === 1 ? Math.ceil(nameLength / 8) * 8 : nameLength);
      const end = raw.indexOf(0);
      name = new TextDecoder().decode(raw.subarray(0, end < 0 ? raw.length : end)) || name;
    }
    const values = Array.from({ length: valueCount }, () => f.u32());
    if (version === 1 && valueCount % 2) f.skip(4);
    filters.push({ id, name, optional: (flags & 0x01) !== 0, values });
  }
  return filters;
}

export interface Link {
  name: string;
  /** The object's header, for a hard link; soft and external links point nowhere CAI follows. */
  address?: number;
}

export function parseLink(f: Fields): Link {
  const version = f.u8();
  if (version !== 1) throw new ArchiveError(`${f.what}: link message version ${version} is not 1`);
  const flags = f.u8();
  const type = flags & 0x08 ? f.u8() : 0;
  if (flags & 0x04) f.skip(8);
  if (flags & 0x10) f.skip(1);
  const nameLength = f.uint(1 << (flags & 0x03));
  if (nameLength === UNDEFINED_ADDRESS) throw new ArchiveError(`${f.what}: absurd link name length`);
  const name = new TextDecoder().decode(f.take(nameLength));
  return type === 0 ? { name, address: f.offset() } : { name };
}
