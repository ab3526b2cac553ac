import { crc32, deflateSync } from 'node:zlib';

/**
 * A PNG of 8-bit RGB pixels, enough for the report's thumbnails without an image library: the
 * signature, IHDR, one IDAT (zlib-deflated scanlines, each with filter 0) and IEND. zlib.crc32 is
 * the checksum the torch archive reader already relies on (Node ≥ 20.15).
 */
export interface RgbImage {
  width: number;
  height: number;
  /** Row-major, top row first, 3 bytes (R, G, B) per pixel. */
  rgb: Uint8Array;
}

const SIGNATURE = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  // The checksum covers the type and the data, not the length.
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

export function encodePng({ width, height, rgb }: RgbImage): Uint8Array {
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new RangeError(`a PNG of ${width}×${height} pixels`);
  }
  if (rgb.length !== width * height * 3) throw new RangeError(`${rgb.length} bytes for ${width}×${height} RGB pixels`);
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8 bits per sample, truecolour, deflate, filter method 0, no interlace
  const stride = width * 3;
  const scanlines = Buffer.alloc(height * (stride + 1));
  for (let y = 0; y < height; y++) scanlines.set(rgb.subarray(y * stride, (y + 1) * stride), y * (stride + 1) + 1);
  return Buffer.concat([SIGNATURE, chunk('IHDR', header), chunk('IDAT', deflateSync(scanlines)), chunk('IEND', new Uint8Array(0))]);
}

export const pngDataUri = (image: RgbImage) => `data:image/png;base64,${Buffer.from(encodePng(image)).toString('base64')}`;
