import type { ByteSource } from './byte-source';
import { ArchiveError } from '../errors';

/** One stored file of a zip archive, located by its central directory record. */
export interface ZipEntry {
  name: string;
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const EOCD_MIN = 22;
const MAX_COMMENT = 0xffff;
// Guards against a hostile directory asking for absurd allocations before anything is checked.
const MAX_ENTRIES = 1_000_000;
const MAX_DIRECTORY_BYTES = 256 * 1024 * 1024;

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function u64(dv: DataView, at: number, what: string): number {
  const value = dv.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ArchiveError(`zip64 ${what} is out of range`);
  return Number(value);
}

/**
 * Reads the central directory of a zip archive (with ZIP64 where sizes need it) from its tail.
 * Only the directory is read here; entry data is read on demand with `readEntry`. `maxEntries` lets a
 * reader that expects a few entries refuse a directory of many before reading it.
 */
export async function readZipDirectory(source: ByteSource, maxEntries = MAX_ENTRIES): Promise<ZipEntry[]> {
  const head = view(await source.read(0, Math.min(4, source.size)));
  const startsLikeZip = head.byteLength === 4 && head.getUint32(0, true) === LOCAL_SIGNATURE;
  const unreadable = (): never => {
    throw new ArchiveError(
      startsLikeZip ? `${source.name}: truncated zip archive (no end-of-directory record)` : `${source.name}: not a zip archive`,
    );
  };
  if (source.size < EOCD_MIN) unreadable();
  const tailLength = Math.min(source.size, EOCD_MIN + MAX_COMMENT + 20);
  const tailStart = source.size - tailLength;
  const tail = await source.read(tailStart, tailLength);
  const tv = view(tail);
  let eocd = -1;
  for (let i = tailLength - EOCD_MIN; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD_SIGNATURE && i + EOCD_MIN + tv.getUint16(i + 20, true) === tailLength) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) unreadable();
  let count = tv.getUint16(eocd + 10, true);
  let directorySize = tv.getUint32(eocd + 12, true);
  let directoryOffset = tv.getUint32(eocd + 16, true);

  const needsZip64 = count === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff;
  const locatorAt = eocd - 20;
  if (locatorAt >= 0 && tv.getUint32(locatorAt, true) === ZIP64_LOCATOR_SIGNATURE) {
    const recordOffset = u64(tv, locatorAt + 8, 'directory locator');
    if (recordOffset + 56 > source.size) throw new ArchiveError(`${source.name}: truncated zip64 directory record`);
    const record = view(await source.read(recordOffset, 56));
    if (record.getUint32(0, true) !== ZIP64_EOCD_SIGNATURE) {
      throw new ArchiveError(`${source.name}: corrupt zip64 end-of-directory record`);
    }
    count = u64(record, 32, 'entry count');
    directorySize = u64(record, 40, 'directory size');
    directoryOffset = u64(record, 48, 'directory offset');
  } else if (needsZip64) {
    throw new ArchiveError(`${source.name}: zip64 archive without its locator record`);
  }

  if (count > Math.min(maxEntries, MAX_ENTRIES)) {
    throw new ArchiveError(
      `${source.name}: zip declares ${count} entries${maxEntries < MAX_ENTRIES ? ` (at most ${maxEntries} are read)` : ''}`,
    );
  }
  if (directorySize > MAX_DIRECTORY_BYTES || directoryOffset + directorySize > source.size) {
    throw new ArchiveError(`${source.name}: truncated or corrupt zip directory`);
  }
  const directory = await source.read(directoryOffset, directorySize);
  const dv = view(directory);
  const decoder = new TextDecoder();
  const entries: ZipEntry[] = [];
  let at = 0;
  for (let n = 0; n < count; n++) {
    if (at + 46 > directorySize || dv.getUint32(at, true) !== CENTRAL_SIGNATURE) {
      throw new ArchiveError(`${source.name}: corrupt zip directory at entry ${n}`);
    }
    const method = dv.getUint16(at + 10, true);
    const crc32 = dv.getUint32(at + 16, true);
    let compressedSize = dv.getUint32(at + 20, true);
    let size = dv.getUint32(at + 24, true);
    const nameLength = dv.getUint16(at + 28, true);
    const extraLength = dv.getUint16(at + 30, true);
    const commentLength = dv.getUint16(at + 32, true);
    let localHeaderOffset = dv.getUint32(at + 42, true);
    const end = at + 46 + nameLength + extraLength + commentLength;
    if (end > directorySize) throw new ArchiveError(`${source.name}: corrupt zip directory at entry ${n}`);
    const name = decoder.decode(directory.subarray(at + 46, at + 46 + nameLength));

    // ZIP64 extended information: 64-bit values for whichever 32-bit fields are saturated.
    let extra = at + 46 + nameLength;
    const extraEnd = extra + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = dv.getUint16(extra, true);
      const length = dv.getUint16(extra + 2, true);
      if (id === 0x0001) {
        let field = extra + 4;
        const take = (): number => {
          if (field + 8 > extra + 4 + length) throw new ArchiveError(`${source.name}: corrupt zip64 field of ${name}`);
          const value = u64(dv, field, `field of ${name}`);
          field += 8;
          return value;
        };
        if (size === 0xffffffff) size = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
      }
      extra += 4 + length;
    }
    if (localHeaderOffset + 30 + compressedSize > source.size) {
      throw new ArchiveError(`${source.name}: truncated: entry ${name} runs past the end of the file`);
    }
    entries.push({ name, method, crc32, compressedSize, size, localHeaderOffset });
    at = end;
  }
  return entries;
}

/** Offset of an entry's data: past its local header, whose extra field (alignment padding) may differ. */
export async function entryDataOffset(source: ByteSource, entry: ZipEntry): Promise<number> {
  const header = view(await source.read(entry.localHeaderOffset, 30));
  if (header.getUint32(0, true) !== LOCAL_SIGNATURE) {
    throw new ArchiveError(`${source.name}: corrupt local header for ${entry.name}`);
  }
  const offset = entry.localHeaderOffset + 30 + header.getUint16(26, true) + header.getUint16(28, true);
  if (offset + entry.compressedSize > source.size) {
    throw new ArchiveError(`${source.name}: truncated: ${entry.name} runs past the end of the file`);
  }
  return offset;
}

/** The bytes of a stored (uncompressed) entry, or a part of them. */
export async function readStoredEntry(
  source: ByteSource,
  entry: ZipEntry,
  dataOffset: number,
  start = 0,
  length = entry.size - start,
  into?: Uint8Array,
): Promise<Uint8Array> {
  if (entry.method !== 0) {
    throw new ArchiveError(
      `${source.name}: entry ${entry.name} is compressed (zip method ${entry.method}); tensor archives store entries uncompressed`,
    );
  }
  if (start < 0 || length < 0 || start + length > entry.size) {
    throw new ArchiveError(`${source.name}: read of ${start}+${length} outside entry ${entry.name} (${entry.size} bytes)`);
  }
  return source.read(dataOffset + start, length, into);
}
