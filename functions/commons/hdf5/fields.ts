import { ArchiveError } from '../errors';

/** An address field of all ones: HDF5's "no such object" (an unwritten chunk, an absent heap). */
export const UNDEFINED_ADDRESS = -1;

/**
 * A cursor over one structure's bytes, little-endian as HDF5 writes every metadata field. Every read is
 * checked against the structure's end, so a field claimed past it is an ArchiveError naming the
 * structure, never an out-of-bounds read.
 */
export class Fields {
  private readonly view: DataView;
  at = 0;

  constructor(
    readonly bytes: Uint8Array,
    /** What the bytes hold, for messages: `object header at 96`. */
    readonly what: string,
    private readonly offsetSize: number,
    private readonly lengthSize: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.at;
  }

  need(n: number): void {
    if (n < 0 || this.at + n > this.bytes.length) {
      throw new ArchiveError(`${this.what} ends inside a field (needs ${n} bytes at ${this.at} of ${this.bytes.length})`);
    }
  }

  skip(n: number): void {
    this.need(n);
    this.at += n;
  }

  u8(): number {
    this.need(1);
    return this.view.getUint8(this.at++);
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.at, true);
    this.at += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }

  /** An unsigned integer of 1 to 8 bytes; all ones is UNDEFINED_ADDRESS, beyond 2^53 an ArchiveError. */
  uint(size: number): number {
    if (![1, 2, 4, 8].includes(size)) throw new ArchiveError(`${this.what}: field size ${size} is not 1, 2, 4 or 8 bytes`);
    this.need(size);
    let allOnes = true;
    let value = 0;
    for (let i = size - 1; i >= 0; i--) {
      const b = this.bytes[this.at + i];
      if (b !== 0xff) allOnes = false;
      value = value * 256 + b;
    }
    this.at += size;
    if (allOnes && size >= 4) return UNDEFINED_ADDRESS;
    if (!Number.isSafeInteger(value)) {
      const exact = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.at - 8, 8).getBigUint64(0, true);
      throw new ArchiveError(`${this.what}: a field claims ${exact}, beyond any file`);
    }
    return value;
  }

  /** A file address ("size of offsets" bytes). */
  offset(): number {
    return this.uint(this.offsetSize);
  }

  /** A byte count ("size of lengths" bytes). */
  length(): number {
    const v = this.uint(this.lengthSize);
    if (v === UNDEFINED_ADDRESS) throw new ArchiveError(`${this.what}: a length field is all ones`);
    return v;
  }

  take(n: number): Uint8Array {
    this.need(n);
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  signature(expected: string): void {
    const got = Array.from(this.take(expected.length), (c) => String.fromCharCode(c)).join('');
    if (got !== expected) throw new ArchiveError(`${this.what} lacks its "${expected}" signature`);
  }

  /** A NUL-terminated string starting here (the NUL consumed); `max` bytes at most. */
  cString(max = this.remaining): string {
    const end = this.bytes.subarray(this.at, this.at + max).indexOf(0);
    if (end < 0) throw new ArchiveError(`${this.what}: a name has no terminating NUL`);
    const s = new TextDecoder().decode(this.bytes.subarray(this.at, this.at + end));
    this.at += end + 1;
    return s;
  }
}
