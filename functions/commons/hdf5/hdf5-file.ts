import { UnsupportedTensorError } from '../errors';
import type { ByteSource } from '../tensors/byte-source';
import { allocateAligned } from '../tensors/byte-source';
import { swapBytes, typedView, type DType, type TensorData } from '../tensors/dtype';
import { describeTensors, type StoredTensor, type TensorFile } from '../tensors/tensor-file';
import { ChunkReader, decodeChunk, placeChunk, refuseFilter, unsupportedFilter, type ChunkedDataset } from './chunks';
import { Fields, UNDEFINED_ADDRESS } from './fields';
import { type Filter, type Layout, parseDatatype, parseFilters, parseLayout, parseLink } from './messages';
import { MSG, MetadataReader, messageFields, parseDataspace, readObjectHeader, type Message } from './metadata';

/**
 * HDF5 files as h5py writes them, read by ranges: the group tree is walked once at open to list every
 * dataset by path; rows are read on demand, contiguous data by offset and chunked data through its
 * chunk index, decoding only the chunks that hold the rows asked for.
 */

const MAX_DEPTH = 32;
const MAX_OBJECTS = 100_000;
/** Deflate expands at most ~1032:1, so data claimed beyond this multiple of the file is absurd. */
const MAX_EXPANSION = 1100;
/** HDF5 itself caps a chunk at 4 GiB. */
const MAX_CHUNK_BYTES = 2 ** 32;

interface Dataset {
  path: string;
  shape: number[];
  dtype: DType;
  itemSize: number;
  bigEndian: boolean;
  layout: Layout;
  filters: Filter[];
  tensor: StoredTensor;
}

export async function openHdf5File(source: ByteSource): Promise<TensorFile> {
  const reader = new MetadataReader(source);
  const superblock = await reader.readSuperblock();
  const datasets: Dataset[] = [];
  /** Datasets CAI skips, by path: why, in a phrase ("a compound"). */
  const skipped = new Map<string, string>();
  const groups = new Set<string>();
  await walk(reader, superblock.rootHeader, datasets, skipped, groups);
  estimateStoredBytes(datasets, source.size);
  const chunks = new ChunkReader(reader);
  const byTensor = new Map(datasets.map((d) => [d.tensor, d]));
  const tensors = datasets.map((d) => d.tensor);

  const file: TensorFile = {
    format: 'hdf5',
    name: source.name,
    size: source.size,
    tensors,
    find(ref) {
      if (typeof ref === 'number')
        return `HDF5 datasets are named by path, not by position ${ref}: it holds ${describeTensors(file, 'datasets')}`;
      const path = ref.replace(/^\/+/, '');
      const found = tensors.find((t) => t.name === path);
      if (found) return found;
      const why = skipped.get(path);
      if (why) return `dataset ${path} is ${why}: CAI reads numeric datasets of one or more dimensions`;
      if (groups.has(path)) return `"${ref}" is a group, not a dataset: it holds ${describeTensors(file, 'datasets')}`;
      return `no dataset "${ref}": it holds ${describeTensors(file, 'datasets')}`;
    },
    async readRows(tensor, start, end, into) {
      const dataset = byTensor.get(tensor) ?? datasets.find((d) => d.path === tensor.name);
      if (!dataset) throw new RangeError(`${source.name}: no dataset ${tensor.name}`);
      const rows = dataset.shape[0];
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > rows) {
        throw new RangeError(`${source.name}: rows [${start}, ${end}) of dataset ${dataset.path}, which has ${rows}`);
      }
      const rowBytes = rowBytesOf(dataset);
      const length = (end - start) * rowBytes;
      const out = into && into.byteLength >= length ? into.subarray(0, length) : allocateAligned(length);
      const { layout } = dataset;
      if (layout.kind === 'contiguous') {
        if (length) await reader.raw(superblock.base + layout.address + start * rowBytes, length, out);
      } else if (layout.kind === 'compact') {
        out.set(layout.data.subarray(start * rowBytes, end * rowBytes));
      } else if (length) {
        const chunked = chunkedOf(dataset, layout);
        const refused = unsupportedFilter(chunked);
        if (refused) throw refuseFilter(source.name, chunked, refused);
        const refs = await chunks.chunksFor(chunked, start, end);
        const covered = refs.reduce((n, ref) => n + overlapElements(chunked, ref.offsets, start, end), 0);
        // Chunks never written read as zeros (HDF5's default fill value).
        if (covered < length / dataset.itemSize) out.fill(0);
        await chunks.fetch(refs, (ref, stored) =>
          placeChunk(chunked, ref, decodeChunk(chunked, source.name, ref, stored), start, end, out),
        );
      }
      if (dataset.bigEndian) swapBytes(out, dataset.itemSize);
      return typedView(dataset.dtype, out) as TensorData;
    },
    close: () => source.close(),
  };
  return file;
}

function rowBytesOf(d: Pick<Dataset, 'shape' | 'itemSize'>): number {
  return d.shape.slice(1).reduce((a, b) => a * b, d.itemSize);
}

function chunkedOf(d: Dataset, layout: Extract<Layout, { kind: 'chunked' }>): ChunkedDataset {
  return {
    path: d.path,
    shape: d.shape,
    chunk: layout.chunk,
    itemSize: d.itemSize,
    index: layout.index,
    filters: d.filters,
    filterEdgeChunks: layout.filterEdgeChunks,
  };
}

function overlapElements(d: ChunkedDataset, offsets: number[], start: number, end: number): number {
  let n = 1;
  offsets.forEach((o, axis) => {
    const lo = axis === 0 ? Math.max(o, start) : o;
    const hi = Math.min(o + d.chunk[axis], axis === 0 ? end : d.shape[axis]);
    n *= Math.max(0, hi - lo);
  });
  return n;
}

interface Walk {
  reader: MetadataReader;
  datasets: Dataset[];
  skipped: Map<string, string>;
  groups: Set<string>;
  walked: Set<number>;
  objects: number;
}

async function walk(reader: MetadataReader, root: number, datasets: Dataset[], skipped: Map<string, string>, groups: Set<string>) {
  const state: Walk = { reader, datasets, skipped, groups, walked: new Set(), objects: 0 };
  await visit(state, root, '', [], 0);
}

/** One object: a group is walked into, a dataset listed; `ancestors` are the groups above it. */
async function visit(state: Walk, address: number, path: string, ancestors: number[], depth: number): Promise<void> {
  const { reader } = state;
  if (ancestors.includes(address)) throw reader.fail(`group /${path} contains itself (a cycle of links)`);
  if (depth > MAX_DEPTH) throw reader.fail(`groups nest deeper than ${MAX_DEPTH} levels at /${path}`);
  if (++state.objects > MAX_OBJECTS) throw reader.fail(`more than ${MAX_OBJECTS} objects`);
  const messages = await readObjectHeader(reader, address);
  const of = (type: number) => messages.find((m) => m.type === type);
  if (of(MSG.layout) && of(MSG.dataspace) && of(MSG.datatype)) {
    await addDataset(state, messages, path);
    return;
  }
  const symbolTable = of(MSG.symbolTable);
  const links = messages.filter((m) => m.type === MSG.link);
  if (!symbolTable && !links.length && !of(MSG.linkInfo)) return; // a committed datatype, or nothing CAI reads
  if (path) state.groups.add(path);
  // A group reached by a second link was listed the first time.
  if (state.walked.has(address)) return;
  state.walked.add(address);
  const children: { name: string; address?: number }[] = [];
  if (symbolTable) {
    const f = messageFields(reader, symbolTable.data, `group /${path}: symbol table`);
    const btree = f.offset();
    const heap = f.offset();
    for (const entry of await symbolTableEntries(reader, btree, heap, path)) children.push(entry);
  } else {
    const info = of(MSG.linkInfo);
    if (info) {
      const f = messageFields(reader, info.data, `group /${path}: link info`);
      f.u8();
      const flags = f.u8();
      if (flags & 0x01) f.skip(8);
      if (f.offset() !== UNDEFINED_ADDRESS) {
        throw new UnsupportedTensorError(
          `${reader.name}: group /${path} keeps its links in a fractal heap (a libver='latest' group of many members), which CAI does not read`,
        );
      }
    }
    for (const link of links) children.push(parseLink(messageFields(reader, link.data, `group /${path}: link`)));
  }
  children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const child of children) {
    if (child.address === undefined || child.address === UNDEFINED_ADDRESS) continue; // soft and external links
    await visit(state, child.address, path ? `${path}/${child.name}` : child.name, [...ancestors, address], depth + 1);
  }
}

/** Names and object headers of an old-style group: a B-tree of symbol table nodes, names in a local heap. */
async function symbolTableEntries(reader: MetadataReader, btree: number, heapAddress: number, path: string) {
  const { offsetSize, lengthSize } = reader.superblock;
  const heap = await reader.fields(heapAddress, 8 + 2 * lengthSize + offsetSize, `group /${path}: local heap`);
  heap.signature('HEAP');
  heap.skip(4);
  const heapSize = heap.length();
  heap.length();
  const heapData = await reader.bytes(heap.offset(), heapSize, `group /${path}: local heap data`);
  const names = new Fields(heapData, `${reader.name}: group /${path}: local heap`, offsetSize, lengthSize);
  const entries: { name: string; address: number }[] = [];
  const nodes: number[] = [];
  const visited = new Set<number>();
  const descend = async (address: number, level: number): Promise<void> => {
    if (visited.has(address)) throw reader.fail(`group /${path}: its B-tree reaches node ${address} twice (a cycle)`);
    visited.add(address);
    const headerSize = 8 + 2 * offsetSize;
    const head = await reader.fields(address, headerSize, `group /${path}: B-tree node`);
    head.signature('TREE');
    if (head.u8() !== 0) throw reader.fail(`group /${path}: B-tree node at ${address} does not index a group`);
    const nodeLevel = head.u8();
    if (level >= 0 && nodeLevel !== level)
      throw reader.fail(`group /${path}: B-tree node at ${address} is at level ${nodeLevel}, not ${level}`);
    const count = head.u16();
    const f = await reader.fields(address + headerSize, count * (lengthSize + offsetSize) + lengthSize, `group /${path}: B-tree node`);
    for (let i = 0; i < count; i++) {
      f.length();
      const child = f.offset();
      if (nodeLevel === 0) nodes.push(child);
      else await descend(child, nodeLevel - 1);
    }
  };
  if (btree !== UNDEFINED_ADDRESS) await descend(btree, -1);
  for (const node of nodes) {
    const entrySize = 2 * offsetSize + 24;
    const head = await reader.fields(node, 8, `group /${path}: symbol table node`);
    head.signature('SNOD');
    head.skip(2);
    const count = head.u16();
    const f = await reader.fields(node + 8, count * entrySize, `group /${path}: symbol table node`);
    for (let i = 0; i < count; i++) {
      const nameAt = f.offset();
      const address = f.offset();
      f.skip(24);
      if (nameAt < 0 || nameAt >= heapData.length) throw reader.fail(`group /${path}: a name at ${nameAt} lies outside its local heap`);
      names.at = nameAt;
      entries.push({ name: names.cString(), address });
    }
  }
  return entries;
}

async function addDataset(state: Walk, messages: Message[], path: string): Promise<void> {
  const { reader } = state;
  const message = (type: number) => messages.find((m) => m.type === type)!;
  const shape = parseDataspace(messageFields(reader, message(MSG.dataspace).data, `dataset ${path}: dataspace`));
  const typeMessage = message(MSG.datatype);
  // A shared (committed) datatype: the message points at another object header holding it.
  const type =
    typeMessage.flags & 0x02
      ? await sharedDatatype(reader, typeMessage.data, path)
      : parseDatatype(messageFields(reader, typeMessage.data, `dataset ${path}: datatype`));
  if (!shape) return void state.skipped.set(path, 'empty (a null dataspace)');
  if (!shape.length) return void state.skipped.set(path, 'a scalar');
  if (!('dtype' in type)) return void state.skipped.set(path, type.unreadable);
  const layout = parseLayout(messageFields(reader, message(MSG.layout).data, `dataset ${path}: layout`), shape.length);
  const pipeline = messages.find((m) => m.type === MSG.filters);
  const filters = pipeline ? parseFilters(messageFields(reader, pipeline.data, `dataset ${path}: filter pipeline`)) : [];
  let elements = 1;
  for (const d of shape) elements *= d;
  const bytes = elements * type.size;
  const fileSize = reader.source.size;
  const what = `dataset ${path} [${shape.join(', ')}] of ${type.size}-byte elements`;
  if (!Number.isSafeInteger(bytes)) throw reader.fail(`${what} claims more elements than any file holds`);
  if (layout.kind === 'contiguous') {
    if (bytes && (layout.address === UNDEFINED_ADDRESS || layout.address + bytes > fileSize - reader.superblock.base)) {
      throw reader.fail(`${what} needs ${bytes} bytes at ${layout.address}, beyond the end of the file (${fileSize} bytes)`);
    }
  } else if (layout.kind === 'compact') {
    if (layout.data.length < bytes) throw reader.fail(`${what} needs ${bytes} bytes but holds ${layout.data.length}`);
  } else {
    if (bytes > MAX_EXPANSION * fileSize + (16 << 20))
      throw reader.fail(`${what} claims ${bytes} bytes, more than a file of ${fileSize} bytes can hold compressed`);
    if (layout.chunk.length === shape.length && layout.chunk.reduce((a, b) => a * b, type.size) > MAX_CHUNK_BYTES) {
      throw reader.fail(`dataset ${path}: chunks [${layout.chunk.join(', ')}] exceed HDF5's 4 GiB`);
    }
  }
  const tensor: StoredTensor = {
    name: path,
    dtype: type.dtype,
    shape,
    rowsReadTogether: layout.kind === 'chunked' && layout.chunk.length ? layout.chunk[0] : 1,
    storedBytesPerRow: rowBytesOf({ shape, itemSize: type.size }),
  };
  state.datasets.push({ path, shape, dtype: type.dtype, itemSize: type.size, bigEndian: type.bigEndian, layout, filters, tensor });
}

async function sharedDatatype(reader: MetadataReader, data: Uint8Array, path: string) {
  const f = messageFields(reader, data, `dataset ${path}: shared datatype`);
  const version = f.u8();
  const type = f.u8();
  if (version === 1) f.skip(6);
  if ((version !== 1 && version !== 2 && version !== 3) || (version === 3 && type !== 2)) {
    throw new UnsupportedTensorError(`${reader.name}: dataset ${path}: its datatype is shared through a heap CAI does not read`);
  }
  const header = await readObjectHeader(reader, f.offset());
  const typeMessage = header.find((m) => m.type === MSG.datatype);
  if (!typeMessage || typeMessage.flags & 0x02) throw reader.fail(`dataset ${path}: its shared datatype is not a datatype`);
  return parseDatatype(messageFields(reader, typeMessage.data, `dataset ${path}: shared datatype`));
}

/**
 * Stored bytes per row without walking every chunk index: uncompressed rows of data stored as is, and
 * for filtered datasets the rest of the file shared in proportion to their uncompressed sizes.
 */
function estimateStoredBytes(datasets: Dataset[], fileSize: number): void {
  const filtered = datasets.filter((d) => d.layout.kind === 'chunked' && d.filters.length);
  if (!filtered.length) return;
  const plainBytes = datasets.filter((d) => !filtered.includes(d)).reduce((n, d) => n + d.shape[0] * rowBytesOf(d), 0);
  const filteredBytes = filtered.reduce((n, d) => n + d.shape[0] * rowBytesOf(d), 0);
  if (!filteredBytes) return;
  const ratio = Math.min(1, Math.max(0, fileSize - plainBytes) / filteredBytes);
  for (const d of filtered) d.tensor.storedBytesPerRow = Math.max(1, Math.ceil(rowBytesOf(d) * ratio));
}
