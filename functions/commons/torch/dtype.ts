import { UnsupportedTensorError } from '../errors';

/** The tensor element types CAI decodes, named as torch names them. */
export type DType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'uint8' | 'bool';

export type TensorData = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array;

interface DTypeInfo {
  itemSize: number;
  /** The legacy typed-storage class torch pickles for this dtype. */
  storage: string;
  view(buffer: ArrayBuffer, byteOffset: number, length: number): TensorData;
}

export const DTYPES: Record<DType, DTypeInfo> = {
  float32: { itemSize: 4, storage: 'FloatStorage', view: (b, o, n) => new Float32Array(b, o, n) },
  float64: { itemSize: 8, storage: 'DoubleStorage', view: (b, o, n) => new Float64Array(b, o, n) },
  // float16 stays as raw IEEE half bits; `toFloat32` widens it.
  float16: { itemSize: 2, storage: 'HalfStorage', view: (b, o, n) => new Uint16Array(b, o, n) },
  int64: { itemSize: 8, storage: 'LongStorage', view: (b, o, n) => new BigInt64Array(b, o, n) },
  int32: { itemSize: 4, storage: 'IntStorage', view: (b, o, n) => new Int32Array(b, o, n) },
  uint8: { itemSize: 1, storage: 'ByteStorage', view: (b, o, n) => new Uint8Array(b, o, n) },
  bool: { itemSize: 1, storage: 'BoolStorage', view: (b, o, n) => new Uint8Array(b, o, n) },
};

/** torch storage classes CAI knows of but does not decode, so the error can name the dtype. */
const UNSUPPORTED_STORAGES: Record<string, string> = {
  BFloat16Storage: 'bfloat16',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ComplexFloatStorage: 'complex64',
  ComplexDoubleStorage: 'complex128',
  QInt8Storage: 'qint8',
  QUInt8Storage: 'quint8',
  QInt32Storage: 'qint32',
  QUInt4x2Storage: 'quint4x2',
  QUInt2x4Storage: 'quint2x4',
};

const STORAGE_TO_DTYPE = new Map<string, DType>((Object.keys(DTYPES) as DType[]).map((dtype) => [DTYPES[dtype].storage, dtype]));

export const SUPPORTED_DTYPES = Object.keys(DTYPES).join(', ');

/** The dtype a storage class stands for: a DType, or the name of one CAI refuses. */
export function dtypeOfStorage(storageClass: string): DType | { unsupported: string } | undefined {
  const dtype = STORAGE_TO_DTYPE.get(storageClass);
  if (dtype) return dtype;
  const unsupported = UNSUPPORTED_STORAGES[storageClass];
  return unsupported ? { unsupported } : undefined;
}

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
  } else if (dtype === 'int64') {
    const wide = data as BigInt64Array;
    for (let i = 0; i < wide.length; i++) out[i] = Number(wide[i]);
  } else {
    out.set(data as Float64Array | Int32Array | Uint8Array);
  }
  return out;
}

/** One element as a JS number, whatever the dtype (for statistics). */
export function elementAsNumber(dtype: DType, data: TensorData, i: number): number {
  if (dtype === 'float16') return halfToFloat((data as Uint16Array)[i]);
  if (dtype === 'int64') return Number((data as BigInt64Array)[i]);
  return (data as Float32Array)[i];
}
