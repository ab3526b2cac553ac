import { crc32 } from 'node:zlib';

/** One entry as written: `data` as it lies in the zip; method, size and crc as the directory declares them. */
export interface ZipInput {
  name: string;
  data: Uint8Array;
  /** 0 stored (the default), 8 deflated. */
  method?: number;
  /** Declared uncompressed size; the data's length by default. */
  size?: number;
  crc?: number;
}

/**
 * A zip archive made by hand, for files no library would write: sizes and checksums that lie, or a
 * directory that repeats its first record `repeatDirectory` times (zip64 records then carry the count).
 */
export function zipOf(entries: ZipInput[], options: { repeatDirectory?: number } = {}): Uint8Array {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name);
    const size = entry.size ?? entry.data.length;
    const crc = entry.crc ?? crc32(entry.data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(entry.method ?? 0, 8);
    local.writeUInt32LE(crc >>> 0, 14);
    local.writeUInt32LE(entry.data.length, 18);
    local.writeUInt32LE(Math.min(size, 0xffffffff), 22);
    local.writeUInt16LE(name.length, 26);
    const record = Buffer.alloc(46);
    record.writeUInt32LE(0x02014b50, 0);
    record.writeUInt16LE(20, 4);
    record.writeUInt16LE(20, 6);
    record.writeUInt16LE(entry.method ?? 0, 10);
    record.writeUInt32LE(crc >>> 0, 16);
    record.writeUInt32LE(entry.data.length, 20);
    const zip64 = size >= 0xffffffff;
    record.writeUInt32LE(zip64 ? 0xffffffff : size, 24);
    record.writeUInt16LE(name.length, 28);
    const extra = Buffer.alloc(zip64 ? 12 : 0);
    if (zip64) {
      extra.writeUInt16LE(1, 0);
      extra.writeUInt16LE(8, 2);
      extra.writeBigUInt64LE(BigInt(size), 4);
    }
    record.writeUInt16LE(extra.length, 30);
    record.writeUInt32LE(offset, 42);
    parts.push(local, name, Buffer.from(entry.data));
    central.push(Buffer.concat([record, name, extra]));
    offset += 30 + name.length + entry.data.length;
  }
  const repeated = options.repeatDirectory ? new Array<Buffer>(options.repeatDirectory).fill(central[0]) : central;
  const directory = Buffer.concat(repeated);
  const count = repeated.length;
  const tail: Buffer[] = [];
  if (count >= 0xffff) {
    const record = Buffer.alloc(56);
    record.writeUInt32LE(0x06064b50, 0);
    record.writeBigUInt64LE(44n, 4);
    record.writeBigUInt64LE(BigInt(count), 24);
    record.writeBigUInt64LE(BigInt(count), 32);
    record.writeBigUInt64LE(BigInt(directory.length), 40);
    record.writeBigUInt64LE(BigInt(offset), 48);
    const locator = Buffer.alloc(20);
    locator.writeUInt32LE(0x07064b50, 0);
    locator.writeBigUInt64LE(BigInt(offset + directory.length), 8);
    locator.writeUInt32LE(1, 16);
    tail.push(record, locator);
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Math.min(count, 0xffff), 8);
  end.writeUInt16LE(Math.min(count, 0xffff), 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return new Uint8Array(Buffer.concat([...parts, directory, ...tail, end]));
}
