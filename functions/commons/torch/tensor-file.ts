import type { ByteSource } from '../tensors/byte-source';
import { DTYPES } from '../tensors/dtype';
import type { StoredTensor, TensorFile } from '../tensors/tensor-file';
import { numelOf } from '../tensors/tensor-file';
import { openTorchArchive, readTensorRows, type TensorRef, type TorchArchive } from './archive';
import { PyObject } from './pickle';

/** A torch archive as a TensorFile: its tensors by position, and by key when it is a dict. */
export interface TorchFile extends TensorFile {
  /** A dict of tensors (named by key); otherwise tensors are named by position only. */
  readonly keyed: boolean;
  readonly archive: TorchArchive;
}

/** The tensors of an archive by position, and by key when it is a dict. */
function layoutOf(archive: TorchArchive): { positions: TensorRef[]; keys?: Map<string, TensorRef>; kind: string } {
  const { root, tensors } = archive;
  const isTensor = (v: unknown): v is TensorRef => tensors.includes(v as TensorRef);
  if (isTensor(root)) return { positions: [root], kind: 'a single tensor' };
  if (root instanceof Map) {
    const keys = new Map([...root].filter(([key, value]) => typeof key === 'string' && isTensor(value)) as [string, TensorRef][]);
    return { positions: [...keys.values()], keys, kind: `a dict of ${[...keys.keys()].join(', ') || 'no tensors'}` };
  }
  const list = root instanceof PyObject && root.state instanceof Map ? root.state.get('tensors') : root;
  if (Array.isArray(list) && list.every(isTensor)) return { positions: list, kind: `${list.length} tensors by position` };
  return { positions: [], kind: 'no tensors CAI can name' };
}

export async function openTorchFile(source: ByteSource): Promise<TorchFile> {
  const archive = await openTorchArchive(source);
  const layout = layoutOf(archive);
  const keyOf = new Map([...(layout.keys ?? [])].map(([key, ref]) => [ref, key]));
  const refs = new Map<StoredTensor, TensorRef>();
  const stored = layout.positions.map((ref, position) => {
    const tensor: StoredTensor = {
      name: keyOf.get(ref) ?? String(position),
      dtype: ref.dtype,
      shape: ref.shape,
      rowsReadTogether: 1,
      storedBytesPerRow: numelOf(ref.shape.slice(1)) * DTYPES[ref.dtype].itemSize,
    };
    refs.set(tensor, ref);
    return tensor;
  });
  const byKey = new Map(stored.filter((t) => keyOf.has(refs.get(t)!)).map((t) => [t.name, t]));
  return {
    format: 'torch',
    name: source.name,
    size: source.size,
    tensors: stored,
    keyed: layout.keys !== undefined,
    archive,
    find(ref) {
      if (typeof ref === 'number') return stored[ref] ?? `no tensor at position ${ref}: it holds ${layout.kind}`;
      if (!layout.keys) return `tensor "${ref}" is named, but the partition holds ${layout.kind}: name it by position`;
      return byKey.get(ref) ?? `no tensor "${ref}": it holds ${layout.kind}`;
    },
    async readRows(tensor, start, end, into) {
      return (await readTensorRows(archive, refs.get(tensor)!, start, end, into)).data;
    },
    close: () => source.close(),
  };
}
