import { allocateAligned, type ByteSource } from '../tensors/byte-source';
import { DTYPES, swapBytes, typedView, type DType, type TensorData } from '../tensors/dtype';
import { describeTensor, describeTensors, type StoredTensor, type TensorFile } from '../tensors/tensor-file';
import { readHdus, type Hdu } from './hdus';
import { showValue, type FitsHeader } from './header';

/**
 * FITS files (FITS Standard 4.0) as CAI's tensors: image HDUs (the primary array or IMAGE extensions)
 * and the fixed-size numeric columns of binary tables, shaped as astropy presents them. Opening reads
 * headers only; rows are read by byte range when asked for.
 *
 * Names: an image HDU by its EXTNAME, else its index (`0` for the primary); a table column as
 * `<HDU>/<TTYPE>`. An EXTNAME that several HDUs share names none of them: they go by index.
 */

/** How a value is stored in the file: big-endian, as FITS always is. */
type StoredType = 'uint8' | 'int16' | 'int32' | 'int64' | 'float32' | 'float64' | 'logical';

/** Where one tensor's bytes lie and how they become its dtype. */
interface Field {
  dataOffset: number;
  rows: number;
  /** Stored bytes from one row to the next: an image's object, a table's NAXIS1. */
  rowBytes: number;
  /** This tensor's bytes within a row: all of an image's, one column's of a table's. */
  fieldOffset: number;
  fieldBytes: number;
  stored: StoredType;
  /**
   * none: swapped to native; flipSign: the unsigned (or, for bytes, signed) convention, offset by
   * flipping the top bit; logical: 'T' is 1, anything else 0; scale: zero + scale × stored, in `dtype`,
   * with BLANK values NaN.
   */
  conversion: 'none' | 'flipSign' | 'logical' | 'scale';
  scale: number;
  zero: number;
  blank?: number;
}

const STORED_BYTES: Record<StoredType, number> = { uint8: 1, int16: 2, int32: 4, int64: 8, float32: 4, float64: 8, logical: 1 };
const BITPIX_STORED: Record<number, StoredType> = { 8: 'uint8', 16: 'int16', 32: 'int32', 64: 'int64', [-32]: 'float32', [-64]: 'float64' };
const NATIVE: Record<StoredType, DType> = {
  uint8: 'uint8',
  int16: 'int16',
  int32: 'int32',
  int64: 'int64',
  float32: 'float32',
  float64: 'float64',
  logical: 'bool',
};
/** The types the offset conventions (Standard 4.0 table 11 and 19) turn stored integers into. */
const OFFSET_TYPES: Partial<Record<StoredType, { zero: bigint; dtype: DType }>> = {
  uint8: { zero: -128n, dtype: 'int8' },
  int16: { zero: 32768n, dtype: 'uint16' },
  int32: { zero: 2147483648n, dtype: 'uint32' },
  int64: { zero: 9223372036854775808n, dtype: 'uint64' },
};

interface Decoded {
  dtype: DType;
  conversion: Field['conversion'];
  scale: number;
  zero: number;
  blank?: number;
}

/**
 * The dtype of stored values under a scale and zero (BSCALE/BZERO, TSCALn/TZEROn). The offset
 * conventions give their integer type exactly. Otherwise scaled values are floats, as astropy gives
 * them: an image's BITPIX 8 or 16 as float32, 32, 64 or -64 as float64 (-32 stays float32); a table
 * column's as float64 whatever its type (astropy's tables scale in float64).
 */
function decodedType(
  stored: StoredType,
  header: FitsHeader,
  scaleKey: string,
  zeroKey: string,
  blank: number | undefined,
  table: boolean,
): Decoded {
  const scale = header.number(scaleKey) ?? 1;
  const zero = header.number(zeroKey) ?? 0;
  const scaled = scale !== 1 || zero !== 0;
  const offset = OFFSET_TYPES[stored];
  if (scaled && offset && scale === 1 && header.equals(zeroKey, offset.zero)) {
    return { dtype: offset.dtype, conversion: 'flipSign', scale, zero };
  }
  if (!scaled && blank === undefined) return { dtype: NATIVE[stored], conversion: stored === 'logical' ? 'logical' : 'none', scale, zero };
  const float32 = !table && (stored === 'uint8' || stored === 'int16' || stored === 'float32');
  return { dtype: float32 ? 'float32' : 'float64', conversion: 'scale', scale, zero, blank };
}

/** What the file holds under one HDU: an image tensor, a table's columns, or why it holds none. */
interface HduEntry {
  hdu: Hdu;
  /** EXTNAME, else the index. */
  name: string;
  extname?: string;
  image?: StoredTensor;
  columns?: ColumnEntry[];
  reason?: string;
}

interface ColumnEntry {
  name: string;
  tensor?: StoredTensor;
  reason?: string;
}

const productOf = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

function imageEntry(entry: HduEntry, fields: Map<StoredTensor, Field>): void {
  const { hdu } = entry;
  if (hdu.groups) {
    entry.reason = 'holds random groups (GROUPS = T), which CAI does not read';
    return;
  }
  if (hdu.axes.length === 0) {
    entry.reason = 'holds no data (NAXIS = 0)';
    return;
  }
  const empty = hdu.axes.indexOf(0);
  if (empty >= 0) {
    // Also keeps a zero-sized image from claiming any number of objects (NAXIS1 = 0, NAXIS2 = 10^15).
    entry.reason = `holds no data (NAXIS${empty + 1} = 0)`;
    return;
  }
  if (hdu.pcount !== 0 || hdu.gcount !== 1) {
    entry.reason = `is an image with PCOUNT = ${hdu.pcount} and GCOUNT = ${hdu.gcount}; CAI reads images of PCOUNT 0 and GCOUNT 1`;
    return;
  }
  const stored = BITPIX_STORED[hdu.bitpix];
  // BLANK marks integer pixels without a value; astropy then gives floats with NaN there.
  const blank = hdu.bitpix > 0 ? hdu.header.number('BLANK') : undefined;
  const decoded = decodedType(stored, hdu.header, 'BSCALE', 'BZERO', blank, false);
  // numpy's order: the last axis (NAXISn) first, so the first axis is the objects.
  const shape = [...hdu.axes].reverse();
  const rowBytes = productOf(shape.slice(1)) * STORED_BYTES[stored];
  const tensor: StoredTensor = { name: entry.name, dtype: decoded.dtype, shape, rowsReadTogether: 1, storedBytesPerRow: rowBytes };
  entry.image = tensor;
  fields.set(tensor, { dataOffset: hdu.dataOffset, rows: shape[0], rowBytes, fieldOffset: 0, fieldBytes: rowBytes, stored, ...decoded });
}

/** Binary table column codes (Standard 4.0 table 18): stored type, bytes per element. */
const COLUMN_CODES: Record<string, StoredType | string> = {
  L: 'logical',
  B: 'uint8',
  I: 'int16',
  J: 'int32',
  K: 'int64',
  E: 'float32',
  D: 'float64',
  A: 'a string column',
  X: 'a bit column',
  C: 'a complex column',
  M: 'a complex column',
  P: 'a variable-length array column',
  Q: 'a variable-length array column',
};
const CODE_BYTES: Record<string, number> = { L: 1, B: 1, I: 2, J: 4, K: 8, A: 1, E: 4, D: 8, C: 8, M: 16, P: 8, Q: 16 };
const TFORM = /^(\d*)([A-Z])(.*)$/;
const TDIM = /^\(\s*\d+\s*(,\s*\d+\s*)*\)$/;
const MAX_TFIELDS = 999;

function tableEntry(entry: HduEntry, fields: Map<StoredTensor, Field>): void {
  const { hdu } = entry;
  const { header } = hdu;
  if (header.logical('ZIMAGE') === true) {
    const compression = header.string('ZCMPTYPE') ?? 'unknown';
    entry.reason =
      `is a tile-compressed image (ZCMPTYPE=${compression}); CAI reads uncompressed images: ` +
      `write it with astropy's ImageHDU, not CompImageHDU`;
    return;
  }
  if (hdu.bitpix !== 8 || hdu.axes.length !== 2 || hdu.gcount !== 1) {
    entry.reason = `is a malformed binary table (BITPIX ${hdu.bitpix}, NAXIS ${hdu.axes.length}, GCOUNT ${hdu.gcount}; FITS requires 8, 2 and 1)`;
    return;
  }
  const [rowBytes, rows] = hdu.axes;
  const tfieldsValue = header.get('TFIELDS');
  const tfields = typeof tfieldsValue === 'bigint' ? Number(tfieldsValue) : -1;
  if (tfields < 0 || tfields > MAX_TFIELDS) {
    entry.reason = `is a malformed binary table (TFIELDS = ${showValue(tfieldsValue)}; FITS requires 0 to ${MAX_TFIELDS})`;
    return;
  }
  const columns: ColumnEntry[] = [];
  let offset = 0;
  for (let n = 1; n <= tfields; n++) {
    const tform = (header.string(`TFORM${n}`) ?? '').trim().toUpperCase();
    const match = TFORM.exec(tform);
    const kind = match && COLUMN_CODES[match[2]];
    const repeat = match && match[1] ? Number(match[1]) : 1;
    if (!match || !kind || !Number.isSafeInteger(repeat)) {
      entry.reason = `is a malformed binary table (TFORM${n} = '${tform}' is not a binary table format)`;
      return;
    }
    const code = match[2];
    const bytes = code === 'X' ? Math.ceil(repeat / 8) : repeat * CODE_BYTES[code];
    if (offset + bytes > rowBytes) {
      entry.reason = `is a malformed binary table (its columns take more than its NAXIS1 = ${rowBytes} bytes a row)`;
      return;
    }
    const column: ColumnEntry = { name: header.string(`TTYPE${n}`)?.trim() || `col${n}` };
    columns.push(column);
    const fieldOffset = offset;
    offset += bytes;
    const name = `${entry.name}/${column.name}`;
    if (!(kind in STORED_BYTES)) {
      column.reason = `is ${kind} (TFORM${n} = '${tform}'); CAI reads fixed-size numeric and logical columns`;
      continue;
    }
    if (repeat === 0) {
      column.reason = `is an empty column (TFORM${n} = '${tform}')`;
      continue;
    }
    let perRow = repeat === 1 ? [] : [repeat];
    const tdim = header.string(`TDIM${n}`)?.trim();
    if (tdim !== undefined) {
      if (!TDIM.test(tdim)) {
        column.reason = `has TDIM${n} = '${tdim}', which is not a list of dimensions like '(64,64,5)'`;
        continue;
      }
      const dims = tdim.slice(1, -1).split(',').map(Number);
      if (productOf(dims) !== repeat) {
        column.reason = `has TDIM${n} = '${tdim}' of ${productOf(dims)} elements, but TFORM${n} = '${tform}' holds ${repeat}`;
        continue;
      }
      // TDIM lists the fastest-varying axis first, as NAXISn do; numpy's order reverses it.
      perRow = dims.reverse();
    }
    const stored = kind as StoredType;
    const decoded =
      stored === 'logical'
        ? { dtype: 'bool' as DType, conversion: 'logical' as const, scale: 1, zero: 0 }
        : decodedType(stored, header, `TSCAL${n}`, `TZERO${n}`, undefined, true);
    const tensor: StoredTensor = { name, dtype: decoded.dtype, shape: [rows, ...perRow], rowsReadTogether: 1, storedBytesPerRow: rowBytes };
    column.tensor = tensor;
    fields.set(tensor, { dataOffset: hdu.dataOffset, rows, rowBytes, fieldOffset, fieldBytes: bytes, stored, ...decoded });
  }
  entry.columns = columns;
}

/** Makes stored bytes (this tensor's, gathered) native in place, for every conversion but scaling. */
function convertInPlace(field: Field, bytes: Uint8Array): void {
  const itemBytes = STORED_BYTES[field.stored];
  if (field.conversion === 'logical') {
    for (let i = 0; i < bytes.length; i++) bytes[i] = bytes[i] === 0x54 ? 1 : 0; // 'T'
    return;
  }
  // Adding 2^(bits-1) to a two's complement integer flips its top bit: the first byte's, big-endian.
  if (field.conversion === 'flipSign') for (let i = 0; i < bytes.length; i += itemBytes) bytes[i] ^= 0x80;
  swapBytes(bytes, itemBytes);
}

function storedReader(stored: StoredType, view: DataView): (at: number) => number {
  switch (stored) {
    case 'uint8':
    case 'logical':
      return (at) => view.getUint8(at);
    case 'int16':
      return (at) => view.getInt16(at);
    case 'int32':
      return (at) => view.getInt32(at);
    case 'int64':
      return (at) => Number(view.getBigInt64(at));
    case 'float32':
      return (at) => view.getFloat32(at);
    case 'float64':
      return (at) => view.getFloat64(at);
  }
}

/**
 * zero + scale × stored, in the order and precision astropy uses (numpy multiplies in place, then adds):
 * a float32 result is rounded after each step, with scale and zero first rounded to float32.
 */
function scaleInto(field: Field, bytes: Uint8Array, out: Float32Array | Float64Array): void {
  const itemBytes = STORED_BYTES[field.stored];
  const read = storedReader(field.stored, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const float32 = out instanceof Float32Array;
  const round = float32 ? Math.fround : (x: number) => x;
  const scale = round(field.scale);
  const zero = round(field.zero);
  const { blank } = field;
  for (let i = 0, at = 0; i < out.length; i++, at += itemBytes) {
    const value = read(at);
    if (value === blank) {
      out[i] = NaN;
      continue;
    }
    let physical = round(value);
    if (scale !== 1) physical = round(physical * scale);
    if (zero !== 0) physical = physical + zero;
    out[i] = physical;
  }
}

/** Opens a FITS file from its headers; throws an ArchiveError, in one line, on one it cannot walk. */
export async function openFitsFile(source: ByteSource): Promise<TensorFile> {
  const hdus = await readHdus(source);
  const fields = new Map<StoredTensor, Field>();
  const extnameCount = new Map<string, number>();
  const extnameOf = (hdu: Hdu) => hdu.header.string('EXTNAME')?.trim() || undefined;
  for (const hdu of hdus) {
    const extname = extnameOf(hdu)?.toUpperCase();
    if (extname) extnameCount.set(extname, (extnameCount.get(extname) ?? 0) + 1);
  }
  const entries = hdus.map((hdu): HduEntry => {
    const extname = extnameOf(hdu);
    const unique = extname !== undefined && extnameCount.get(extname.toUpperCase()) === 1;
    const entry: HduEntry = { hdu, name: unique ? extname : String(hdu.index), extname };
    if (hdu.type === 'PRIMARY' || hdu.type === 'IMAGE') imageEntry(entry, fields);
    else if (hdu.type === 'BINTABLE') tableEntry(entry, fields);
    else if (hdu.type === 'TABLE') entry.reason = 'is an ASCII table; CAI reads binary tables (BINTABLE)';
    else entry.reason = `is an extension of type ${hdu.type || '(none)'}, which CAI does not read`;
    return entry;
  });
  const tensors = entries.flatMap((entry) =>
    entry.image ? [entry.image] : (entry.columns ?? []).flatMap((c) => (c.tensor ? [c.tensor] : [])),
  );
  const holds = () => `it holds ${describeTensors({ tensors }, 'HDUs')}`;
  const label = (entry: HduEntry) =>
    entry.name === String(entry.hdu.index) ? `HDU ${entry.name}` : `HDU ${entry.hdu.index} (${entry.name})`;

  function hduByRef(ref: string): HduEntry | HduEntry[] | undefined {
    if (/^\d+$/.test(ref)) return entries[Number(ref)];
    const matches = entries.filter((entry) => entry.extname?.toUpperCase() === ref.toUpperCase());
    return matches.length > 1 ? matches : matches[0];
  }

  function findHdu(entry: HduEntry): StoredTensor | string {
    if (entry.image) return entry.image;
    if (entry.reason) return `${label(entry)} ${entry.reason}`;
    const columns = (entry.columns ?? []).filter((c) => c.tensor).map((c) => describeTensor(c.tensor!));
    return `${label(entry)} is a binary table: name one of its columns (${columns.join(', ') || 'none of them is a tensor'})`;
  }

  function find(ref: number | string): StoredTensor | string {
    if (typeof ref === 'number') {
      const entry = Number.isInteger(ref) ? entries[ref] : undefined;
      return entry ? findHdu(entry) : `no HDU ${ref}: ${holds()}`;
    }
    const text = ref.trim();
    const whole = hduByRef(text);
    const slash = text.lastIndexOf('/');
    if (!whole && slash > 0) {
      const hduRef = text.slice(0, slash).trim();
      const columnRef = text
        .slice(slash + 1)
        .trim()
        .toUpperCase();
      const owner = hduByRef(hduRef);
      if (Array.isArray(owner)) return `EXTNAME ${hduRef} names HDUs ${owner.map((e) => e.hdu.index).join(', ')}: name one by its index`;
      if (owner) {
        if (!owner.columns) return findHdu(owner);
        const column = owner.columns.find((c) => c.name.toUpperCase() === columnRef);
        if (!column) {
          return `no column "${text.slice(slash + 1).trim()}" in ${label(owner)}: it holds columns ${owner.columns.map((c) => c.name).join(', ') || 'none'}`;
        }
        return column.tensor ?? `${owner.name}/${column.name} ${column.reason}`;
      }
    }
    if (Array.isArray(whole)) return `EXTNAME ${text} names HDUs ${whole.map((e) => e.hdu.index).join(', ')}: name one by its index`;
    return whole ? findHdu(whole) : `no HDU "${text}": ${holds()}`;
  }

  async function storedBytes(field: Field, start: number, count: number, target?: Uint8Array): Promise<Uint8Array> {
    const offset = field.dataOffset + start * field.rowBytes;
    if (field.fieldBytes === field.rowBytes) {
      const bytes = await source.read(offset, count * field.rowBytes, target);
      // A source in memory returns a view of itself: copied, since it is then converted in place.
      if (target && (bytes.buffer !== target.buffer || bytes.byteOffset !== target.byteOffset)) target.set(bytes);
      return target ?? bytes;
    }
    // One read of the rows' whole span, then this column's bytes gathered from each row.
    const span = await source.read(offset, count * field.rowBytes);
    const out = target ?? allocateAligned(count * field.fieldBytes);
    for (let row = 0; row < count; row++) {
      const from = row * field.rowBytes + field.fieldOffset;
      out.set(span.subarray(from, from + field.fieldBytes), row * field.fieldBytes);
    }
    return out;
  }

  async function readRows(tensor: StoredTensor, start: number, end: number, into?: Uint8Array): Promise<TensorData> {
    const field = fields.get(tensor) ?? [...fields].find(([t]) => t.name === tensor.name)?.[1];
    if (!field) throw new RangeError(`${source.name}: ${describeTensor(tensor)} is not a tensor of this file`);
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end || end > field.rows) {
      throw new RangeError(`${source.name}: rows [${start}, ${end}) of ${tensor.name}, which has ${field.rows}`);
    }
    const count = end - start;
    const { itemSize } = DTYPES[tensor.dtype];
    const elements = (count * field.fieldBytes) / STORED_BYTES[field.stored];
    const outBytes = elements * itemSize;
    const out = into && into.byteLength >= outBytes ? into.subarray(0, outBytes) : allocateAligned(outBytes);
    if (field.conversion === 'scale') {
      const data = typedView(tensor.dtype, out) as Float32Array | Float64Array;
      scaleInto(field, await storedBytes(field, start, count), data);
      return data;
    }
    convertInPlace(field, await storedBytes(field, start, count, out));
    return typedView(tensor.dtype, out);
  }

  return {
    format: 'fits',
    name: source.name,
    size: source.size,
    tensors,
    find,
    readRows,
    close: () => source.close(),
  };
}
