import type { PageHeader } from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
import { deltaBinaryUnpack } from 'hyparquet/src/delta.js';
import { ArchiveError, UnsupportedTensorError } from '../errors';
import type { DType, TensorData } from '../tensors/dtype';
import { decompress, largestUncompressed, type Codec } from './codecs';
import { bitWidth, decodeHybrid } from './hybrid';

/**
 * Decodes one column chunk (a column's pages in one row group) straight into a tensor's rows: the
 * pages' repetition and definition levels say where each object's values begin and whether any is
 * missing, and the values of the rows asked for are copied into the output, with no per-value
 * objects. A row group's rows come out in order, so the rows asked for are one contiguous run of
 * values, page by page.
 */

/** What a column is, as the decoder needs it. */
export interface LeafColumn {
  name: string;
  physical: 'BOOLEAN' | 'INT32' | 'INT64' | 'FLOAT' | 'DOUBLE' | 'FIXED_LEN_BYTE_ARRAY';
  /** Bytes of one stored value (FIXED_LEN_BYTE_ARRAY's length; a boolean is given 1). */
  physicalSize: number;
  dtype: DType;
  /** 0: one value a row; 1: a list of values a row. */
  maxRepetition: number;
  maxDefinition: number;
  /** The definition level of a present list that may be empty (the repeated node's level - 1). */
  emptyListDefinition: number;
}

/** Values CAI decodes at once from one page: a page's levels and values are held whole. */
export const MAX_PAGE_VALUES = 2 ** 27;
/** The largest page CAI decompresses. */
export const MAX_PAGE_BYTES = 2 ** 30;

export interface ChunkRead {
  column: LeafColumn;
  codec: Codec;
  /** The chunk's bytes, from its first page header. */
  bytes: Uint8Array;
  /** The row group's rows and the chunk's level count, from the footer. */
  rows: number;
  values: number;
  /** Values a row (1 for a scalar column). */
  rowLength: number;
  /** Rows of the group wanted: [first, last). */
  first: number;
  last: number;
  /** Where the first wanted row goes: out[at * rowLength]. */
  out?: TensorData;
  at: number;
  /** The group's first row in the file, for messages. */
  groupStart: number;
  /** Whether to keep going past a null or a row of another length to the chunk's end (to describe them). */
  survey?: boolean;
}

/** What a read found among the rows it was asked for. */
export interface ChunkFindings {
  /** The first row (of the file) holding a null, or -1. */
  firstNull: number;
  /** The shortest and longest rows seen (lists). */
  shortest: number;
  longest: number;
  rowsSeen: number;
}

interface DecodeState {
  row: number;
  length: number;
  /** Values of wanted rows copied so far. */
  written: number;
  findings: ChunkFindings;
  dictionary?: ArrayLike<number | bigint>;
}

const TYPED: Record<LeafColumn['physical'], (b: ArrayBuffer, n: number) => ArrayLike<number | bigint>> = {
  BOOLEAN: (b, n) => new Uint8Array(b, 0, n),
  INT32: (b, n) => new Int32Array(b, 0, n),
  INT64: (b, n) => new BigInt64Array(b, 0, n),
  FLOAT: (b, n) => new Float32Array(b, 0, n),
  DOUBLE: (b, n) => new Float64Array(b, 0, n),
  FIXED_LEN_BYTE_ARRAY: (b, n) => new Uint16Array(b, 0, n),
};

/** `count` PLAIN values as an aligned typed array of the physical type (a copy). */
function plainValues(column: LeafColumn, page: Uint8Array, at: number, count: number, what: string): ArrayLike<number | bigint> {
  if (column.physical === 'BOOLEAN') {
    if (at + Math.ceil(count / 8) > page.length) throw new ArchiveError(`${what}: ${count} booleans overrun the page`);
    const out = new Uint8Array(count);
    for (let i = 0; i < count; i++) out[i] = (page[at + (i >> 3)] >> (i & 7)) & 1;
    return out;
  }
  const size = column.physicalSize;
  if (at + count * size > page.length) throw new ArchiveError(`${what}: ${count} values of ${size} bytes overrun the page`);
  const copy = new Uint8Array(count * size);
  copy.set(page.subarray(at, at + count * size));
  return TYPED[column.physical](copy.buffer, count);
}

function byteStreamSplit(column: LeafColumn, page: Uint8Array, at: number, count: number, what: string): ArrayLike<number | bigint> {
  const size = column.physicalSize;
  if (column.physical === 'BOOLEAN' || at + count * size > page.length)
    throw new ArchiveError(`${what}: byte-stream-split values overrun the page`);
  const joined = new Uint8Array(count * size);
  for (let b = 0; b < size; b++) {
    const plane = at + b * count;
    for (let i = 0; i < count; i++) joined[i * size + b] = page[plane + i];
  }
  return TYPED[column.physical](joined.buffer, count);
}

function deltaValues(column: LeafColumn, page: Uint8Array, at: number, count: number): ArrayLike<number | bigint> {
  if (column.physical !== 'INT32' && column.physical !== 'INT64')
    throw new UnsupportedTensorError(`DELTA_BINARY_PACKED ${column.physical} values are not decoded`);
  const out = column.physical === 'INT32' ? new Int32Array(count) : new BigInt64Array(count);
  if (count) deltaBinaryUnpack({ view: new DataView(page.buffer, page.byteOffset, page.byteLength), offset: at }, count, out);
  return out;
}

/** A page's values, or dictionary indices to look up, for `count` present values. */
function pageValues(
  column: LeafColumn,
  encoding: string,
  page: Uint8Array,
  at: number,
  count: number,
  state: DecodeState,
  what: string,
): ArrayLike<number | bigint> {
  switch (encoding) {
    case 'PLAIN':
      return plainValues(column, page, at, count, what);
    case 'PLAIN_DICTIONARY':
    case 'RLE_DICTIONARY': {
      const dictionary = state.dictionary;
      if (!dictionary) throw new ArchiveError(`${what}: dictionary-encoded values come before any dictionary`);
      if (!count) return [];
      if (at >= page.length) throw new ArchiveError(`${what}: dictionary indices are missing`);
      const indices = new Uint32Array(count);
      decodeHybrid(page, at + 1, page.length, page[at], indices, dictionary.length - 1, `${what}: dictionary indices`);
      return lookup(dictionary, indices);
    }
    case 'RLE': {
      if (column.physical !== 'BOOLEAN') throw new UnsupportedTensorError(`${what}: RLE-encoded ${column.physical} values are not decoded`);
      const out = new Uint8Array(count);
      if (at + 4 > page.length) throw new ArchiveError(`${what}: RLE booleans are missing`);
      const length = new DataView(page.buffer, page.byteOffset + at, 4).getUint32(0, true);
      decodeHybrid(page, at + 4, Math.min(page.length, at + 4 + length), 1, out, 1, `${what}: booleans`);
      return out;
    }
    case 'BYTE_STREAM_SPLIT':
      return byteStreamSplit(column, page, at, count, what);
    case 'DELTA_BINARY_PACKED':
      return deltaValues(column, page, at, count);
    default:
      throw new UnsupportedTensorError(
        `${what}: values encoded ${encoding} are not decoded (CAI reads PLAIN, dictionary, RLE, BYTE_STREAM_SPLIT and DELTA_BINARY_PACKED)`,
      );
  }
}

/** Dictionary values gathered by index: an array-like over the indices. */
function lookup(dictionary: ArrayLike<number | bigint>, indices: Uint32Array): ArrayLike<number | bigint> {
  const gathered = new (dictionary.constructor as new (n: number) => { [i: number]: number | bigint; length: number })(indices.length);
  for (let i = 0; i < indices.length; i++) gathered[i] = dictionary[indices[i]];
  return gathered;
}

/** Levels of one page: repetition then definition, each null when the column has none. */
interface Levels {
  repetition: Uint8Array | null;
  definition: Uint8Array | null;
}

function decodeLevels(
  column: LeafColumn,
  page: Uint8Array,
  count: number,
  what: string,
  v1: boolean,
  v2Lengths?: [number, number],
): { levels: Levels; end: number } {
  const levels: Levels = { repetition: null, definition: null };
  let pos = 0;
  const kinds: ['repetition' | 'definition', number][] = [
    ['repetition', column.maxRepetition],
    ['definition', column.maxDefinition],
  ];
  kinds.forEach(([kind, max], i) => {
    let start = pos;
    let end: number;
    if (v1) {
      if (!max) return;
      if (pos + 4 > page.length) throw new ArchiveError(`${what}: ${kind} levels are missing`);
      const length = new DataView(page.buffer, page.byteOffset + pos, 4).getUint32(0, true);
      start = pos + 4;
      end = start + length;
    } else {
      end = start + v2Lengths![i];
    }
    if (end > page.length) throw new ArchiveError(`${what}: ${kind} levels overrun the page`);
    if (max) {
      const out = new Uint8Array(count);
      decodeHybrid(page, start, end, bitWidth(max), out, max, `${what}: ${kind} levels`);
      levels[kind] = out;
    }
    pos = end;
  });
  return { levels, end: pos };
}

/**
 * Walks one page's levels: checks the wanted rows (nulls, lengths), notes where their values begin,
 * and returns [first value index, value count] of the wanted rows in the page, and the page's
 * present values.
 */
function walkLevels(read: ChunkRead, levels: Levels, count: number, state: DecodeState): { from: number; take: number; present: number } {
  const { column, first, last } = read;
  const { repetition, definition } = levels;
  const { maxDefinition, emptyListDefinition, maxRepetition } = column;
  const findings = state.findings;
  let { row, length } = state;
  let present = 0;
  let from = -1;
  let take = 0;
  for (let i = 0; i < count; i++) {
    if (repetition === null || repetition[i] === 0) {
      if (row >= first && row < last && maxRepetition) endRow(findings, length);
      row++;
      length = 0;
    }
    const level = definition === null ? maxDefinition : definition[i];
    const wanted = row >= first && row < last;
    if (level === maxDefinition) {
      if (wanted) {
        if (from < 0) from = present;
        take++;
      }
      present++;
      length++;
    } else if (!(maxRepetition && level === emptyListDefinition) && wanted && findings.firstNull < 0) {
      findings.firstNull = read.groupStart + row;
    }
  }
  state.row = row;
  state.length = length;
  return { from: Math.max(from, 0), take, present };
}

function endRow(findings: ChunkFindings, length: number) {
  findings.rowsSeen++;
  if (length < findings.shortest) findings.shortest = length;
  if (length > findings.longest) findings.longest = length;
}

/** Whether the findings refuse the rows (a null, or a row of another length). */
export const refused = (findings: ChunkFindings, rowLength: number, list: boolean) =>
  findings.firstNull >= 0 || (list && findings.rowsSeen > 0 && (findings.shortest !== rowLength || findings.longest !== rowLength));

function copyValues(read: ChunkRead, values: ArrayLike<number | bigint>, from: number, take: number, state: DecodeState) {
  const out = read.out!;
  const at = read.at * read.rowLength + state.written;
  if (at + take > out.length) throw new ArchiveError(`${read.column.name}: more values than its rows hold`);
  if (ArrayBuffer.isView(values)) {
    (out as Float64Array).set((values as Float64Array).subarray(from, from + take), at);
  } else {
    for (let i = 0; i < take; i++) (out as unknown as (number | bigint)[])[at + i] = values[from + i];
  }
  state.written += take;
}

/**
 * Reads the wanted rows of one column chunk into `read.out`. Returns what it found; throws on a
 * malformed chunk, and (unless surveying) stops at the first page whose wanted rows hold a null or a
 * row of another length, leaving the message to the caller.
 */
export function readChunk(read: ChunkRead): ChunkFindings {
  const { column, bytes, codec } = read;
  const state: DecodeState = { row: -1, length: 0, written: 0, findings: { firstNull: -1, shortest: Infinity, longest: -1, rowsSeen: 0 } };
  const list = column.maxRepetition > 0;
  const itemSize = column.physical === 'BOOLEAN' ? 1 : column.physicalSize;
  let valuesLeft = read.values;
  let pageIndex = 0;
  const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 };
  const done = () => (list ? state.row >= read.last : state.row + 1 >= read.last) && !read.survey;
  while (valuesLeft > 0 && !done()) {
    const what = `${column.name}, row group at row ${read.groupStart}, page ${pageIndex++}`;
    if (reader.offset >= bytes.length) throw new ArchiveError(`${what}: the column chunk ends with ${valuesLeft} values still to come`);
    let header: PageHeader;
    try {
      header = parquetHeader(reader);
    } catch (error) {
      throw new ArchiveError(`${what}: unreadable page header (${(error as Error).message})`, { cause: error });
    }
    const compressed = header.compressed_page_size;
    const size = header.uncompressed_page_size;
    if (!Number.isSafeInteger(compressed) || compressed < 0 || reader.offset + compressed > bytes.length) {
      throw new ArchiveError(`${what}: a page of ${compressed} bytes overruns its column chunk`);
    }
    const body = bytes.subarray(reader.offset, reader.offset + compressed);
    reader.offset += compressed;
    if (!Number.isSafeInteger(size) || size < 0 || size > MAX_PAGE_BYTES || size > largestUncompressed(codec, compressed)) {
      throw new ArchiveError(`${what}: a page of ${compressed} ${codec} bytes cannot hold the ${size} its header claims`);
    }
    if (header.type === 'DICTIONARY_PAGE') {
      const count = header.dictionary_page_header?.num_values ?? -1;
      if (!Number.isSafeInteger(count) || count < 0 || count > read.values || size < count * itemSize || size > count * itemSize + 1024) {
        throw new ArchiveError(`${what}: a dictionary of ${count} values in ${size} bytes`);
      }
      state.dictionary = plainValues(column, decompress(codec, body, size), 0, count, what);
      continue;
    }
    if (header.type !== 'DATA_PAGE' && header.type !== 'DATA_PAGE_V2') continue;
    const v1 = header.type === 'DATA_PAGE';
    const pageHeader = v1 ? header.data_page_header : header.data_page_header_v2;
    const count = pageHeader?.num_values ?? -1;
    if (!pageHeader || !Number.isSafeInteger(count) || count < 0 || count > valuesLeft || count > MAX_PAGE_VALUES) {
      throw new ArchiveError(`${what}: a page of ${count} values where ${valuesLeft} are left`);
    }
    if (size > count * 16 + 1024) throw new ArchiveError(`${what}: ${size} bytes is too large for ${count} values`);
    valuesLeft -= count;
    // A page wholly before the wanted rows is skipped undecoded where its header counts its rows.
    const pageRows = !v1 ? header.data_page_header_v2!.num_rows : list ? -1 : count;
    if (!read.survey && pageRows >= 0 && state.row + pageRows < read.first) {
      if (!Number.isSafeInteger(pageRows)) throw new ArchiveError(`${what}: ${pageRows} rows`);
      state.row += pageRows;
      state.length = 0;
      continue;
    }
    let page: Uint8Array;
    let levels: Levels;
    let valuesAt: number;
    if (v1) {
      page = decompress(codec, body, size);
      ({ levels, end: valuesAt } = decodeLevels(column, page, count, what, true));
    } else {
      const v2 = header.data_page_header_v2!;
      const repetitionBytes = v2.repetition_levels_byte_length;
      const definitionBytes = v2.definition_levels_byte_length;
      const levelBytes = repetitionBytes + definitionBytes;
      if (!(repetitionBytes >= 0 && definitionBytes >= 0 && levelBytes <= compressed && levelBytes <= size)) {
        throw new ArchiveError(`${what}: levels of ${levelBytes} bytes in a page of ${compressed}`);
      }
      ({ levels } = decodeLevels(column, body.subarray(0, levelBytes), count, what, false, [repetitionBytes, definitionBytes]));
      const rest = body.subarray(levelBytes);
      page = v2.is_compressed === false || size === levelBytes ? rest : decompress(codec, rest, size - levelBytes);
      valuesAt = 0;
    }
    const { from, take, present } = walkLevels(read, levels, count, state);
    if (refused(state.findings, read.rowLength, list) && !read.survey) return state.findings;
    if (read.out && take) {
      const values = pageValues(column, pageHeader.encoding, page, valuesAt, present, state, what);
      copyValues(read, values, from, take, state);
    }
  }
  // The chunk's last row ends with it.
  if (list && state.row >= read.first && state.row < read.last) endRow(state.findings, state.length);
  if (valuesLeft === 0 && state.row + 1 !== read.rows) {
    throw new ArchiveError(
      `${column.name}: the row group at row ${read.groupStart} holds ${state.row + 1} rows, its footer says ${read.rows}`,
    );
  }
  if (read.out && !refused(state.findings, read.rowLength, list)) {
    const wanted = (Math.min(read.last, read.rows) - read.first) * read.rowLength;
    if (state.written !== wanted)
      throw new ArchiveError(`${column.name}: the row group at row ${read.groupStart} gave ${state.written} values of ${wanted}`);
  }
  return state.findings;
}
