import { inflateSync } from 'node:zlib';
import { asinhStretch, compositeBands, rgbComposite } from '../../cli/report/composite';
import { objectKey, readObjectImages, rowRuns } from '../../cli/report/object-images';
import { encodePng, pngDataUri, type RgbImage } from '../../cli/report/png';
import { ArchiveError } from '../../functions/commons/errors';
import { bufferSource, type ByteSource } from '../../functions/commons/tensors/byte-source';
import { TorchDatasetArchive } from '../../toolkit/datasets/torch-writer';

/**
 * The report's thumbnails: the PNG bytes a decoder reads back as the pixels given, the asinh
 * stretch and colour composite, and reading only the rows wanted from partitions. Each check is
 * also shown failing on a broken case, so a check that passes everything cannot hide here.
 */

/** CRC-32 (IEEE) bit by bit, independent of zlib's table, to check the encoder's chunk checksums. */
function crc32Bitwise(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** A PNG decoder for what the report may write (8-bit RGB, no interlace), per the specification: it throws on anything else or a bad checksum. */
function decodePng(png: Uint8Array): RgbImage {
  const bytes = Buffer.from(png);
  if (!bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) throw new Error('no PNG signature');
  let at = 8;
  let header: Buffer | undefined;
  const data: Buffer[] = [];
  for (;;) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    const body = bytes.subarray(at + 8, at + 8 + length);
    if (crc32Bitwise(bytes.subarray(at + 4, at + 8 + length)) !== bytes.readUInt32BE(at + 8 + length)) throw new Error(`${type}: bad CRC`);
    at += 12 + length;
    if (type === 'IHDR') header = body;
    else if (type === 'IDAT') data.push(body);
    else if (type === 'IEND') break;
  }
  if (!header || at !== bytes.length) throw new Error('no IHDR, or bytes after IEND');
  const [width, height] = [header.readUInt32BE(0), header.readUInt32BE(4)];
  if (!header.subarray(8).equals(Buffer.from([8, 2, 0, 0, 0]))) throw new Error(`not 8-bit RGB: ${header.subarray(8).toString('hex')}`);
  const raw = inflateSync(Buffer.concat(data));
  const stride = width * 3;
  if (raw.length !== height * (stride + 1)) throw new Error(`${raw.length} bytes of scanlines for ${width}×${height}`);
  const rgb = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const line = raw.subarray(y * (stride + 1), (y + 1) * (stride + 1));
    // Filter 0 (none) and 1 (sub) are enough for a decoder of this test: the encoder must use 0.
    if (line[0] > 1) throw new Error(`filter ${line[0]}`);
    for (let x = 0; x < stride; x++) rgb[y * stride + x] = (line[1 + x] + (line[0] === 1 && x >= 3 ? rgb[y * stride + x - 3] : 0)) & 0xff;
  }
  return { width, height, rgb };
}

const pixel = (image: RgbImage, p: number) => [...image.rgb.subarray(p * 3, p * 3 + 3)];

/** A 5×3 image whose every pixel differs, so rows or columns out of place show. */
const picture = (): RgbImage => ({ width: 5, height: 3, rgb: Uint8Array.from({ length: 45 }, (_, i) => (i * 37 + 11) % 256) });

describe('the PNG encoder', () => {
  test('gives the bytes a decoder reads back as the same pixels', () => {
    const image = picture();
    expect(decodePng(encodePng(image))).toEqual(image);
    const wide = { width: 64, height: 1, rgb: Uint8Array.from({ length: 192 }, (_, i) => i) };
    expect(decodePng(encodePng(wide))).toEqual(wide);
    expect(pngDataUri(image)).toBe(`data:image/png;base64,${Buffer.from(encodePng(image)).toString('base64')}`);
  });

  test('negative controls: the decoder refuses a flipped byte, and the comparison sees pixels out of place', () => {
    const png = Buffer.from(encodePng(picture()));
    const corrupt = Buffer.from(png);
    corrupt[png.indexOf('IDAT') + 6] ^= 0x01;
    expect(() => decodePng(corrupt)).toThrow(/IDAT: bad CRC/);
    // An "encoder" that writes the rows bottom-up: decoded, it is not the picture given.
    const image = picture();
    const flipped = { ...image, rgb: Uint8Array.from([2, 1, 0].flatMap((y) => [...image.rgb.subarray(y * 15, (y + 1) * 15)])) };
    expect(decodePng(encodePng(flipped))).not.toEqual(image);
  });

  test('refuses sizes that do not match the pixels', () => {
    expect(() => encodePng({ width: 2, height: 2, rgb: new Uint8Array(11) })).toThrow(RangeError);
    expect(() => encodePng({ width: 0, height: 2, rgb: new Uint8Array(0) })).toThrow(RangeError);
  });
});

/** The checks a stretch must pass: sky black, brighter never darker, the peak white, a pixel at 2% of the peak clearly seen. */
function stretchProblems(stretch: (intensity: number, softening: number, top: number) => number): string[] {
  const [softening, top] = [2, 100];
  const problems: string[] = [];
  if (stretch(0, softening, top) !== 0 || stretch(-5, softening, top) !== 0) problems.push('sky not black');
  const levels = Array.from({ length: 200 }, (_, i) => i);
  if (levels.some((v, i) => i > 0 && stretch(v, softening, top) < stretch(levels[i - 1], softening, top))) problems.push('not monotonic');
  if (Math.abs(stretch(top, softening, top) - 1) > 1e-12 || stretch(10 * top, softening, top) !== 1) problems.push('peak not white');
  if (!(stretch(0.02 * top, softening, top) > 0.15)) problems.push('faint pixels lost');
  return problems;
}

describe('the asinh stretch and colour composite', () => {
  test('the stretch: black sky, monotonic, white peak, faint pixels lifted', () => {
    expect(stretchProblems(asinhStretch)).toEqual([]);
    // Near-linear well below the softening, as asinh is.
    expect(asinhStretch(0.01, 2, 100) / asinhStretch(0.02, 2, 100)).toBeCloseTo(0.5, 3);
  });

  test('negative control: a linear stretch loses faint pixels; a clipped-below one greys the sky', () => {
    expect(stretchProblems((i, _s, top) => Math.min(1, Math.max(0, i / top)))).toEqual(['faint pixels lost']);
    expect(stretchProblems((i, s, top) => asinhStretch(i + 1, s, top))).toContain('sky not black');
  });

  test('SDSS ugriz shows i, r, g as red, green, blue; three bands as they come', () => {
    expect(compositeBands(5)).toEqual([3, 2, 1]);
    expect(compositeBands(3)).toEqual([0, 1, 2]);
    expect(() => compositeBands(2)).toThrow(/3 bands/);
  });

  /** A 5-band 8×8 cutout: sky of 10 in every band, and a source in the middle with the given flux per band. */
  function cutout(flux: number[]): Float32Array {
    const image = new Float32Array(5 * 64).fill(10);
    for (let b = 0; b < 5; b++) for (const p of [27, 28, 35, 36]) image[b * 64 + p] += flux[b];
    return image;
  }

  test('the sky is black, a source of flux only in i is red, and band ratios survive the stretch', () => {
    const red = rgbComposite(cutout([0, 0, 0, 50, 0]), 5, 8, 8);
    expect(pixel(red, 0)).toEqual([0, 0, 0]);
    expect(pixel(red, 27)).toEqual([255, 0, 0]);
    // i : r : g = 3 : 2 : 1 above the sky, kept as 255 : 170 : 85 at the brightest pixel.
    const coloured = rgbComposite(cutout([7, 1, 2, 3, 9]), 5, 8, 8);
    expect(pixel(coloured, 27)).toEqual([255, 170, 85]);
    // u and z play no part: a source only there is not drawn.
    expect(rgbComposite(cutout([40, 0, 0, 0, 40]), 5, 8, 8).rgb.every((v) => v === 0)).toBe(true);
  });

  test('negative control: stretching each band on its own loses the colour the ratio check expects', () => {
    const perBand = (image: Float32Array) =>
      [3, 2, 1].map((b) => {
        const v = image[b * 64 + 27] - 10;
        return Math.round(255 * asinhStretch(v, 1, v));
      });
    expect(perBand(cutout([7, 1, 2, 3, 9]))).not.toEqual([255, 170, 85]);
  });

  test('non-finite pixels are sky; a blank image is black', () => {
    const image = cutout([0, 1, 2, 3, 0]);
    image[3 * 64 + 5] = NaN;
    image[2 * 64 + 6] = Infinity;
    const rgb = rgbComposite(image, 5, 8, 8);
    expect(pixel(rgb, 5)).toEqual([0, 0, 0]);
    expect(pixel(rgb, 6)).toEqual([0, 0, 0]);
    expect(rgbComposite(new Float32Array(5 * 64).fill(3), 5, 8, 8).rgb.every((v) => v === 0)).toBe(true);
    expect(() => rgbComposite(new Float32Array(10), 5, 8, 8)).toThrow(RangeError);
  });
});

describe('reading the top objects images from partitions', () => {
  const N = 200;
  const SIDE = 16;
  /** A TensorDataset of images [N, 5, SIDE, SIDE] and a label; object k's only light is in its i band, at pixel k. */
  function partition(): Uint8Array {
    const archive = new TorchDatasetArchive([
      { dtype: 'float32', shape: [N, 5, SIDE, SIDE] },
      { dtype: 'float32', shape: [N] },
    ]);
    const images = archive.tensor(0) as Float32Array;
    for (let k = 0; k < N; k++) images[k * 5 * SIDE * SIDE + 3 * SIDE * SIDE + k] = 1;
    return archive.finish();
  }

  /** Sources that count the bytes read and the times each partition is opened. */
  function counted(files: Record<string, Uint8Array>) {
    const reads = { bytes: 0, opened: {} as Record<string, number> };
    const open = async (key: string): Promise<ByteSource> => {
      reads.opened[key] = (reads.opened[key] ?? 0) + 1;
      if (!files[key]) throw new ArchiveError(`no such object: s3://data/${key}`);
      const source = bufferSource(files[key], key);
      return {
        ...source,
        read: (offset, length, into) => {
          reads.bytes += length;
          return source.read(offset, length, into);
        },
      };
    };
    return { reads, open };
  }

  test('consecutive rows are read as one range', () => {
    expect(rowRuns([7, 3, 4, 5, 9, 4, 8])).toEqual([
      [3, 6],
      [7, 10],
    ]);
    expect(rowRuns([])).toEqual([]);
  });

  test("each partition is opened once, only the objects' rows are read, and each object gets its own image", async () => {
    const bytes = partition();
    const { reads, open } = counted({ 'a.pt': bytes, 'b.pt': bytes });
    const objects = [
      { partition: 'a.pt', row: 10 },
      { partition: 'b.pt', row: 3 },
      { partition: 'a.pt', row: 11 },
      { partition: 'a.pt', row: 150 },
    ];
    const { images, unread } = await readObjectImages(objects, open);
    expect(unread).toEqual([]);
    expect(reads.opened).toEqual({ 'a.pt': 1, 'b.pt': 1 });
    // Three image rows of a.pt and one of b.pt, and each archive's directory (found in its last 64 KB
    // or so) and pickle: not the 2 MB the two partitions hold.
    expect(reads.bytes).toBeLessThan(4 * 5 * SIDE * SIDE * 4 + 2 * 72 * 1024);
    expect(bytes.length).toBeGreaterThan(N * 5 * SIDE * SIDE * 4);
    expect([...images.keys()].sort()).toEqual(objects.map(objectKey).sort());
    for (const [key, uri] of images) {
      expect(uri).toMatch(/^data:image\/png;base64,/);
      // Object k is one red pixel, at k: its own row was read, not a neighbour's.
      const image = decodePng(Buffer.from(uri.split(',')[1], 'base64'));
      expect([image.width, image.height]).toEqual([SIDE, SIDE]);
      const row = Number(key.split('#')[1]);
      const lit = [...Array(SIDE * SIDE).keys()].filter((p) => image.rgb[p * 3] || image.rgb[p * 3 + 1] || image.rgb[p * 3 + 2]);
      expect(lit).toEqual([row]);
      expect(pixel(image, row)).toEqual([255, 0, 0]);
    }
  });

  test('a partition that cannot be read leaves its objects without images and says why; the others are drawn', async () => {
    const { open } = counted({ 'a.pt': partition(), 'flat.pt': new TorchDatasetArchive([{ dtype: 'float32', shape: [N, 5] }]).finish() });
    const { images, unread } = await readObjectImages(
      [
        { partition: 'a.pt', row: 1 },
        { partition: 'gone.pt', row: 2 },
        { partition: 'flat.pt', row: 0 },
        { partition: 'a.pt', row: N },
      ],
      open,
    );
    expect([...images.keys()]).toEqual([]);
    expect(unread).toEqual([
      { partition: 'a.pt', error: `a.pt: rows ${N}..${N} are outside its ${N} objects` },
      { partition: 'flat.pt', error: 'flat.pt: no image tensor of [N, C ≥ 3, H, W] in it' },
      { partition: 'gone.pt', error: 'no such object: s3://data/gone.pt' },
    ]);
    const fine = await readObjectImages([{ partition: 'a.pt', row: 1 }], open);
    expect([...fine.images.keys()]).toEqual(['a.pt#1']);
  });
});
