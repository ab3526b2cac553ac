import type { DType } from '../tensors/dtype';

/** The legacy typed-storage class torch pickles for each dtype it writes and CAI decodes. */
export const STORAGE_OF: Partial<Record<DType, string>> = {
  float32: 'FloatStorage',
  float64: 'DoubleStorage',
  float16: 'HalfStorage',
  int64: 'LongStorage',
  int32: 'IntStorage',
  int16: 'ShortStorage',
  int8: 'CharStorage',
  uint8: 'ByteStorage',
  bool: 'BoolStorage',
};

/** torch storage classes CAI knows of but does not decode, so the error can name the dtype. */
const UNSUPPORTED_STORAGES: Record<string, string> = {
  BFloat16Storage: 'bfloat16',
  ComplexFloatStorage: 'complex64',
  ComplexDoubleStorage: 'complex128',
  QInt8Storage: 'qint8',
  QUInt8Storage: 'quint8',
  QInt32Storage: 'qint32',
  QUInt4x2Storage: 'quint4x2',
  QUInt2x4Storage: 'quint2x4',
};

const STORAGE_TO_DTYPE = new Map<string, DType>(Object.entries(STORAGE_OF).map(([dtype, storage]) => [storage, dtype as DType]));

/** The dtype a storage class stands for: a DType, or the name of one CAI refuses. */
export function dtypeOfStorage(storageClass: string): DType | { unsupported: string } | undefined {
  const dtype = STORAGE_TO_DTYPE.get(storageClass);
  if (dtype) return dtype;
  const unsupported = UNSUPPORTED_STORAGES[storageClass];
  return unsupported ? { unsupported } : undefined;
}
