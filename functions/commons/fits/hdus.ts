import type { ByteSource } from '../tensors/byte-source';
import { ArchiveError } from '../errors';
import { BLOCK_BYTES, CARD_BYTES, FitsHeader, cardsOf, isEndCard, showValue } from './header';

/** One header-and-data unit: its header parsed, its data located (never read here). */
export interface Hdu {
  index: number;
  header: FitsHeader;
  /** 'PRIMARY', or the XTENSION value (`IMAGE`, `BINTABLE`, `TABLE`, ...). */
  type: string;
  bitpix: number;
  /** NAXIS1 first, as the header lists them. */
  axes: number[];
  pcount: number;
  gcount: number;
  /** Primary random groups (GROUPS = T, NAXIS1 = 0). */
  groups: boolean;
  dataOffset: number;
  /** Bytes of data, before the padding to a whole block. */
  dataBytes: number;
}

// Bounds on what a header may make us read before anything else is checked.
export const MAX_HDUS = 1000;
export const MAX_HEADER_BLOCKS = 100;
/** Headers are read a few blocks per request: most are one or two blocks, and a request costs a round trip on S3. */
const HEADER_READ_BLOCKS = 4;
const BITPIXES = new Set([8, 16, 32, 64, -32, -64]);
const MAX_NAXIS = 999;

const roundToBlock = (bytes: number) => Math.ceil(bytes / BLOCK_BYTES) * BLOCK_BYTES;

/** The cards of the header that begins at `offset`, to its END card, and where its data begins. */
async function readHeaderCards(source: ByteSource, offset: number, where: string): Promise<{ cards: string[]; dataOffset: number }> {
  const cards: string[] = [];
  let at = offset;
  for (;;) {
    const blocksRead = (at - offset) / BLOCK_BYTES;
    if (blocksRead >= MAX_HEADER_BLOCKS) {
      throw new ArchiveError(`${source.name}: ${where}: no END card in the header's first ${MAX_HEADER_BLOCKS} blocks`);
    }
    const available = Math.floor((source.size - at) / BLOCK_BYTES);
    if (available < 1) throw new ArchiveError(`${source.name}: ${where}: truncated: the header ends before its END card`);
    const blocks = Math.min(HEADER_READ_BLOCKS, available, MAX_HEADER_BLOCKS - blocksRead);
    const bytes = await source.read(at, blocks * BLOCK_BYTES);
    const read = cardsOf(bytes);
    for (let i = 0; i < read.length; i++) {
      if (isEndCard(read[i])) {
        for (let k = 0; k < i; k++) cards.push(read[k]);
        return { cards, dataOffset: at + roundToBlock((i + 1) * CARD_BYTES) };
      }
    }
    for (const card of read) cards.push(card);
    at += blocks * BLOCK_BYTES;
  }
}

function integerKeyword(header: FitsHeader, keyword: string, where: string, fallback?: number): number {
  const value = header.get(keyword);
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'bigint') {
    throw new ArchiveError(
      `${where}: ${value === undefined ? `no ${keyword} card` : `${keyword} = ${showValue(value)} is not an integer`}`,
    );
  }
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ArchiveError(`${where}: ${keyword} = ${value} is out of range`);
  return Number(value);
}

/** An HDU's mandatory keywords checked, and its data's size (Standard 4.4.1) checked against the file's. */
function describeHdu(source: ByteSource, index: number, cards: string[], dataOffset: number): Hdu {
  const where = `${source.name}: HDU ${index}`;
  const header = new FitsHeader(cards);
  const type = index === 0 ? 'PRIMARY' : (header.string('XTENSION') ?? '').trim().toUpperCase();
  const bitpixValue = header.get('BITPIX');
  const bitpix = typeof bitpixValue === 'bigint' ? Number(bitpixValue) : NaN;
  if (!BITPIXES.has(bitpix)) {
    throw new ArchiveError(`${where}: BITPIX = ${showValue(bitpixValue)}; FITS allows 8, 16, 32, 64, -32 or -64`);
  }
  const naxis = integerKeyword(header, 'NAXIS', where);
  if (naxis > MAX_NAXIS) throw new ArchiveError(`${where}: NAXIS = ${naxis}; FITS allows at most ${MAX_NAXIS}`);
  const axes: number[] = [];
  for (let n = 1; n <= naxis; n++) axes.push(integerKeyword(header, `NAXIS${n}`, where));
  const groups = index === 0 && header.logical('GROUPS') === true && naxis > 0 && axes[0] === 0;
  // A primary array has no PCOUNT or GCOUNT (its data is NAXIS1 × ... × NAXISm); extensions and random
  // groups carry them, and writers that leave them out of an IMAGE extension mean 0 and 1.
  const primaryArray = index === 0 && !groups;
  const pcount = primaryArray ? 0 : integerKeyword(header, 'PCOUNT', where, 0);
  const gcount = primaryArray ? 1 : integerKeyword(header, 'GCOUNT', where, 1);

  // Nbits = |BITPIX| × GCOUNT × (PCOUNT + NAXIS1 × ... × NAXISm), the product 0 when NAXIS = 0 and
  // taken from NAXIS2 for random groups. Counted exactly, so that a header claiming 2^60 elements is
  // compared with the file's size, never allocated.
  const counted = groups ? axes.slice(1) : axes;
  const elements = naxis === 0 ? 0n : counted.reduce((product, n) => product * BigInt(n), 1n);
  const bytes = (BigInt(Math.abs(bitpix) / 8) * BigInt(gcount) * (BigInt(pcount) + elements)) as bigint;
  const room = BigInt(source.size - dataOffset);
  if (bytes > room) {
    throw new ArchiveError(
      `${where}: its header claims ${bytes} bytes of data (BITPIX ${bitpix}, NAXISn ${axes.join(' × ') || 'none'}, ` +
        `PCOUNT ${pcount}, GCOUNT ${gcount}) but only ${room} bytes follow it: truncated or corrupt`,
    );
  }
  return { index, header, type, bitpix, axes, pcount, gcount, groups, dataOffset, dataBytes: Number(bytes) };
}

const startsWith = (bytes: Uint8Array, text: string) => text.split('').every((c, i) => bytes[i] === c.charCodeAt(0));

/**
 * Every HDU of a file, from headers alone: each data size comes from its header, so the next header
 * is found without reading any data. Bytes after the last HDU that do not begin an extension are
 * ignored, as the Standard (3.5) allows such special records.
 */
export async function readHdus(source: ByteSource): Promise<Hdu[]> {
  if (source.size < BLOCK_BYTES || !startsWith(await source.read(0, 10), 'SIMPLE  = ')) {
    throw new ArchiveError(`${source.name}: not a FITS file (it does not begin with a 2880-byte block whose first card is SIMPLE = T)`);
  }
  const hdus: Hdu[] = [];
  let offset = 0;
  for (let index = 0; ; index++) {
    if (index > 0) {
      if (source.size - offset < 8 || !startsWith(await source.read(offset, 8), 'XTENSION')) break;
      if (index >= MAX_HDUS) throw new ArchiveError(`${source.name}: more than ${MAX_HDUS} HDUs; CAI reads files of at most ${MAX_HDUS}`);
    }
    const { cards, dataOffset } = await readHeaderCards(source, offset, `HDU ${index}`);
    if (index === 0 && new FitsHeader(cards.slice(0, 1)).get('SIMPLE') !== true) {
      throw new ArchiveError(`${source.name}: SIMPLE is not T: the file says it does not conform to the FITS Standard`);
    }
    if (index > 0 && new FitsHeader(cards.slice(0, 1)).string('XTENSION') === undefined) {
      throw new ArchiveError(`${source.name}: HDU ${index}: its XTENSION card has no type`);
    }
    const hdu = describeHdu(source, index, cards, dataOffset);
    hdus.push(hdu);
    // The last HDU's padding may be missing from a file cut at its data's end; nothing is lost.
    offset = dataOffset + roundToBlock(hdu.dataBytes);
  }
  return hdus;
}
