import * as zlib from 'node:zlib';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { decompressLz4, decompressLz4Raw, decompressZstd } from 'hyparquet-compressors';
import { ArchiveError, UnsupportedTensorError } from '../errors';
import { snappyDecompress } from './snappy';

/**
 * The compression codecs of Parquet pages. Every decompressor is given the page's stated size as its
 * output and no more (the caller has checked that size against the page's values and the codec's
 * largest ratio), and a page that does not come out at exactly that size is refused.
 */

/**
 * Node's own Zstandard decoder (22.15 and later: the nodejs22.x runtime's), about 15 times the speed of
 * the JavaScript one, which is kept for older Node: a 100 MiB zstd column decodes in ~0.15 s, not ~2.7 s.
 */
const nativeZstd = (zlib as { zstdDecompressSync?: (input: Uint8Array, options: { maxOutputLength: number }) => Uint8Array })
  .zstdDecompressSync;

export const CODECS = ['UNCOMPRESSED', 'SNAPPY', 'GZIP', 'BROTLI', 'ZSTD', 'LZ4', 'LZ4_RAW'] as const;
export type Codec = (typeof CODECS)[number];

export const isSupportedCodec = (codec: string | undefined): codec is Codec => CODECS.includes(codec as Codec);

/** Why a column's codec cannot be read, for a message. */
export function unsupportedCodec(codec: string | undefined): UnsupportedTensorError {
  const name = codec ?? 'a codec unknown to the Parquet format';
  return new UnsupportedTensorError(`compressed with ${name}, which CAI does not decompress (it reads ${CODECS.join(', ')})`);
}

/**
 * The most one compressed byte can expand to: snappy's longest copy is 64 bytes from a 3-byte tag,
 * deflate's 258 bytes from about 2 bits, LZ4's 255 a length byte. Zstandard and Brotli can repeat a
 * block without a bound, so their pages are bounded only by their values.
 */
const LARGEST_RATIO: Partial<Record<Codec, number>> = { UNCOMPRESSED: 1, SNAPPY: 22, GZIP: 1032, LZ4: 256, LZ4_RAW: 256 };

/** The most a page of `compressed` bytes can hold under `codec`. */
export function largestUncompressed(codec: Codec, compressed: number): number {
  const ratio = LARGEST_RATIO[codec];
  return ratio === undefined ? Infinity : compressed * ratio + 64;
}

export function decompress(codec: Codec, input: Uint8Array, size: number): Uint8Array {
  let page: Uint8Array;
  switch (codec) {
    case 'UNCOMPRESSED':
      page = input;
      break;
    case 'SNAPPY':
      page = snappyDecompress(input, size);
      break;
    case 'GZIP':
      page = gunzipSync(input, { maxOutputLength: Math.max(size, 1) });
      break;
    case 'BROTLI':
      page = brotliDecompressSync(input, { maxOutputLength: Math.max(size, 1) });
      break;
    case 'ZSTD':
      page = nativeZstd ? nativeZstd(input, { maxOutputLength: Math.max(size, 1) }) : decompressZstd(input, new Uint8Array(size));
      break;
    case 'LZ4':
      page = decompressLz4(input, size);
      break;
    case 'LZ4_RAW':
      page = decompressLz4Raw(input, size);
      break;
  }
  if (page.length !== size) throw new ArchiveError(`a ${codec} page holds ${page.length} bytes, its header says ${size}`);
  return page;
}
