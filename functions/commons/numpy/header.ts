import { DTYPES, type DType } from '../tensors/dtype';
import { ArchiveError, UnsupportedTensorError } from '../errors';

/**
 * The .npy preamble and header: `\x93NUMPY`, a version, a header length, then a Python dict literal
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }`. The literal is parsed by a small
 * grammar of its own (strings, integers, booleans, tuples, lists, dicts) and never evaluated, and an
 * object dtype is refused from its header alone: its pickled payload is never read.
 */

export const NPY_MAGIC = Uint8Array.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
/** Bytes that always hold the preamble: magic, version and a header length of 2 or 4 bytes. */
export const NPY_PREAMBLE_BYTES = 12;
/** numpy itself refuses headers over 10000 bytes unless told otherwise; structured dtypes are the long ones. */
export const MAX_HEADER_BYTES = 1024 * 1024;
const MAX_DIMS = 64;
const MAX_DEPTH = 16;

/** What the header says of the array that follows it. */
export interface NpyLayout {
  dtype: DType;
  /** The data is big-endian ('>') and multi-byte: swapped to native as it is read. */
  bigEndian: boolean;
  /** [rows, ...one row's]; at least one dimension. */
  shape: number[];
  /** Offset of the data from the start of the .npy (its header's end). */
  dataOffset: number;
  rowBytes: number;
  dataBytes: number;
}

export const startsWithNpyMagic = (bytes: Uint8Array): boolean =>
  bytes.length >= NPY_MAGIC.length && NPY_MAGIC.every((b, i) => bytes[i] === b);

/** Where the header ends (the data begins), from the preamble; `available` is the .npy's size. */
export function npyHeaderEnd(preamble: Uint8Array, available: number, label: string): number {
  if (!startsWithNpyMagic(preamble)) {
    throw new ArchiveError(`${label}: not a .npy array (no \\x93NUMPY magic)`);
  }
  if (preamble.length < NPY_PREAMBLE_BYTES && preamble.length === available) {
    throw new ArchiveError(`${label}: truncated .npy: ${available} bytes end inside its preamble`);
  }
  const major = preamble[6];
  const minor = preamble[7];
  const dv = new DataView(preamble.buffer, preamble.byteOffset, preamble.byteLength);
  let headerEnd: number;
  if (major === 1 && minor === 0) headerEnd = 10 + dv.getUint16(8, true);
  else if ((major === 2 || major === 3) && minor === 0) headerEnd = 12 + dv.getUint32(8, true);
  else throw new UnsupportedTensorError(`${label}: .npy format version ${major}.${minor} is not supported (CAI reads 1.0, 2.0 and 3.0)`);
  if (headerEnd - NPY_PREAMBLE_BYTES > MAX_HEADER_BYTES) {
    throw new ArchiveError(`${label}: .npy header of ${headerEnd} bytes is beyond the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (headerEnd > available) {
    throw new ArchiveError(`${label}: truncated .npy: its header runs to byte ${headerEnd} but it holds ${available}`);
  }
  return headerEnd;
}

type Literal = string | number | boolean | null | Literal[] | { tuple: Literal[] } | Map<string, Literal>;

/** A recursive-descent parser of the Python literals a .npy header may hold; anything else is refused. */
class LiteralParser {
  private at = 0;
  constructor(
    private readonly text: string,
    private readonly label: string,
  ) {}

  private fail(what: string): never {
    throw new ArchiveError(`${this.label}: .npy header is not a dict literal: ${what} at character ${this.at}`);
  }

  private skipSpace(): void {
    while (this.at < this.text.length && ' \t\r\n'.includes(this.text[this.at])) this.at++;
  }

  private peek(): string {
    this.skipSpace();
    return this.text[this.at] ?? '';
  }

  private expect(c: string): void {
    if (this.peek() !== c) this.fail(`expected '${c}'`);
    this.at++;
  }

  parseHeader(): Literal {
    if (this.peek() !== '{') this.fail("expected '{'");
    const value = this.value(0);
    if (this.peek() !== '') this.fail('unexpected text after the dict');
    return value;
  }

  private value(depth: number): Literal {
    if (depth > MAX_DEPTH) this.fail('nesting too deep');
    const c = this.peek();
    if (c === "'" || c === '"') return this.string();
    if (c === '{') return this.dict(depth);
    if (c === '(') {
      this.at++;
      const { items, trailingComma } = this.sequence(')', depth);
      // `(x)` is x in Python; only a comma makes a one-item tuple.
      return items.length === 1 && !trailingComma ? items[0] : { tuple: items };
    }
    if (c === '[') {
      this.at++;
      return this.sequence(']', depth).items;
    }
    if (/[-0-9]/.test(c)) return this.integer();
    for (const [word, literal] of [
      ['True', true],
      ['False', false],
      ['None', null],
    ] as const) {
      if (this.text.startsWith(word, this.at) && !/\w/.test(this.text[this.at + word.length] ?? '')) {
        this.at += word.length;
        return literal;
      }
    }
    return this.fail(c ? `unexpected '${c}'` : 'unexpected end');
  }

  private string(): string {
    const quote = this.text[this.at++];
    let out = '';
    for (;;) {
      const c = this.text[this.at++];
      if (c === undefined || c === '\n') this.fail('unterminated string');
      if (c === quote) return out;
      if (c === '\\') {
        const escaped = this.text[this.at++];
        if (escaped === undefined) this.fail('unterminated string');
        out += escaped;
      } else {
        out += c;
      }
    }
  }

  private integer(): number {
    const match = /^-?[0-9]+L?/.exec(this.text.slice(this.at, this.at + 40));
    if (!match) this.fail('malformed number');
    this.at += match[0].length;
    const digits = match[0].replace(/L$/, '');
    // More digits than a safe integer has: kept as Infinity so the shape check names it absurd.
    return digits.replace('-', '').length > 17 ? (digits.startsWith('-') ? -Infinity : Infinity) : Number(digits);
  }

  private sequence(close: string, depth: number): { items: Literal[]; trailingComma: boolean } {
    const items: Literal[] = [];
    let trailingComma = false;
    while (this.peek() !== close) {
      items.push(this.value(depth + 1));
      trailingComma = false;
      if (this.peek() === ',') {
        this.at++;
        trailingComma = true;
      } else if (this.peek() !== close) {
        this.fail(`expected ',' or '${close}'`);
      }
    }
    this.at++;
    return { items, trailingComma };
  }

  private dict(depth: number): Map<string, Literal> {
    this.expect('{');
    const map = new Map<string, Literal>();
    while (this.peek() !== '}') {
      const c = this.peek();
      if (c !== "'" && c !== '"') this.fail('expected a string key');
      const key = this.string();
      if (map.has(key)) this.fail(`key '${key}' repeated`);
      this.expect(':');
      map.set(key, this.value(depth + 1));
      if (this.peek() === ',') this.at++;
      else if (this.peek() !== '}') this.fail("expected ',' or '}'");
    }
    this.at++;
    return map;
  }
}

const KINDS: Record<string, Partial<Record<number, DType>>> = {
  f: { 2: 'float16', 4: 'float32', 8: 'float64' },
  i: { 1: 'int8', 2: 'int16', 4: 'int32', 8: 'int64' },
  u: { 1: 'uint8', 2: 'uint16', 4: 'uint32', 8: 'uint64' },
  b: { 1: 'bool' },
};

const REFUSED_KINDS: Record<string, string> = {
  O: 'an object array (a pickled payload, which CAI never unpickles)',
  U: 'a unicode string array',
  S: 'a byte string array',
  a: 'a byte string array',
  c: 'a complex array',
  V: 'a void (raw or structured) array',
  M: 'a datetime array',
  m: 'a timedelta array',
};

function dtypeOf(descr: Literal, label: string): { dtype: DType; bigEndian: boolean } {
  if (Array.isArray(descr)) {
    throw new UnsupportedTensorError(`${label}: a structured (record) array is not supported; CAI reads arrays of one numeric dtype`);
  }
  if (typeof descr !== 'string') throw new ArchiveError(`${label}: .npy header 'descr' is not a dtype string`);
  const shown = JSON.stringify(descr).slice(0, 40);
  const match = /^([<>|=]?)([a-zA-Z])(\d*)(\[\w+\])?$/.exec(descr);
  if (!match) throw new UnsupportedTensorError(`${label}: dtype ${shown} is not supported`);
  const [, order, kind, size] = match;
  const refused = REFUSED_KINDS[kind];
  if (refused) throw new UnsupportedTensorError(`${label}: dtype ${shown} is ${refused}; it is refused`);
  const dtype = KINDS[kind]?.[Number(size)];
  if (!dtype) throw new UnsupportedTensorError(`${label}: dtype ${shown} is not supported (CAI reads f2 f4 f8 i1-i8 u1-u8 b1)`);
  const itemSize = DTYPES[dtype].itemSize;
  if (itemSize > 1 && (order === '|' || order === '=' || order === '')) {
    throw new UnsupportedTensorError(`${label}: dtype ${shown} does not state its byte order`);
  }
  return { dtype, bigEndian: itemSize > 1 && order === '>' };
}

/** Parses the header of a .npy whose bytes [0, headerEnd) are given; checks its data fits in `available` bytes. */
export function parseNpyHeader(bytes: Uint8Array, headerEnd: number, available: number, label: string): NpyLayout {
  const start = bytes[6] === 1 ? 10 : 12;
  const headerBytes = bytes.subarray(start, headerEnd);
  let text: string;
  try {
    // Versions 1.0 and 2.0 are latin-1, 3.0 utf-8.
    text = new TextDecoder(bytes[6] === 3 ? 'utf-8' : 'latin1', { fatal: true }).decode(headerBytes);
  } catch (error) {
    throw new ArchiveError(`${label}: .npy header is not valid text`, { cause: error });
  }
  const header = new LiteralParser(text, label).parseHeader();
  if (!(header instanceof Map)) throw new ArchiveError(`${label}: .npy header is not a dict literal`);
  const keys = [...header.keys()].sort().join(', ');
  if (keys !== 'descr, fortran_order, shape') {
    throw new ArchiveError(`${label}: .npy header has keys ${keys || 'none'}, not descr, fortran_order and shape`);
  }
  const { dtype, bigEndian } = dtypeOf(header.get('descr')!, label);

  const shapeLiteral = header.get('shape');
  const dims = shapeLiteral && typeof shapeLiteral === 'object' && 'tuple' in shapeLiteral ? shapeLiteral.tuple : undefined;
  if (!dims || dims.length > MAX_DIMS || !dims.every((d) => typeof d === 'number')) {
    throw new ArchiveError(`${label}: .npy header 'shape' is not a tuple of at most ${MAX_DIMS} integers`);
  }
  const shape = dims as number[];
  const shown = `(${shape.join(', ')})`;
  // A row's elements first, so that a shape with no rows still has a checked row size.
  let rowElements = 1;
  for (const d of [...shape.slice(1), shape[0] ?? 1]) {
    if (!Number.isSafeInteger(d) || d < 0) throw new ArchiveError(`${label}: .npy header declares an absurd shape ${shown}`);
  }
  for (const d of shape.slice(1)) rowElements *= d;
  const itemSize = DTYPES[dtype].itemSize;
  const rowBytes = rowElements * itemSize;
  const dataBytes = rowBytes * (shape[0] ?? 1);
  if (!Number.isSafeInteger(rowBytes) || !Number.isSafeInteger(dataBytes)) {
    throw new ArchiveError(`${label}: .npy header declares an absurd shape ${shown}`);
  }
  if (shape.length === 0) {
    throw new UnsupportedTensorError(`${label}: a 0-d array (one scalar) is not supported; CAI reads arrays with a row per object`);
  }
  const fortranOrder = header.get('fortran_order');
  if (typeof fortranOrder !== 'boolean') throw new ArchiveError(`${label}: .npy header 'fortran_order' is not True or False`);
  // Column-major data of more than one non-trivial axis has no contiguous rows to read by range.
  if (fortranOrder && shape.filter((d) => d > 1).length > 1) {
    throw new UnsupportedTensorError(
      `${label}: a Fortran-order (column-major) array ${shown} is not supported; save it with np.ascontiguousarray`,
    );
  }
  if (headerEnd + dataBytes > available) {
    throw new ArchiveError(
      `${label}: truncated: shape ${shown} of ${dtype} needs ${dataBytes} bytes of data but ${Math.max(0, available - headerEnd)} follow its header`,
    );
  }
  return { dtype, bigEndian, shape, dataOffset: headerEnd, rowBytes, dataBytes };
}
