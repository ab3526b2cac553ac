import { crc32 } from 'node:zlib';
import { DTYPES, type DType, type TensorData } from '../../functions/commons/tensors/dtype';
import { numelOf } from '../../functions/commons/tensors/tensor-file';
import { STORAGE_OF } from '../../functions/commons/torch/storage';
import { ArchiveError } from '../../functions/commons/errors';
import { MAX_ZIP32, writeStoredZipRecords, ZIP_CENTRAL_HEADER, ZIP_END_RECORD, ZIP_LOCAL_HEADER } from './zip-writer';

export interface TensorSpec {
  dtype: DType;
  shape: number[];
  /** The tensor's key when the archive holds a dict of tensors rather than a TensorDataset. */
  key?: string;
}

/** torch aligns every record to this many bytes, which also keeps typed-array views legal. */
const ALIGNMENT = 64;

/** Pickle protocol 2 writer for the handful of values a TensorDataset or dict archive needs. */
class PickleBytes {
  private readonly parts: number[] = [];
  op(...bytes: number[]): this {
    return this.raw(bytes);
  }
  raw(list: ArrayLike<number>): this {
    for (let i = 0; i < list.length; i++) this.parts.push(list[i]);
    return this;
  }
  int(n: number): this {
    if (n < 0x100) return this.op(0x4b, n); // BININT1
    if (n < 0x10000) return this.op(0x4d, n & 0xff, n >> 8); // BININT2
    if (n < 0x80000000) return this.op(0x4a, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24); // BININT
    const bytes: number[] = [];
    let v = BigInt(n);
    while (v > 0n) {
      bytes.push(Number(v & 0xffn));
      v >>= 8n;
    }
    if (bytes[bytes.length - 1] & 0x80) bytes.push(0);
    return this.op(0x8a, bytes.length).raw(bytes); // LONG1
  }
  text(s: string): this {
    const utf8 = Buffer.from(s, 'utf8');
    const n = utf8.length;
    return this.op(0x58, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24).raw(utf8); // BINUNICODE
  }
  global(module: string, name: string): this {
    return this.op(0x63).raw(Buffer.from(`${module}\n${name}\n`, 'latin1')); // GLOBAL
  }
  tuple(items: (() => void)[]): this {
    this.op(0x28); // MARK
    for (const write of items) write();
    return this.op(0x74); // TUPLE
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

const contiguousStrides = (shape: number[]): number[] => {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
};

/** `torch._utils._rebuild_tensor_v2(...)` for a contiguous tensor whose data is storage i. */
function pickleTensor(p: PickleBytes, spec: TensorSpec, i: number): void {
  p.global('torch._utils', '_rebuild_tensor_v2');
  p.tuple([
    () => {
      p.tuple([
        () => p.text('storage'),
        () => p.global('torch', STORAGE_OF[spec.dtype]!),
        () => p.text(String(i)),
        () => p.text('cpu'),
        () => p.int(numelOf(spec.shape)),
      ]);
      p.op(0x51); // BINPERSID
    },
    () => p.int(0),
    () => p.tuple(spec.shape.map((d) => () => p.int(d))),
    () => p.tuple(contiguousStrides(spec.shape).map((s) => () => p.int(s))),
    () => p.op(0x89), // requires_grad False
    () => p.global('collections', 'OrderedDict').op(0x29, 0x52), // OrderedDict()
  ]);
  p.op(0x52); // REDUCE
}

/** `TensorDataset(*tensors)` exactly as torch.save pickles it, storage i holding tensor i. */
export function tensorDatasetPickle(specs: TensorSpec[]): Uint8Array {
  const p = new PickleBytes();
  p.op(0x80, 2).global('torch.utils.data.dataset', 'TensorDataset').op(0x29, 0x81); // EMPTY_TUPLE NEWOBJ
  p.op(0x7d).text('tensors'); // EMPTY_DICT 'tensors'
  p.tuple(specs.map((spec, i) => () => pickleTensor(p, spec, i)));
  return p.op(0x73, 0x62, 0x2e).bytes(); // SETITEM BUILD STOP
}

/** `{key: tensor, ...}` as torch.save pickles a dict of tensors, in spec order, storage i holding tensor i. */
export function tensorDictPickle(specs: TensorSpec[]): Uint8Array {
  const p = new PickleBytes();
  p.op(0x80, 2, 0x7d, 0x28); // PROTO 2, EMPTY_DICT, MARK
  specs.forEach((spec, i) => {
    p.text(spec.key!);
    pickleTensor(p, spec, i);
  });
  return p.op(0x75, 0x2e).bytes(); // SETITEMS STOP
}

/** A dict when every tensor has a key, a TensorDataset when none has; a mix has no torch.save form. */
function pickleOf(specs: TensorSpec[]): Uint8Array {
  const keyed = specs.filter((s) => s.key !== undefined).length;
  if (keyed === 0) return tensorDatasetPickle(specs);
  const keys = new Set(specs.map((s) => s.key));
  if (keyed !== specs.length || keys.size !== specs.length) {
    throw new ArchiveError('a dict archive needs one distinct key per tensor, a TensorDataset none');
  }
  return tensorDictPickle(specs);
}

interface Record {
  name: Uint8Array;
  headerOffset: number;
  dataOffset: number;
  size: number;
}

interface Layout {
  placed: { record: Record; content: Uint8Array | number }[];
  total: number;
}

/** Where every record of the archive goes; nothing is allocated. */
function layoutTorchDataset(specs: TensorSpec[], archiveName: string): Layout {
  const encoder = new TextEncoder();
  const small = (text: string) => encoder.encode(text);
  const contents: [string, Uint8Array | number][] = [
    ['data.pkl', pickleOf(specs)],
    ['.format_version', small('1')],
    ['.storage_alignment', small(String(ALIGNMENT))],
    ['byteorder', small('little')],
    ...specs.map((spec, i): [string, number] => [`data/${i}`, numelOf(spec.shape) * DTYPES[spec.dtype].itemSize]),
    ['version', small('3\n')],
  ];
  let offset = 0;
  let directorySize = 0;
  const placed = contents.map(([name, content]) => {
    const nameBytes = encoder.encode(`${archiveName}/${name}`);
    const headerOffset = offset;
    const unpadded = headerOffset + ZIP_LOCAL_HEADER + nameBytes.length + 4;
    const dataOffset = unpadded + ((ALIGNMENT - (unpadded % ALIGNMENT)) % ALIGNMENT);
    const size = typeof content === 'number' ? content : content.length;
    offset = dataOffset + size;
    directorySize += ZIP_CENTRAL_HEADER + nameBytes.length;
    return { record: { name: nameBytes, headerOffset, dataOffset, size }, content };
  });
  return { placed, total: offset + directorySize + ZIP_END_RECORD };
}

/** The exact file size of a TensorDataset (or dict) archive of these tensors. */
export function torchDatasetSize(specs: TensorSpec[], archiveName = 'archive'): number {
  return layoutTorchDataset(specs, archiveName).total;
}

/**
 * A torch archive of one TensorDataset (or, when the specs have keys, one dict of tensors), laid
 * out up front in a single buffer. Callers fill each tensor in place through `tensor(i)` (no
 * staging copies), then `finish()` writes checksums and the zip directory. The result loads with
 * `torch.load(f, weights_only=True)`.
 */
export class TorchDatasetArchive {
  readonly bytes: Uint8Array;
  private readonly records: Record[] = [];
  private readonly tensorRecords: Record[] = [];

  constructor(
    readonly specs: TensorSpec[],
    archiveName = 'archive',
  ) {
    const { placed, total } = layoutTorchDataset(specs, archiveName);
    if (total > MAX_ZIP32) throw new ArchiveError(`a partition of ${total} bytes exceeds the 4 GiB a partition may hold`);
    this.bytes = new Uint8Array(new ArrayBuffer(total));
    for (const { record, content } of placed) {
      this.records.push(record);
      if (typeof content === 'number') this.tensorRecords.push(record);
      else this.bytes.set(content, record.dataOffset);
    }
  }

  /** A writable view of tensor i's data inside the archive buffer. */
  tensor(i: number): TensorData {
    const spec = this.specs[i];
    const record = this.tensorRecords[i];
    return DTYPES[spec.dtype].view(this.bytes.buffer as ArrayBuffer, record.dataOffset, numelOf(spec.shape));
  }

  /** Writes checksums and headers over the current contents; again after a refill. */
  finish(): Uint8Array {
    const last = this.records[this.records.length - 1];
    const entries = this.records.map((r) => ({ ...r, crc: crc32(this.bytes.subarray(r.dataOffset, r.dataOffset + r.size)) }));
    // torch's own: its alignment padding in an extra field 'FB', every date 1980-01-01.
    writeStoredZipRecords(this.bytes, entries, last.dataOffset + last.size, { paddingFieldId: 0x4246, flags: 0, dosDate: 0x21 });
    return this.bytes;
  }
}
