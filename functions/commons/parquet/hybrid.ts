import { ArchiveError } from '../errors';

/**
 * Parquet's RLE / bit-packed hybrid encoding (repetition and definition levels, dictionary indices,
 * RLE booleans), decoded into a typed array. Written here rather than taken from hyparquet because a
 * file's run lengths are untrusted: every run is clamped to the values still wanted and every byte
 * read is checked against the encoded bytes, so a run claiming 2^31 values costs nothing and a short
 * stream is refused, never read past.
 */

/** Bits needed for values up to `max`. */
export const bitWidth = (max: number) => 32 - Math.clz32(max);

/**
 * Decodes `out.length` values of `width` bits from bytes[start, end); refuses a value above `max`.
 * Returns the offset after the last byte read.
 */
export function decodeHybrid(
  bytes: Uint8Array,
  start: number,
  end: number,
  width: number,
  out: Uint8Array | Uint32Array,
  max: number,
  what: string,
): number {
  if (width > 32 || end > bytes.length) throw new ArchiveError(`${what}: ${width}-bit values cannot be decoded`);
  const count = out.length;
  const byteWidth = (width + 7) >> 3;
  let pos = start;
  let n = 0;
  while (n < count) {
    let header = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= end || shift > 28) throw new ArchiveError(`${what}: encoded values end after ${n} of ${count}`);
      const byte = bytes[pos++];
      header += (byte & 0x7f) * 2 ** shift;
      if (!(byte & 0x80)) break;
    }
    if (header % 2 === 0) {
      // A run: one value, repeated.
      if (pos + byteWidth > end) throw new ArchiveError(`${what}: encoded values end after ${n} of ${count}`);
      let value = 0;
      for (let b = 0; b < byteWidth; b++) value += bytes[pos++] * 2 ** (8 * b);
      if (value > max) throw new ArchiveError(`${what}: value ${value} is above ${max}`);
      const take = Math.min(header / 2, count - n);
      out.fill(value, n, n + take);
      n += take;
    } else {
      // Groups of 8 values packed least significant bit first.
      const groups = (header - 1) / 2;
      const packedBytes = groups * width;
      if (pos + packedBytes > end) throw new ArchiveError(`${what}: encoded values end after ${n} of ${count}`);
      const take = Math.min(groups * 8, count - n);
      const high = unpack(bytes, pos, width, out, n, take);
      if (high > max) throw new ArchiveError(`${what}: value ${high} is above ${max}`);
      n += take;
      pos += packedBytes;
    }
  }
  return pos;
}

/** Unpacks `take` values into out[at...]; returns the largest. */
function unpack(bytes: Uint8Array, pos: number, width: number, out: Uint8Array | Uint32Array, at: number, take: number): number {
  let high = 0;
  if (width === 0) {
    out.fill(0, at, at + take);
    return 0;
  }
  if (width <= 24) {
    // Up to 24 bits plus a byte's 8 fit the 32-bit accumulator.
    const mask = (1 << width) - 1;
    let acc = 0;
    let bits = 0;
    for (let i = 0; i < take; i++) {
      while (bits < width) {
        acc |= bytes[pos++] << bits;
        bits += 8;
      }
      const value = acc & mask;
      acc >>>= width;
      bits -= width;
      out[at + i] = value;
      if (value > high) high = value;
    }
    return high;
  }
  // Wider values: arithmetic on doubles, exact below 2^53.
  const scale = 2 ** width;
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < take; i++) {
    while (bits < width) {
      acc += bytes[pos++] * 2 ** bits;
      bits += 8;
    }
    const value = acc % scale;
    acc = (acc - value) / scale;
    bits -= width;
    out[at + i] = value;
    if (value > high) high = value;
  }
  return high;
}
