import { ArchiveError } from '../errors';

/**
 * Snappy's block format (the codec pyarrow writes by default), decoded into an output of the size
 * the page header states. Written here from the format's description rather than taken from
 * hyparquet, whose decoder takes a 4-byte literal length as a signed number and so can step back
 * through its input forever on a hostile page; here every length is checked against both the input
 * left and the output left before anything is copied.
 */
export function snappyDecompress(input: Uint8Array, size: number): Uint8Array {
  const fail = (why: string) => new ArchiveError(`a SNAPPY page is corrupt: ${why}`);
  let pos = 0;
  let stated = 0;
  for (let shift = 0; ; shift += 7) {
    if (pos >= input.length || shift > 28) throw fail('its length is cut short');
    const byte = input[pos++];
    stated += (byte & 0x7f) * 2 ** shift;
    if (!(byte & 0x80)) break;
  }
  if (stated !== size) throw fail(`it holds ${stated} bytes, its header says ${size}`);
  const out = new Uint8Array(size);
  let at = 0;
  while (pos < input.length) {
    const tag = input[pos++];
    const kind = tag & 3;
    if (kind === 0) {
      let length = (tag >>> 2) + 1;
      if (length > 60) {
        const bytes = length - 60;
        if (pos + bytes > input.length) throw fail('a literal length is cut short');
        length = 1;
        for (let b = 0; b < bytes; b++) length += input[pos + b] * 2 ** (8 * b);
        pos += bytes;
      }
      if (pos + length > input.length || at + length > size) throw fail('a literal overruns the page');
      out.set(input.subarray(pos, pos + length), at);
      pos += length;
      at += length;
      continue;
    }
    let length: number;
    let offset: number;
    if (kind === 1) {
      if (pos + 1 > input.length) throw fail('a copy is cut short');
      length = ((tag >>> 2) & 7) + 4;
      offset = ((tag >>> 5) << 8) | input[pos++];
    } else {
      const bytes = kind === 2 ? 2 : 4;
      if (pos + bytes > input.length) throw fail('a copy is cut short');
      length = (tag >>> 2) + 1;
      offset = 0;
      for (let b = 0; b < bytes; b++) offset += input[pos + b] * 2 ** (8 * b);
      pos += bytes;
    }
    if (offset === 0 || offset > at || at + length > size) throw fail('a copy reaches outside the page');
    if (offset >= length) {
      out.copyWithin(at, at - offset, at - offset + length);
      at += length;
    } else {
      // Overlapping: the copy repeats what it has just written.
      for (const end = at + length; at < end; at++) out[at] = out[at - offset];
    }
  }
  if (at !== size) throw fail(`it decodes to ${at} bytes, its header says ${size}`);
  return out;
}
