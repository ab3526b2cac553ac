import { inflateSync } from 'node:zlib';
import { ArchiveError, UnsupportedTensorError } from '../errors';
import { UNDEFINED_ADDRESS } from './fields';
import type { ChunkIndex, Filter } from './messages';
import { FILTER_NAMES } from './messages';
import type { MetadataReader } from './metadata';

/**
 * Chunked datasets: finding the chunks that overlap a range of rows through the dataset's chunk index
 * (a version 1 B-tree, a fixed array, one chunk, or chunks laid out in order), decoding them through
 * the filter pipeline, and placing each chunk's part into the rows asked for.
 */

export interface ChunkedDataset {
  path: string;
  shape: number[];
  chunk: number[];
  itemSize: number;
  index: ChunkIndex;
  filters: Filter[];
  /** False when the file says partial edge chunks are stored unfiltered. */
  filterEdgeChunks: boolean;
}

export interface ChunkRef {
  /** Element offsets of the chunk's first element, one per axis. */
  offsets: number[];
  address: number;
  size: number;
  filterMask: number;
}

interface BTreeNode {
  level: number;
  /** Each child's first chunk offsets (entries + 1 keys) and, at level 0, its stored size and mask. */
  keys: { offsets: number[]; size: number; mask: number }[];
  children: number[];
}

interface FixedArray {
  entrySize: number;
  pageBits: number;
  count: number;
  dataBlock: number;
  filtered: boolean;
}

const MAX_CACHED_NODES = 16384;
/** Chunks whose stored bytes lie this close are fetched in one read. */
const READ_GAP = 1 << 20;
const MAX_READ = 64 << 20;
/** Largest piece inflate writes its output in. */
const INFLATE_PIECE_BYTES = 4 << 20;

/** Filter ids this reader decodes. */
const DECODED_FILTERS = new Set([1, 2, 3]);

export function unsupportedFilter(dataset: ChunkedDataset): Filter | undefined {
  return dataset.filters.find((f) => !DECODED_FILTERS.has(f.id));
}

export class ChunkReader {
  private nodes = new Map<number, BTreeNode>();
  private fixedArrays = new Map<number, FixedArray>();

  constructor(private readonly reader: MetadataReader) {}

  private fail(dataset: ChunkedDataset, message: string): ArchiveError {
    return this.reader.fail(`dataset ${dataset.path}: ${message}`);
  }

  /** The chunks holding any of rows [start, end), each checked to lie in the dataset and in the file. */
  async chunksFor(dataset: ChunkedDataset, start: number, end: number): Promise<ChunkRef[]> {
    const lo = Math.floor(start / dataset.chunk[0]) * dataset.chunk[0];
    const { index } = dataset;
    let refs: ChunkRef[];
    if (index.kind === 'btree1') {
      refs = [];
      if (index.address !== UNDEFINED_ADDRESS) await this.collect(dataset, index.address, -1, lo, end, refs, new Set());
    } else if (index.kind === 'single') {
      refs = [
        {
          offsets: dataset.shape.map(() => 0),
          address: index.address,
          size: index.filteredSize ?? chunkBytes(dataset),
          filterMask: index.filterMask,
        },
      ];
      if (index.address === UNDEFINED_ADDRESS) refs = [];
    } else if (index.kind === 'implicit' || index.kind === 'fixedArray') {
      refs = await this.byGridIndex(dataset, lo, end);
    } else {
      throw new UnsupportedTensorError(
        `${this.reader.name}: dataset ${dataset.path} indexes its chunks by ${index.name}, which CAI does not read`,
      );
    }
    const bytes = chunkBytes(dataset);
    for (const ref of refs) {
      ref.offsets.forEach((o, axis) => {
        if (o % dataset.chunk[axis] !== 0 || (o >= dataset.shape[axis] && dataset.shape[axis] > 0)) {
          throw this.fail(dataset, `a chunk at [${ref.offsets.join(', ')}] lies outside its shape [${dataset.shape.join(', ')}]`);
        }
      });
      const fileEnd = this.reader.source.size - this.reader.superblock.base;
      if (ref.address < 0 || ref.address + ref.size > fileEnd) {
        throw this.fail(
          dataset,
          `a chunk of ${ref.size} bytes at ${ref.address} lies beyond the end of the file (${this.reader.source.size} bytes)`,
        );
      }
      if (!dataset.filters.length && ref.size !== bytes) {
        throw this.fail(dataset, `an unfiltered chunk of ${ref.size} bytes where its shape takes ${bytes}`);
      }
    }
    return refs;
  }

  private async node(dataset: ChunkedDataset, address: number): Promise<BTreeNode> {
    const cached = this.nodes.get(address);
    if (cached) return cached;
    const { offsetSize } = this.reader.superblock;
    const rank = dataset.shape.length;
    const keySize = 8 + 8 * (rank + 1);
    const headerSize = 8 + 2 * offsetSize;
    const head = await this.reader.fields(address, headerSize, 'chunk B-tree node');
    head.signature('TREE');
    if (head.u8() !== 1) throw this.fail(dataset, `B-tree node at ${address} does not index chunks`);
    const level = head.u8();
    const entries = head.u16();
    const f = await this.reader.fields(address + headerSize, entries * (keySize + offsetSize) + keySize, 'chunk B-tree node');
    const keys: BTreeNode['keys'] = [];
    const children: number[] = [];
    for (let i = 0; i <= entries; i++) {
      const size = f.u32();
      const mask = f.u32();
      const offsets = Array.from({ length: rank + 1 }, () => f.uint(8)).slice(0, rank);
      keys.push({ offsets, size, mask });
      if (i < entries) children.push(f.offset());
    }
    const node = { level, keys, children };
    if (this.nodes.size >= MAX_CACHED_NODES) this.nodes.delete(this.nodes.keys().next().value!);
    this.nodes.set(address, node);
    return node;
  }

  /** Leaf entries whose first-axis offset is in [lo, hi), descending only into children that may hold one. */
  private async collect(
    dataset: ChunkedDataset,
    address: number,
    level: number,
    lo: number,
    hi: number,
    out: ChunkRef[],
    visited: Set<number>,
  ): Promise<void> {
    if (visited.has(address)) throw this.fail(dataset, `its chunk B-tree reaches node ${address} twice (a cycle)`);
    visited.add(address);
    const node = await this.node(dataset, address);
    if (level >= 0 && node.level !== level)
      throw this.fail(dataset, `chunk B-tree node ${address} is at level ${node.level}, not ${level}`);
    for (let i = 0; i < node.children.length; i++) {
      const first = node.keys[i].offsets[0];
      if (node.level === 0) {
        if (first >= lo && first < hi) {
          out.push({ offsets: node.keys[i].offsets, address: node.children[i], size: node.keys[i].size, filterMask: node.keys[i].mask });
        }
      } else {
        const last = i + 1 < node.children.length ? node.keys[i + 1].offsets[0] : Infinity;
        if (first < hi && last >= lo) await this.collect(dataset, node.children[i], node.level - 1, lo, hi, out, visited);
      }
    }
  }

  /** Indexes that list chunks in row-major order of the chunk grid. */
  private async byGridIndex(dataset: ChunkedDataset, lo: number, hi: number): Promise<ChunkRef[]> {
    const { shape, chunk, index } = dataset;
    const grid = shape.map((d, i) => Math.ceil(d / chunk[i]));
    const total = grid.reduce((a, b) => a * b, 1);
    const refs: ChunkRef[] = [];
    const firstRow = lo / chunk[0];
    const lastRow = Math.min(grid[0], Math.ceil(hi / chunk[0]));
    const perRow = total / Math.max(1, grid[0]);
    const fixed = index.kind === 'fixedArray' ? await this.fixedArray(dataset, index.address) : undefined;
    if (fixed && fixed.count < total) throw this.fail(dataset, `its chunk array holds ${fixed.count} chunks of ${total}`);
    for (let linear = firstRow * perRow; linear < lastRow * perRow; linear++) {
      const offsets: number[] = [];
      let rest = linear;
      for (let axis = grid.length - 1; axis >= 0; axis--) {
        offsets[axis] = (rest % grid[axis]) * chunk[axis];
        rest = Math.floor(rest / grid[axis]);
      }
      if (index.kind === 'implicit') {
        if (index.address === UNDEFINED_ADDRESS) continue;
        const size = chunkBytes(dataset);
        refs.push({ offsets, address: index.address + linear * size, size, filterMask: 0 });
      } else {
        const ref = await this.fixedArrayEntry(dataset, fixed!, linear);
        if (ref.address !== UNDEFINED_ADDRESS) refs.push({ offsets, ...ref });
      }
    }
    return refs;
  }

  private async fixedArray(dataset: ChunkedDataset, address: number): Promise<FixedArray> {
    const cached = this.fixedArrays.get(address);
    if (cached) return cached;
    const { offsetSize, lengthSize } = this.reader.superblock;
    const f = await this.reader.fields(address, 8 + lengthSize + offsetSize, 'fixed array header');
    f.signature('FAHD');
    f.u8();
    const client = f.u8();
    const entrySize = f.u8();
    const pageBits = f.u8();
    const count = f.length();
    const dataBlock = f.offset();
    const filtered = client === 1;
    if (
      client > 1 ||
      entrySize < offsetSize + (filtered ? 5 : 0) ||
      entrySize - offsetSize - 4 > 8 ||
      pageBits > 32 ||
      dataBlock === UNDEFINED_ADDRESS
    ) {
      throw this.fail(dataset, `fixed array header at ${address} is inconsistent`);
    }
    const array = { entrySize, pageBits, count, dataBlock, filtered };
    this.fixedArrays.set(address, array);
    return array;
  }

  private async fixedArrayEntry(dataset: ChunkedDataset, array: FixedArray, i: number): Promise<Omit<ChunkRef, 'offsets'>> {
    const { offsetSize } = this.reader.superblock;
    const prefix = 6 + offsetSize;
    const perPage = 2 ** array.pageBits;
    let at: number;
    if (array.count > perPage) {
      const pages = Math.ceil(array.count / perPage);
      // Paged: a bitmap of initialised pages and a checksum, then pages each ending in a checksum.
      const page = Math.floor(i / perPage);
      at = array.dataBlock + prefix + Math.ceil(pages / 8) + 4 + page * (perPage * array.entrySize + 4) + (i % perPage) * array.entrySize;
    } else {
      at = array.dataBlock + prefix + i * array.entrySize;
    }
    const f = await this.reader.fields(at, array.entrySize, 'fixed array element');
    const address = f.offset();
    if (!array.filtered) return { address, size: chunkBytes(dataset), filterMask: 0 };
    const sizeBytes = array.entrySize - offsetSize - 4;
    let size = 0;
    for (let b = sizeBytes - 1; b >= 0; b--) size = size * 256 + f.bytes[f.at + b];
    f.skip(sizeBytes);
    return { address, size, filterMask: f.u32() };
  }

  /** Stored bytes of chunks, fetched in few reads: neighbours in the file are read together. */
  async fetch(chunks: ChunkRef[], each: (ref: ChunkRef, stored: Uint8Array) => void): Promise<void> {
    const base = this.reader.superblock.base;
    const sorted = [...chunks].sort((a, b) => a.address - b.address);
    for (let i = 0; i < sorted.length;) {
      const first = sorted[i].address;
      let end = first + sorted[i].size;
      let j = i + 1;
      while (j < sorted.length && sorted[j].address - end <= READ_GAP && sorted[j].address + sorted[j].size - first <= MAX_READ) {
        end = Math.max(end, sorted[j].address + sorted[j].size);
        j++;
      }
      const span = await this.reader.raw(base + first, end - first);
      for (let k = i; k < j; k++) each(sorted[k], span.subarray(sorted[k].address - first, sorted[k].address - first + sorted[k].size));
      i = j;
    }
  }
}

export function chunkBytes(dataset: ChunkedDataset): number {
  return dataset.chunk.reduce((a, b) => a * b, dataset.itemSize);
}

/** A chunk's elements, row-major, through the filter pipeline in reverse; exactly its declared size or an ArchiveError. */
export function decodeChunk(dataset: ChunkedDataset, name: string, ref: ChunkRef, stored: Uint8Array): Uint8Array {
  const expected = chunkBytes(dataset);
  const partial = ref.offsets.some((o, axis) => o + dataset.chunk[axis] > dataset.shape[axis]);
  let data = stored;
  if (dataset.filterEdgeChunks || !partial) {
    for (let i = dataset.filters.length - 1; i >= 0; i--) {
      if (ref.filterMask & (1 << i)) continue;
      const filter = dataset.filters[i];
      if (filter.id === 1) {
        try {
          // Output in one piece when the chunk is of usual size (no concatenation of 16 KiB pieces), in
          // bounded pieces otherwise, whatever the header claims.
          data = inflateSync(data, {
            maxOutputLength: Math.max(expected + 64, 1),
            chunkSize: Math.min(expected + 64, INFLATE_PIECE_BYTES),
          });
        } catch (error) {
          throw new ArchiveError(
            `${name}: dataset ${dataset.path}: a chunk at [${ref.offsets.join(', ')}] does not inflate: ${(error as Error).message}`,
            {
              cause: error,
            },
          );
        }
      } else if (filter.id === 2) {
        data = unshuffle(data, filter.values[0] || dataset.itemSize);
      } else if (filter.id === 3) {
        // Fletcher-32 appends a checksum; it is dropped unchecked.
        if (data.length < 4) throw new ArchiveError(`${name}: dataset ${dataset.path}: a chunk shorter than its checksum`);
        data = data.subarray(0, data.length - 4);
      } else {
        throw refuseFilter(name, dataset, filter);
      }
    }
  }
  if (data.length !== expected) {
    throw new ArchiveError(
      `${name}: dataset ${dataset.path}: a chunk at [${ref.offsets.join(', ')}] decodes to ${data.length} bytes, not ${expected}`,
    );
  }
  return data;
}

export function refuseFilter(name: string, dataset: ChunkedDataset, filter: Filter): UnsupportedTensorError {
  const known = FILTER_NAMES[filter.id] ?? filter.name;
  return new UnsupportedTensorError(
    `${name}: dataset ${dataset.path} is compressed with filter ${filter.id}${known ? ` (${known})` : ''}, which CAI does not decode (it reads deflate/gzip, shuffle and fletcher32)`,
  );
}

/** Whether this machine stores a word's low byte first (every platform Lambda and Node run on does). */
const LITTLE_ENDIAN_HOST = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Undoes the shuffle filter: byte k of every element was stored together, for each k. */
export function unshuffle(data: Uint8Array, size: number): Uint8Array {
  if (size <= 1 || data.length < size) return data;
  const n = Math.floor(data.length / size);
  const out = new Uint8Array(data.length);
  if (LITTLE_ENDIAN_HOST && size % 4 === 0) {
    // Four byte planes make one 32-bit word per store: twice the byte-by-byte loop's speed on float32 images.
    const words = new Uint32Array(out.buffer, 0, (n * size) / 4);
    const perElement = size / 4;
    for (let w = 0; w < perElement; w++) {
      const p0 = 4 * w * n;
      const [p1, p2, p3] = [p0 + n, p0 + 2 * n, p0 + 3 * n];
      for (let i = 0, to = w; i < n; i++, to += perElement) {
        words[to] = data[p0 + i] | (data[p1 + i] << 8) | (data[p2 + i] << 16) | (data[p3 + i] << 24);
      }
    }
  } else {
    for (let b = 0; b < size; b++) {
      const from = b * n;
      for (let i = 0, to = b; i < n; i++, to += size) out[to] = data[from + i];
    }
  }
  out.set(data.subarray(n * size), n * size);
  return out;
}

/**
 * Copies the part of a decoded chunk inside rows [start, end) into `out`, which holds those rows
 * row-major. Trailing axes the chunk spans whole are copied as one run.
 */
export function placeChunk(dataset: ChunkedDataset, ref: ChunkRef, data: Uint8Array, start: number, end: number, out: Uint8Array): void {
  const { shape, chunk, itemSize } = dataset;
  const rank = shape.length;
  const lo = ref.offsets.map((o, axis) => (axis === 0 ? Math.max(o, start) : o));
  const hi = ref.offsets.map((o, axis) => Math.min(o + chunk[axis], axis === 0 ? end : shape[axis]));
  if (lo.some((l, axis) => l >= hi[axis])) return;
  const outDims = [end - start, ...shape.slice(1)];
  const outStride = new Array<number>(rank);
  const chunkStride = new Array<number>(rank);
  outStride[rank - 1] = itemSize;
  chunkStride[rank - 1] = itemSize;
  for (let axis = rank - 2; axis >= 0; axis--) {
    outStride[axis] = outStride[axis + 1] * outDims[axis + 1];
    chunkStride[axis] = chunkStride[axis + 1] * chunk[axis + 1];
  }
  // The run: the innermost axes along which the chunk and the output have the same layout.
  let runAxis = rank - 1;
  while (runAxis > 0 && chunk[runAxis] === shape[runAxis]) runAxis--;
  const runBytes = (hi[runAxis] - lo[runAxis]) * chunkStride[runAxis];
  const index = lo.slice(0, runAxis);
  for (;;) {
    let src = (lo[runAxis] - ref.offsets[runAxis]) * chunkStride[runAxis];
    let dst = (runAxis === 0 ? lo[0] - start : lo[runAxis]) * outStride[runAxis];
    for (let axis = 0; axis < runAxis; axis++) {
      src += (index[axis] - ref.offsets[axis]) * chunkStride[axis];
      dst += (axis === 0 ? index[0] - start : index[axis]) * outStride[axis];
    }
    out.set(data.subarray(src, src + runBytes), dst);
    let axis = runAxis - 1;
    while (axis >= 0 && ++index[axis] >= hi[axis]) {
      index[axis] = lo[axis];
      axis--;
    }
    if (axis < 0) return;
  }
}
