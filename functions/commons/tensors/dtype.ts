import { UnsupportedTensorError } from '../errors';

/**
 * The element types CAI decodes, named as numpy and torch name them. Every reader hands data over in
 * this machine's (little-endian) byte order: a big-endian file (FITS, a `>f4` array) is swapped as it
 * is read, so nothing past the readers knows a file's byte order.
 */
export type DType =
  'float64' | 'float32' | 'float16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint64' | 'uint32' | 'uint16' | 'uint8' | 'bool';

export type TensorData =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint32Array
  | Uint8Array;

interface DTypeInfo {
  itemSize: number;
  /** Whole numbers (may be given to a model as int64). */
  integer: boolean;
  view(buffer: ArrayBuffer, byteOffset: number, length: number): TensorData;
}

export const DTYPES: Record<DType, DTypeInfo> = {
  float64: { itemSize: 8, integer: false, view: (b, o, n) => new Float64Array(b, o, n) },
  float32: { itemSize: 4, integer: false, view: (b, o, n) => new Float32Array(b, o, n) },
  // float16 stays as raw IEEE half bits; `toFloat32` widens it.
  float16: { itemSize: 2, integer: false, view: (b, o, n) => new Uint16Array(b, o, n) },
  int64: { itemSize: 8, integer: true, view: (b, o, n) => new BigInt64Array(b, o, n) },
  int32: { itemSize: 4, integer: true, view: (b, o, n) => new Int32Array(b, o, n) },
  int16: { itemSize: 2, integer: true, view: (b, o, n) => new Int16Array(b, o, n) },
  int8: { itemSize: 1, integer: true, view: (b, o, n) => new Int8Array(b, o, n) },
  uint64: { itemSize: 8, integer: true, view: (b, o, n) => new BigUint64Array(b, o, n) },
  uint32: { itemSize: 4, integer: true, view: (b, o, n) => new Uint32Array(b, o, n) },
  uint16: { itemSize: 2, integer: true, view: (b, o, n) => new Uint16Array(b, o, n) },
  uint8: { itemSize: 1, integer: true, view: (b, o, n) => new Uint8Array(b, o, n) },
  bool: { itemSize: 1, integer: true, view: (b, o, n) => new Uint8Array(b, o, n) },
};

export const SUPPORTED_DTYPES = Object.keys(DTYPES).join(', ');

export function unsupportedDtype(name: string): UnsupportedTensorError {
  return new UnsupportedTensorError(`tensor dtype ${name} is not supported (CAI decodes ${SUPPORTED_DTYPES})`);
}

/** A typed view over bytes; copies only when the bytes are not aligned for the element type. */
export function typedView(dtype: DType, bytes: Uint8Array): TensorData {
  const { itemSize, view } = DTYPES[dtype];
  const aligned = bytes.byteOffset % itemSize === 0 ? bytes : bytes.slice();
  return view(aligned.buffer as ArrayBuffer, aligned.byteOffset, aligned.byteLength / itemSize);
}

export function allocateTensorData(dtype: DType, length: number): TensorData {
  const { itemSize, view } = DTYPES[dtype];
  return view(new ArrayBuffer(length * itemSize), 0, length);
}

/** Reverses the bytes of each `itemSize`-byte element in place: big-endian data made native. */
export function swapBytes(bytes: Uint8Array, itemSize: number): void {
  if (itemSize === 1) return;
  // Node's native swaps run about ten times faster than the loop below (3 GB/s against 0.3 on a
  // FITS float32 cube); they need a whole number of elements, which the loop does not.
  if (bytes.length % itemSize === 0 && (itemSize === 2 || itemSize === 4 || itemSize === 8)) {
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (itemSize === 2) buffer.swap16();
    else if (itemSize === 4) buffer.swap32();
    else buffer.swap64();
    return;
  }
  for (let i = 0; i + itemSize <= bytes.length; i += itemSize) {
    for (let a = i, b = i + itemSize - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}

const HALF_EXP = new Float32Array(32);
for (let e = 0; e < 32; e++) HALF_EXP[e] = 2 ** (e - 15);

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * HALF_EXP[exp] * (1 + frac / 1024);
}

/** Float32 values of any decoded tensor; a float32 tensor is returned as is, without a copy. */
export function toFloat32(dtype: DType, data: TensorData): Float32Array {
  if (dtype === 'float32') return data as Float32Array;
  const out = new Float32Array(data.length);
  if (dtype === 'float16') {
    const half = data as Uint16Array;
    for (let i = 0; i < half.length; i++) out[i] = halfToFloat(half[i]);
  } else if (dtype === 'int64' || dtype === 'uint64') {
    const wide = data as BigInt64Array;
    for (let i = 0; i < wide.length; i++) out[i] = Number(wide[i]);
  } else {
    out.set(data as Float64Array);
  }
  return out;
}

/** Int64 values of an integer tensor. */
export function toInt64(dtype: DType, data: TensorData): BigInt64Array {
  if (dtype === 'int64') return data as BigInt64Array;
  if (dtype === 'uint64') return new BigInt64Array((data as BigUint64Array).buffer, data.byteOffset, data.length);
  return BigInt64Array.from(data as Int32Array, (v) => BigInt(v));
}

/** One element as a JS number, whatever the dtype (for statistics). */
export function elementAsNumber(dtype: DType, data: TensorData, i: number): number {
  if (dtype === 'float16') return halfToFloat((data as Uint16Array)[i]);
  if (dtype === 'int64' || dtype === 'uint64') return Number((data as BigInt64Array)[i]);
  return (data as Float32Array)[i];
}
