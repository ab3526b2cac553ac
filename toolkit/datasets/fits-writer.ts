import { UsageError } from '../../functions/commons/errors';
import { swapBytes } from '../../functions/commons/tensors/dtype';

/**
 * A synthetic survey as a FITS file (FITS Standard 4.0), as astropy would write it: the primary HDU
 * holds the image cube (float32, numpy shape [objects, ...one object's], so NAXIS1 is the last axis
 * and the last NAXISn the objects), and a binary table extension holds one float row per object.
 * Plain: arrays in, bytes out.
 */

export interface FitsTableColumn {
  /** TTYPEn: the name a card gives as `CATALOG/<name>`. */
  name: string;
  /** [objects × perRow] values: float32 are written as TFORM E, float64 as D. */
  values: Float32Array | Float64Array;
  /** Values of one row (TFORM's repeat count); 1 when omitted. */
  perRow?: number;
}

export interface FitsSurvey {
  /** [objects, ...imageShape], row-major. */
  images: Float32Array;
  /** One object's image shape in numpy's order, e.g. [5, 64, 64]. */
  imageShape: number[];
  columns: FitsTableColumn[];
  /** The table's EXTNAME; `CATALOG` when omitted. */
  tableName?: string;
}

const BLOCK = 2880;
const CARD = 80;

/** A fixed-format card: an integer or logical right-justified to column 30, a string quoted from column 11. */
function card(keyword: string, value: number | boolean | string, comment?: string): string {
  const field =
    typeof value === 'string'
      ? `'${value.replace(/'/g, "''").padEnd(8)}'`.padEnd(20)
      : typeof value === 'boolean'
        ? (value ? 'T' : 'F').padStart(20)
        : String(value).padStart(20);
  const text = `${keyword.padEnd(8)}= ${field}${comment ? ` / ${comment}` : ''}`;
  if (text.length > CARD) throw new UsageError(`FITS card ${keyword} does not fit in 80 characters`);
  return text.padEnd(CARD);
}

/** Cards and END, padded with blanks to whole blocks. */
function headerBytes(cards: string[]): Uint8Array {
  const text = [...cards, 'END'.padEnd(CARD)].join('');
  const padded = text.padEnd(Math.ceil(text.length / BLOCK) * BLOCK);
  return Uint8Array.from(padded, (c) => c.charCodeAt(0));
}

const paddedLength = (bytes: number) => Math.ceil(bytes / BLOCK) * BLOCK;

/** The file's bytes: header and data of the image cube, then of the table, each padded to whole blocks. */
export function writeFitsSurvey(survey: FitsSurvey): Uint8Array {
  const { images, imageShape, columns } = survey;
  const perObject = imageShape.reduce((a, b) => a * b, 1);
  const objects = perObject > 0 ? images.length / perObject : 0;
  if (!Number.isInteger(objects)) {
    throw new UsageError(`${images.length} image values are not a whole number of [${imageShape.join(', ')}] images`);
  }
  for (const column of columns) {
    if (column.values.length !== objects * (column.perRow ?? 1)) {
      throw new UsageError(
        `column ${column.name} holds ${column.values.length} values; ${objects} rows of ${column.perRow ?? 1} need ${objects * (column.perRow ?? 1)}`,
      );
    }
  }

  const axes = [...imageShape].reverse().concat(objects); // NAXIS1 first
  const primaryHeader = headerBytes([
    card('SIMPLE', true, 'conforms to FITS standard'),
    card('BITPIX', -32, 'array data type'),
    card('NAXIS', axes.length, 'number of array dimensions'),
    ...axes.map((n, i) => card(`NAXIS${i + 1}`, n)),
    card('EXTEND', true),
  ]);

  const itemSizes = columns.map((c) => c.values.BYTES_PER_ELEMENT);
  const rowBytes = columns.reduce((sum, c, i) => sum + (c.perRow ?? 1) * itemSizes[i], 0);
  const tableHeader = headerBytes([
    card('XTENSION', 'BINTABLE', 'binary table extension'),
    card('BITPIX', 8, 'array data type'),
    card('NAXIS', 2, 'number of array dimensions'),
    card('NAXIS1', rowBytes, 'length of dimension 1'),
    card('NAXIS2', objects, 'length of dimension 2'),
    card('PCOUNT', 0, 'number of group parameters'),
    card('GCOUNT', 1, 'number of groups'),
    card('TFIELDS', columns.length, 'number of table fields'),
    ...columns.flatMap((c, i) => [
      card(`TTYPE${i + 1}`, c.name),
      card(`TFORM${i + 1}`, `${(c.perRow ?? 1) === 1 ? '' : c.perRow}${c.values instanceof Float64Array ? 'D' : 'E'}`),
    ]),
    card('EXTNAME', survey.tableName ?? 'CATALOG', 'extension name'),
  ]);

  const imageBytes = images.byteLength;
  const tableBytes = rowBytes * objects;
  const out = new Uint8Array(primaryHeader.length + paddedLength(imageBytes) + tableHeader.length + paddedLength(tableBytes));
  let at = 0;
  out.set(primaryHeader, at);
  at += primaryHeader.length;
  // FITS is big-endian: the values are copied, then swapped in the copy.
  const imageData = out.subarray(at, at + imageBytes);
  imageData.set(new Uint8Array(images.buffer, images.byteOffset, imageBytes));
  swapBytes(imageData, 4);

  at += paddedLength(imageBytes);
  out.set(tableHeader, at);
  at += tableHeader.length;

  const table = new DataView(out.buffer, at, tableBytes);
  let fieldOffset = 0;
  columns.forEach((column, i) => {
    const perRow = column.perRow ?? 1;
    const float64 = column.values instanceof Float64Array;
    for (let row = 0; row < objects; row++) {
      for (let k = 0; k < perRow; k++) {
        const offset = row * rowBytes + fieldOffset + k * itemSizes[i];
        const value = column.values[row * perRow + k];
        if (float64) table.setFloat64(offset, value);
        else table.setFloat32(offset, value);
      }
    }
    fieldOffset += perRow * itemSizes[i];
  });
  return out;
}
