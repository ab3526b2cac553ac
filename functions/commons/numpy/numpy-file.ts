import type { ByteSource } from '../tensors/byte-source';
import { allocateAligned } from '../tensors/byte-source';
import { allocateTensorData, swapBytes, typedView, DTYPES, type TensorData } from '../tensors/dtype';
import { describeTensors, type StoredTensor, type TensorFile } from '../tensors/tensor-file';
import { entryDataOffset, readZipDirectory, type ZipEntry } from '../tensors/zip-reader';
import { ArchiveError, UnsupportedTensorError } from '../errors';
import { NPY_PREAMBLE_BYTES, npyHeaderEnd, parseNpyHeader, startsWithNpyMagic, type NpyLayout } from './header';
import { DeflatedEntryReader, ZIP_DEFLATED, ZIP_STORED, checkDeflateRatio } from './inflate';

/**
 * NumPy's files: a `.npy` holds one array, an `.npz` (np.savez, np.savez_compressed) a zip of them.
 * Rows of a `.npy` or of a stored `.npz` entry are one ranged read each. A deflated entry cannot be
 * read by range: its rows are inflated from the entry's start, front to back (see `rowsReadTogether`).
 */

/** Bytes read first from an array's start: numpy pads its headers to 64 bytes, usually 128 in all. */
const HEADER_PROBE_BYTES = 1024;
/** An .npz of more entries than this is not a partition of a few arrays with a row per object. */
export const MAX_NPZ_ENTRIES = 4096;
const PARALLEL_HEADER_READS = 8;
const ZIP_MAGIC = [0x50, 0x4b];

/** Where one array's data lives: in the file itself, or in a stored or deflated zip entry. */
interface ArrayLocation {
  layout: NpyLayout;
  /** File offset of the .npy's first byte (a stored entry's data offset). */
  base: number;
  /** Set for a deflated entry, whose bytes come through a cursor. */
  deflated?: { entry: ZipEntry; dataOffset: number };
}

/** An array of the file, or why CAI does not read it (kept so that `find` can say). */
type NamedArray = { name: string; tensor: StoredTensor } | { name: string; refused: string };

/** Reads a .npy's header through `next` (sequential reads from its first byte). */
async function readLayout(next: (length: number) => Promise<Uint8Array>, available: number, label: string): Promise<NpyLayout> {
  const probe = await next(Math.min(available, HEADER_PROBE_BYTES));
  const headerEnd = npyHeaderEnd(probe, available, label);
  let header = probe;
  if (headerEnd > probe.length) {
    header = new Uint8Array(headerEnd);
    header.set(probe);
    header.set(await next(headerEnd - probe.length), probe.length);
  }
  return parseNpyHeader(header, headerEnd, available, label);
}

function rangedReader(source: ByteSource, base: number): (length: number) => Promise<Uint8Array> {
  let at = base;
  return async (length) => {
    const bytes = await source.read(at, length);
    at += length;
    return bytes;
  };
}

function toTensor(name: string, layout: NpyLayout, storedBytesPerRow: number, rowsReadTogether: number): StoredTensor {
  return { name, dtype: layout.dtype, shape: layout.shape, rowsReadTogether, storedBytesPerRow };
}

const baseName = (name: string) => name.slice(name.lastIndexOf('/') + 1).replace(/\.npy$/i, '');

export async function openNumpyFile(source: ByteSource): Promise<TensorFile> {
  const head = await source.read(0, Math.min(source.size, NPY_PREAMBLE_BYTES));
  if (startsWithNpyMagic(head)) return openNpy(source);
  if (head.length >= 2 && head[0] === ZIP_MAGIC[0] && head[1] === ZIP_MAGIC[1]) return openNpz(source);
  throw new ArchiveError(`${source.name}: not a NumPy file (neither .npy magic \\x93NUMPY nor an .npz zip)`);
}

async function openNpy(source: ByteSource): Promise<TensorFile> {
  const layout = await readLayout(rangedReader(source, 0), source.size, source.name);
  const tensor = toTensor(baseName(source.name), layout, layout.rowBytes, 1);
  return numpyFile(source, [{ name: tensor.name, tensor }], new Map([[tensor, { layout, base: 0 }]]));
}

async function openNpz(source: ByteSource): Promise<TensorFile> {
  const entries = (await readZipDirectory(source, MAX_NPZ_ENTRIES)).filter((e) => !e.name.endsWith('/'));
  const names = new Set<string>();
  for (const entry of entries) {
    if (names.has(entry.name)) throw new ArchiveError(`${source.name}: zip holds two entries named ${entry.name}`);
    names.add(entry.name);
  }
  // np.load gives entries that are not .npy as raw bytes; they hold no array.
  const arrayEntries = entries.filter((e) => e.name.endsWith('.npy'));
  const arrays: NamedArray[] = new Array(arrayEntries.length);
  const locations = new Map<StoredTensor, ArrayLocation>();

  const openEntry = async (entry: ZipEntry, i: number): Promise<void> => {
    const name = entry.name.slice(0, -'.npy'.length);
    const label = `${source.name}: ${entry.name}`;
    let location: ArrayLocation;
    let tensor: StoredTensor;
    try {
      const dataOffset = await entryDataOffset(source, entry);
      if (entry.method === ZIP_STORED) {
        if (entry.size !== entry.compressedSize) throw new ArchiveError(`${label}: stored entry sizes differ in the zip directory`);
        const layout = await readLayout(rangedReader(source, dataOffset), entry.size, label);
        location = { layout, base: dataOffset };
        tensor = toTensor(name, layout, layout.rowBytes, 1);
      } else if (entry.method === ZIP_DEFLATED) {
        checkDeflateRatio(entry, label);
        const reader = new DeflatedEntryReader(source, entry, dataOffset, label);
        let layout: NpyLayout;
        try {
          layout = await readLayout(
            async (length) => {
              const out = new Uint8Array(length);
              await reader.read(out);
              return out;
            },
            entry.size,
            label,
          );
        } finally {
          reader.close();
        }
        location = { layout, base: 0, deflated: { entry, dataOffset } };
        const rows = layout.shape[0];
        // Any row of a deflated entry is reached by inflating every row before it: the whole array is
        // what must be decoded together, though the reader holds only the rows asked for.
        tensor = toTensor(name, layout, rows ? Math.ceil(entry.compressedSize / rows) : layout.rowBytes, Math.max(1, rows));
      } else {
        throw new UnsupportedTensorError(
          `${label}: zip method ${entry.method} is not supported (np.savez stores, np.savez_compressed deflates)`,
        );
      }
    } catch (error) {
      // A dtype CAI does not read leaves the other arrays readable; a corrupt entry makes the file so.
      if (error instanceof UnsupportedTensorError) {
        arrays[i] = { name, refused: error.message.slice(label.length + 2) };
        return;
      }
      throw error;
    }
    arrays[i] = { name, tensor };
    locations.set(tensor, location);
  };

  for (let i = 0; i < arrayEntries.length; i += PARALLEL_HEADER_READS) {
    await Promise.all(arrayEntries.slice(i, i + PARALLEL_HEADER_READS).map((e, k) => openEntry(e, i + k)));
  }
  return numpyFile(source, arrays, locations);
}

function numpyFile(source: ByteSource, arrays: NamedArray[], locations: Map<StoredTensor, ArrayLocation>): TensorFile {
  const tensors = arrays.flatMap((a) => ('tensor' in a ? [a.tensor] : []));
  // One cursor per deflated array, kept between reads so that rows read in order inflate the entry once.
  const cursors = new Map<StoredTensor, DeflatedEntryReader>();
  const queues = new Map<StoredTensor, Promise<unknown>>();

  async function readDeflated(tensor: StoredTensor, location: ArrayLocation, offset: number, out: Uint8Array): Promise<void> {
    const { entry, dataOffset } = location.deflated!;
    let cursor = cursors.get(tensor);
    if (!cursor || cursor.position > offset) {
      cursor?.close();
      cursor = new DeflatedEntryReader(source, entry, dataOffset, `${source.name}: ${entry.name}`);
      cursors.set(tensor, cursor);
    }
    try {
      await cursor.skip(offset - cursor.position);
      await cursor.read(out);
    } catch (error) {
      cursor.close();
      cursors.delete(tensor);
      throw error;
    }
  }

  const file: TensorFile = {
    format: 'numpy',
    name: source.name,
    size: source.size,
    tensors,
    find(ref) {
      const byName = typeof ref === 'string' ? arrays.find((a) => a.name === ref || `${a.name}.npy` === ref) : undefined;
      const found = typeof ref === 'number' ? (Number.isInteger(ref) ? arrays[ref] : undefined) : byName;
      if (found && 'tensor' in found) return found.tensor;
      if (found) return `array "${found.name}" is not readable: ${found.refused}`;
      const shown = typeof ref === 'number' ? `at position ${ref}` : JSON.stringify(ref);
      return `no array ${shown}: it holds ${describeTensors(file, 'arrays')}`;
    },
    async readRows(tensor, start, end, into): Promise<TensorData> {
      const location = locations.get(tensor);
      if (!location) throw new RangeError(`${tensor.name} is not an array of ${source.name}`);
      const { layout } = location;
      if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end && end <= layout.shape[0])) {
        throw new RangeError(`rows ${start}..${end} outside ${tensor.name}'s ${layout.shape[0]} rows`);
      }
      const length = (end - start) * layout.rowBytes;
      if (length === 0) return allocateTensorData(layout.dtype, 0);
      const offset = layout.dataOffset + start * layout.rowBytes;
      const itemSize = DTYPES[layout.dtype].itemSize;
      // Filled in place when `into` fits; aligned for the dtype's view.
      const target = into && into.byteLength >= length && into.byteOffset % itemSize === 0 ? into.subarray(0, length) : undefined;
      let bytes: Uint8Array;
      if (location.deflated) {
        bytes = target ?? allocateAligned(length);
        const previous = queues.get(tensor) ?? Promise.resolve();
        const done = previous.then(() => readDeflated(tensor, location, offset, bytes));
        queues.set(
          tensor,
          done.catch(() => undefined),
        );
        await done;
      } else {
        // Swapped bytes must be our own: a source in memory returns views of itself, so what it gives
        // for `own` (or for `into`, which is promised to be filled) is copied there.
        const own = target ?? (layout.bigEndian ? allocateAligned(length) : undefined);
        bytes = await source.read(location.base + offset, length, own);
        if (own && bytes.buffer !== own.buffer) {
          own.set(bytes);
          bytes = own;
        }
      }
      if (layout.bigEndian) swapBytes(bytes, itemSize);
      return typedView(layout.dtype, bytes);
    },
    async close() {
      for (const cursor of cursors.values()) cursor.close();
      cursors.clear();
      await source.close();
    },
  };
  return file;
}
