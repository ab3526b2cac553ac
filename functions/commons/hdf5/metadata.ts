import { ArchiveError } from '../errors';
import type { ByteSource } from '../tensors/byte-source';
import { Fields, UNDEFINED_ADDRESS } from './fields';

/**
 * The file-level structures of HDF5 (File Format Specification, version 3.0 and earlier): the
 * superblock, object headers and their messages, read by ranges through a small window cache so that
 * the many small metadata structures cost few reads of the source.
 */

const SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];
/** Metadata is read in windows of this size: an object header or B-tree node usually fits in one. */
const WINDOW = 4096;
const CACHED_WINDOW_BYTES = 32 << 20;

export interface Superblock {
  version: number;
  /** Where the signature is: addresses in the file are relative to it (past a user block). */
  base: number;
  offsetSize: number;
  lengthSize: number;
  groupLeafK: number;
  groupInternalK: number;
  chunkInternalK: number;
  rootHeader: number;
}

/** Ranged, cached reads of the file's metadata, by address relative to the superblock's base. */
export class MetadataReader {
  private windows = new Map<number, Uint8Array>();
  private cachedBytes = 0;
  superblock!: Superblock;

  constructor(readonly source: ByteSource) {}

  get name(): string {
    return this.source.name;
  }

  fail(message: string): ArchiveError {
    return new ArchiveError(`${this.name}: ${message}`);
  }

  /** Bytes [address, address + length) of the file, as a view that must not be changed. */
  async bytes(address: number, length: number, what: string): Promise<Uint8Array> {
    const start = this.superblock.base + address;
    if (address < 0 || !Number.isSafeInteger(start + length) || start + length > this.source.size) {
      throw this.fail(`${what} at ${address} (${length} bytes) lies beyond the end of the file (${this.source.size} bytes)`);
    }
    const windowStart = start - (start % WINDOW);
    const cached = this.windows.get(windowStart);
    if (cached && start + length <= windowStart + cached.length) {
      this.windows.delete(windowStart);
      this.windows.set(windowStart, cached);
      return cached.subarray(start - windowStart, start - windowStart + length);
    }
    const windowEnd = Math.min(this.source.size, Math.max(start + length, windowStart + WINDOW));
    const window = await this.raw(windowStart, windowEnd - windowStart);
    if (window.length <= CACHED_WINDOW_BYTES / 8) this.remember(windowStart, window);
    return window.subarray(start - windowStart, start - windowStart + length);
  }

  /** Bytes read straight from the source (absolute offsets), outside the window cache. */
  async raw(offset: number, length: number, into?: Uint8Array): Promise<Uint8Array> {
    return this.source.read(offset, length, into);
  }

  private remember(start: number, window: Uint8Array): void {
    const old = this.windows.get(start);
    if (old) this.cachedBytes -= old.length;
    this.windows.set(start, window);
    this.cachedBytes += window.length;
    for (const [key, value] of this.windows) {
      if (this.cachedBytes <= CACHED_WINDOW_BYTES) break;
      this.windows.delete(key);
      this.cachedBytes -= value.length;
    }
  }

  async fields(address: number, length: number, what: string): Promise<Fields> {
    const { offsetSize, lengthSize } = this.superblock;
    return new Fields(await this.bytes(address, length, what), `${this.name}: ${what} at ${address}`, offsetSize, lengthSize);
  }

  /** As much of [address, address + length) as the file holds: for structures whose size is read from themselves. */
  async fieldsUpTo(address: number, length: number, what: string): Promise<Fields> {
    const available = this.source.size - this.superblock.base - address;
    if (available <= 0) throw this.fail(`${what} at ${address} lies beyond the end of the file (${this.source.size} bytes)`);
    return this.fields(address, Math.min(length, available), what);
  }

  async readSuperblock(): Promise<Superblock> {
    const { size } = this.source;
    let base = -1;
    for (let at = 0; at + 8 <= size; at = at === 0 ? 512 : at * 2) {
      const head = await this.raw(at, 8);
      if (SIGNATURE.every((b, i) => head[i] === b)) {
        base = at;
        break;
      }
    }
    if (base < 0) throw this.fail('not an HDF5 file (no HDF5 signature at byte 0, 512, 1024, ...)');
    const head = new Fields(await this.raw(base, Math.min(size - base, 256)), `${this.name}: superblock`, 8, 8);
    head.skip(8);
    const version = head.u8();
    let offsetSize: number;
    let lengthSize: number;
    let groupLeafK = 4;
    let groupInternalK = 16;
    let chunkInternalK = 32;
    let rootHeader: number;
    let baseAddress: number;
    if (version === 0 || version === 1) {
      head.skip(3);
      if (head.u8() !== 0) throw this.fail('superblock: shared header message format is not 0');
      offsetSize = head.u8();
      lengthSize = head.u8();
      head.skip(1);
      groupLeafK = head.u16();
      groupInternalK = head.u16();
      head.skip(4);
      if (version === 1) {
        chunkInternalK = head.u16();
        head.skip(2);
      }
      checkSizes(this, offsetSize, lengthSize);
      const f = new Fields(head.bytes.subarray(head.at), `${this.name}: superblock`, offsetSize, lengthSize);
      baseAddress = f.offset();
      f.offset(); // free-space info
      f.offset(); // end of file
      f.offset(); // driver info
      f.offset(); // root entry: link name offset
      rootHeader = f.offset();
    } else if (version === 2 || version === 3) {
      offsetSize = head.u8();
      lengthSize = head.u8();
      head.skip(1);
      checkSizes(this, offsetSize, lengthSize);
      const f = new Fields(head.bytes.subarray(head.at), `${this.name}: superblock`, offsetSize, lengthSize);
      baseAddress = f.offset();
      f.offset(); // superblock extension
      f.offset(); // end of file
      rootHeader = f.offset();
    } else {
      throw new ArchiveError(`${this.name}: superblock version ${version} is not one HDF5 has written (0 to 3)`);
    }
    if (groupLeafK < 1 || groupInternalK < 1 || chunkInternalK < 1) throw this.fail('superblock: a B-tree K of 0');
    // The base address is absolute; HDF5 writes the signature's own position (0 past no user block).
    if (baseAddress !== base && baseAddress !== 0)
      throw this.fail(`superblock: base address ${baseAddress} is not where it lies (${base})`);
    if (rootHeader === UNDEFINED_ADDRESS) throw this.fail('superblock: no root group');
    this.superblock = { version, base, offsetSize, lengthSize, groupLeafK, groupInternalK, chunkInternalK, rootHeader };
    return this.superblock;
  }
}

function checkSizes(reader: MetadataReader, offsetSize: number, lengthSize: number): void {
  for (const [what, n] of [
    ['offsets', offsetSize],
    ['lengths', lengthSize],
  ] as const) {
    if (![2, 4, 8].includes(n)) throw reader.fail(`superblock: size of ${what} ${n} is not 2, 4 or 8`);
  }
}

export interface Message {
  type: number;
  flags: number;
  data: Uint8Array;
}

export const MSG = {
  dataspace: 0x01,
  linkInfo: 0x02,
  datatype: 0x03,
  link: 0x06,
  layout: 0x08,
  filters: 0x0b,
  continuation: 0x10,
  symbolTable: 0x11,
} as const;

/** A bound on one object's messages, beside the bounded size of its header blocks. */
const MAX_MESSAGES = 65536;

/** Every message of the object header at `address`, across its continuation blocks. */
export async function readObjectHeader(reader: MetadataReader, address: number): Promise<Message[]> {
  const what = `object header at ${address}`;
  const head = await reader.fieldsUpTo(address, 16, 'object header');
  const messages: Message[] = [];
  const blocks: { address: number; length: number }[] = [];
  const seen = new Set<number>([address]);
  let v2 = false;
  let creationOrder = false;
  const first = head.bytes[0];
  if (first === 1) {
    head.skip(2);
    head.u16(); // message count: the blocks' sizes bound them instead
    head.u32(); // reference count
    const size = head.u32();
    blocks.push({ address: address + 16, length: size });
  } else if (first === 0x4f && head.bytes[1] === 0x48 && head.bytes[2] === 0x44 && head.bytes[3] === 0x52) {
    v2 = true;
    head.skip(4);
    const version = head.u8();
    if (version !== 2) throw reader.fail(`${what}: version ${version} is not 2`);
    const flags = head.u8();
    creationOrder = (flags & 0x04) !== 0;
    let prefix = 6 + (flags & 0x20 ? 16 : 0) + (flags & 0x10 ? 4 : 0);
    const sizeBytes = 1 << (flags & 0x03);
    const full = await reader.fieldsUpTo(address, prefix + sizeBytes, 'object header');
    full.skip(prefix);
    const size = full.uint(sizeBytes);
    prefix += sizeBytes;
    blocks.push({ address: address + prefix, length: size });
  } else {
    throw reader.fail(`${what} is not an object header (version byte ${first})`);
  }
  while (blocks.length) {
    const block = blocks.shift()!;
    const fields = await reader.fields(block.address, block.length, `block of ${what}`);
    // A version 2 block's messages are followed by its checksum, outside `length`.
    const end = block.length;
    const headerSize = v2 ? 4 + (creationOrder ? 2 : 0) : 8;
    while (fields.at + headerSize <= end) {
      let type: number;
      let size: number;
      let flags: number;
      if (v2) {
        type = fields.u8();
        size = fields.u16();
        flags = fields.u8();
        if (creationOrder) fields.skip(2);
      } else {
        type = fields.u16();
        size = fields.u16();
        flags = fields.u8();
        fields.skip(3);
      }
      if (fields.at + size > end) throw reader.fail(`${what}: a message of ${size} bytes runs past its block`);
      const data = fields.take(size);
      if (!v2) fields.at = Math.min(end, fields.at + ((8 - (fields.at % 8)) % 8));
      if (messages.length >= MAX_MESSAGES) throw reader.fail(`${what}: more than ${MAX_MESSAGES} messages`);
      if (type === MSG.continuation) {
        const c = new Fields(data, `${reader.name}: ${what}: continuation`, reader.superblock.offsetSize, reader.superblock.lengthSize);
        const next = c.offset();
        const length = c.length();
        if (next === UNDEFINED_ADDRESS || seen.has(next)) throw reader.fail(`${what}: its continuation blocks form a cycle`);
        seen.add(next);
        if (v2) {
          const chunk = await reader.fields(next, Math.min(length, 4), `continuation block of ${what}`);
          chunk.signature('OCHK');
          if (length < 8) throw reader.fail(`${what}: continuation block of ${length} bytes`);
          blocks.push({ address: next + 4, length: length - 8 });
        } else {
          blocks.push({ address: next, length });
        }
      } else {
        messages.push({ type, flags, data });
      }
    }
  }
  return messages;
}

export const messageFields = (reader: MetadataReader, data: Uint8Array, what: string) =>
  new Fields(data, `${reader.name}: ${what}`, reader.superblock.offsetSize, reader.superblock.lengthSize);

/** Rank and dimensions; `null` for a null dataspace (no elements at all). */
export function parseDataspace(f: Fields): number[] | null {
  const version = f.u8();
  const rank = f.u8();
  f.u8(); // flags: max dims follow the dims, unread
  if (version === 1) {
    f.skip(5);
  } else if (version === 2) {
    const type = f.u8();
    if (type === 2) return null;
  } else {
    throw new ArchiveError(`${f.what}: dataspace version ${version} is not 1 or 2`);
  }
  if (rank > 32) throw new ArchiveError(`${f.what}: dataspace of rank ${rank} (HDF5 allows 32)`);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) {
    const d = f.length();
    dims.push(d);
  }
  return dims;
}
