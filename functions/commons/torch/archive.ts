import { crc32 } from 'node:zlib';
import type { ByteSource } from '../tensors/byte-source';
import { DTYPES, allocateTensorData, typedView, unsupportedDtype, type DType, type TensorData } from '../tensors/dtype';
import { ArchiveError, UnsupportedTensorError } from '../errors';
import { dtypeOfStorage } from './storage';
import { numelOf } from '../tensors/tensor-file';
import { PyObject, unpickle, type PickleGlobal } from './pickle';
import { entryDataOffset, readStoredEntry, readZipDirectory, type ZipEntry } from '../tensors/zip-reader';

/** A storage record of the archive (`<prefix>/data/<key>`): one flat run of elements. */
export interface StorageRef {
  key: string;
  dtype: DType;
  numel: number;
  entry: ZipEntry;
}

/** A tensor as the pickle declares it; its bytes are read on demand. */
export interface TensorRef {
  dtype: DType;
  shape: number[];
  strides: number[];
  /** In elements, as torch counts it. */
  storageOffset: number;
  storage: StorageRef;
}

export interface Tensor {
  dtype: DType;
  shape: number[];
  /** Contiguous, row-major. */
  data: TensorData;
}

export interface TorchArchive {
  source: ByteSource;
  /** The decoded object, with TensorRef where the pickle had tensors. */
  root: unknown;
  /** Every distinct tensor, in the order the pickle declares them. */
  tensors: TensorRef[];
}

const MAX_PICKLE_BYTES = 64 * 1024 * 1024;
const MAX_DIMS = 16;
const LEGACY_MAGIC = Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function checkedDims(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || v.length > MAX_DIMS || !v.every(isCount)) {
    throw new ArchiveError(`tensor ${what} is not a list of at most ${MAX_DIMS} non-negative integers`);
  }
  return v as number[];
}

/**
 * Builds a TensorRef from `_rebuild_tensor_v2(storage, offset, size, stride, ...)`, refusing any
 * layout that would reach outside its storage: a hostile or corrupt archive cannot make a reader
 * allocate or index past what the file holds.
 */
function rebuildTensor(args: unknown[]): TensorRef {
  const [storage, storageOffset, size, stride] = args;
  if (!storage || typeof storage !== 'object' || !('entry' in storage)) {
    throw new ArchiveError('tensor without a storage record');
  }
  const ref = storage as StorageRef;
  const shape = checkedDims(size, 'shape');
  const strides = checkedDims(stride, 'strides');
  if (strides.length !== shape.length) throw new ArchiveError(`tensor shape [${shape}] and strides [${strides}] differ in rank`);
  if (!isCount(storageOffset)) throw new ArchiveError('tensor storage offset is not a non-negative integer');
  const numel = numelOf(shape);
  if (!Number.isSafeInteger(numel)) throw new ArchiveError(`tensor declares an absurd shape [${shape}]`);
  if (numel > 0) {
    let last = storageOffset;
    for (let i = 0; i < shape.length; i++) last += (shape[i] - 1) * strides[i];
    if (!Number.isSafeInteger(last) || last >= ref.numel) {
      throw new ArchiveError(
        `tensor declares shape [${shape}] (${numel} elements) with strides [${strides}] at offset ${storageOffset}, ` +
          `but its storage ${ref.key} holds only ${ref.numel} elements`,
      );
    }
  }
  const tensor: TensorRef = { dtype: ref.dtype, shape, strides, storageOffset, storage: ref };
  declaredTensors.add(tensor);
  return tensor;
}

function makeGlobal(qualifiedName: string, behaviour: Omit<PickleGlobal, 'qualifiedName'>): PickleGlobal {
  return { qualifiedName, ...behaviour };
}

/** A storage class named in a storage's persistent id; naming it is all a pickle may do with it. */
class StorageType implements PickleGlobal {
  readonly qualifiedName: string;
  constructor(readonly className: string) {
    this.qualifiedName = `torch.${className}`;
  }
}

/** Tensors made by `rebuildTensor`, told apart from other decoded objects by identity. */
const declaredTensors = new WeakSet<object>();

/**
 * Everything a tensor archive may name. Whole-model checkpoints are not partitions; their loading
 * belongs to the model exporter, so module and class paths of models are not here.
 */
function tensorArchiveGlobal(module: string, name: string): PickleGlobal | undefined {
  const qualifiedName = `${module}.${name}`;
  if (module === 'torch' && dtypeOfStorage(name)) {
    return new StorageType(name);
  }
  switch (qualifiedName) {
    case 'torch._utils._rebuild_tensor_v2':
    case 'torch._utils._rebuild_tensor':
      return makeGlobal(qualifiedName, { call: rebuildTensor });
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
      return makeGlobal(qualifiedName, { call: (args) => args[0] });
    case 'collections.OrderedDict':
      return makeGlobal(qualifiedName, {
        call: (args) => new Map(Array.isArray(args[0]) ? (args[0] as [unknown, unknown][]) : []),
      });
    case 'torch.utils.data.dataset.TensorDataset':
      return makeGlobal(qualifiedName, { instantiate: () => new PyObject('TensorDataset') });
    case 'torch.Size':
      return makeGlobal(qualifiedName, { call: (args) => (Array.isArray(args[0]) ? args[0] : []) });
    case '_codecs.encode':
      // How protocol 2 writes Python 3 bytes: encode(text, 'latin1').
      return makeGlobal(qualifiedName, {
        call: ([text, encoding]) => {
          if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
            throw new ArchiveError('unsupported _codecs.encode arguments');
          }
          return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
        },
      });
    default:
      return undefined;
  }
}

/** Depth-first, in declaration order; shared and cyclic references are visited once. */
function collectTensors(root: unknown): TensorRef[] {
  const found: TensorRef[] = [];
  const seen = new Set<unknown>();
  const visit = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if (declaredTensors.has(v)) found.push(v as TensorRef);
    else if (Array.isArray(v) || v instanceof Set) for (const item of v) visit(item);
    else if (v instanceof Map) for (const value of v.values()) visit(value);
    else if (v instanceof PyObject) visit(v.state);
  };
  visit(root);
  return found;
}

export async function openTorchArchive(source: ByteSource): Promise<TorchArchive> {
  const head = await source.read(0, Math.min(LEGACY_MAGIC.length, source.size));
  if (head.length === LEGACY_MAGIC.length && head.every((b, i) => b === LEGACY_MAGIC[i])) {
    throw new ArchiveError(
      `${source.name}: legacy (pre-1.6) torch serialization format is not supported; ` +
        're-save it with a current torch.save (the default zip format)',
    );
  }
  const entries = await readZipDirectory(source);
  const pickleEntry = entries.find((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (!pickleEntry) throw new ArchiveError(`${source.name}: a zip archive, but not a torch archive (no data.pkl)`);
  const prefix = pickleEntry.name.slice(0, -'data.pkl'.length);
  const byName = new Map(entries.map((e) => [e.name, e]));

  const byteorder = byName.get(`${prefix}byteorder`);
  if (byteorder) {
    const order = new TextDecoder().decode(await readStoredEntry(source, byteorder, await entryDataOffset(source, byteorder)));
    if (order.trim() !== 'little') throw new UnsupportedTensorError(`${source.name}: ${order.trim()}-endian tensors are not supported`);
  }
  if (pickleEntry.size > MAX_PICKLE_BYTES) throw new ArchiveError(`${source.name}: data.pkl is ${pickleEntry.size} bytes`);
  const pickleBytes = await readStoredEntry(source, pickleEntry, await entryDataOffset(source, pickleEntry));
  if (crc32(pickleBytes) !== pickleEntry.crc32) {
    throw new ArchiveError(`${source.name}: data.pkl fails its checksum; the archive is corrupt`);
  }

  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: unknown): StorageRef => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
      throw new ArchiveError(`${source.name}: unexpected persistent id in data.pkl`);
    }
    const [, type, key, , numel] = pid;
    if (!(type instanceof StorageType) || typeof key !== 'string' || !isCount(numel)) {
      throw new ArchiveError(`${source.name}: malformed storage record in data.pkl`);
    }
    const cached = storages.get(key);
    if (cached) return cached;
    const dtype = dtypeOfStorage(type.className);
    if (!dtype) throw new ArchiveError(`${source.name}: unknown storage type ${type.className}`);
    if (typeof dtype === 'object') throw unsupportedDtype(dtype.unsupported);
    const entry = byName.get(`${prefix}data/${key}`);
    if (!entry) throw new ArchiveError(`${source.name}: storage ${key} is declared but missing from the archive`);
    if (entry.size < numel * DTYPES[dtype].itemSize) {
      throw new ArchiveError(`${source.name}: storage ${key} declares ${numel} ${dtype} elements but holds ${entry.size} bytes`);
    }
    const ref: StorageRef = { key, dtype, numel, entry };
    storages.set(key, ref);
    return ref;
  };

  const root = unpickle(pickleBytes, {
    resolveGlobal: tensorArchiveGlobal,
    persistentLoad,
    context: 'tensor-archive (torch tensor, storage and container)',
  });
  return { source, root, tensors: collectTensors(root) };
}

const dataOffsets = new WeakMap<ZipEntry, Promise<number>>();
function storageDataOffset(source: ByteSource, entry: ZipEntry): Promise<number> {
  let offset = dataOffsets.get(entry);
  if (!offset) {
    offset = entryDataOffset(source, entry);
    dataOffsets.set(entry, offset);
  }
  return offset;
}

function isContiguous(shape: number[], strides: number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

/**
 * Rows [start, end) along the first dimension, as contiguous data. A contiguous tensor is read
 * as one range (into `into` when given) and viewed without a copy; a strided one reads the span
 * it touches and gathers.
 */
export async function readTensorRows(
  archive: TorchArchive,
  ref: TensorRef,
  start: number,
  end: number,
  into?: Uint8Array,
): Promise<Tensor> {
  const { source } = archive;
  const shape = ref.shape.length === 0 ? [1] : ref.shape;
  const strides = ref.shape.length === 0 ? [1] : ref.strides;
  if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end && end <= shape[0])) {
    throw new RangeError(`rows ${start}..${end} outside a tensor of ${shape[0]} rows`);
  }
  const rowShape = shape.slice(1);
  const rowElements = numelOf(rowShape);
  const outShape = ref.shape.length === 0 ? [] : [end - start, ...rowShape];
  const count = (end - start) * rowElements;
  const { itemSize } = DTYPES[ref.dtype];
  if (count === 0) return { dtype: ref.dtype, shape: outShape, data: allocateTensorData(ref.dtype, 0) };

  const entry = ref.storage.entry;
  const dataOffset = await storageDataOffset(source, entry);
  const first = ref.storageOffset + start * strides[0];
  let last = ref.storageOffset + (end - 1) * strides[0];
  for (let i = 1; i < shape.length; i++) last += (shape[i] - 1) * strides[i];

  if (isContiguous(shape, strides)) {
    const bytes = await readStoredEntry(source, entry, dataOffset, first * itemSize, count * itemSize, into);
    return { dtype: ref.dtype, shape: outShape, data: typedView(ref.dtype, bytes) };
  }
  const span = typedView(ref.dtype, await readStoredEntry(source, entry, dataOffset, first * itemSize, (last - first + 1) * itemSize));
  const out = allocateTensorData(ref.dtype, count);
  gather(span, out, [end - start, ...rowShape], strides);
  return { dtype: ref.dtype, shape: outShape, data: out };
}

/** out[i0, i1, ...] = span[Σ i_k * strides_k], row-major over `shape`. */
function gather(span: TensorData, out: TensorData, shape: number[], strides: number[]): void {
  const dims = shape.length;
  const index = new Array<number>(dims).fill(0);
  const innerSize = shape[dims - 1];
  const innerStride = strides[dims - 1];
  const src = span as Float32Array;
  const dst = out as Float32Array;
  let o = 0;
  for (;;) {
    let base = 0;
    for (let d = 0; d < dims - 1; d++) base += index[d] * strides[d];
    for (let j = 0; j < innerSize; j++) dst[o++] = src[base + j * innerStride];
    let d = dims - 2;
    while (d >= 0 && ++index[d] === shape[d]) index[d--] = 0;
    if (d < 0) return;
  }
}

export async function loadTensor(archive: TorchArchive, ref: TensorRef): Promise<Tensor> {
  return readTensorRows(archive, ref, 0, ref.shape.length === 0 ? 1 : ref.shape[0]);
}
