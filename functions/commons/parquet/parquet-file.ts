import { parquetMetadata, parquetSchema, type ColumnMetaData, type FileMetaData, type SchemaTree } from 'hyparquet';
import { ArchiveError, CaiError, UnsupportedTensorError } from '../errors';
import type { ByteSource } from '../tensors/byte-source';
import { DTYPES, type DType, type TensorData } from '../tensors/dtype';
import { describeTensors, type StoredTensor, type TensorFile } from '../tensors/tensor-file';
import { isSupportedCodec, unsupportedCodec, type Codec } from './codecs';
import { readChunk, refused, type ChunkFindings, type ChunkRead, type LeafColumn } from './column-chunk';

/**
 * Parquet files as tensors. A numeric column is a tensor [rows]; a list column of numbers whose rows
 * all hold the same count L is a tensor [rows, L] (pyarrow's fixed_size_list<float>[N] and a
 * list<float> of images flattened alike). The footer (schema, row groups, column chunk offsets) is
 * read once at open; rows are read by row group, fetching only the column chunks of the row groups
 * that overlap the rows asked for, and decoded page by page into the output.
 *
 * A list column's length comes from the footer: each row group counts its column's values, so L is
 * values / rows when that is a whole number, the same in every row group. Rows of different lengths
 * that happen to average L are caught as the rows are read. Where the footer already shows nulls or
 * unequal lengths, the first such row group's chunk is read at open (when not too large) to name the
 * null row or the range of lengths.
 */

const MAGIC = 0x31524150; // "PAR1", little-endian
/** A footer longer than this is not one CAI reads. */
const MAX_FOOTER_BYTES = 64 * 1024 * 1024;
/** The largest column chunk read at open to describe a column the footer shows to hold nulls or ragged rows. */
const SURVEY_BYTES = 64 * 1024 * 1024;
/** The most one object of a list column may hold: more is not one model input. */
const MAX_ROW_BYTES = 2 ** 31;

interface ParquetTensor {
  tensor: StoredTensor;
  leaf: LeafColumn;
  /** Index of the column chunk in each row group. */
  chunkIndex: number;
  rowLength: number;
}

interface RowGroupSpan {
  start: number;
  rows: number;
}

/** Text from the file made one printable line: control characters are shown escaped. */
export const printable = (text: string) =>
  Array.from(text, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x20 || (code >= 0x7f && code < 0xa0) || code === 0x2028 || code === 0x2029
      ? `\\u${code.toString(16).padStart(4, '0')}`
      : c;
  }).join('');

function toCount(value: unknown, what: string, name: string): number {
  const number = typeof value === 'bigint' ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < 0) {
    throw new ArchiveError(`${name}: the footer's ${what} (${String(value)}) is not a count`);
  }
  return number;
}

async function readFooter(source: ByteSource): Promise<FileMetaData> {
  const { name, size } = source;
  if (size < 12) throw new ArchiveError(`${name}: not a Parquet file: ${size} bytes is too short`);
  const head = await source.read(0, 4);
  const tail = await source.read(size - 8, 8);
  const tailView = new DataView(tail.buffer, tail.byteOffset, 8);
  if (tailView.getUint32(4, true) === 0x45524150)
    throw new UnsupportedTensorError(`${name}: an encrypted Parquet file (PARE): CAI reads unencrypted files`);
  if (new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true) !== MAGIC || tailView.getUint32(4, true) !== MAGIC) {
    throw new ArchiveError(`${name}: not a Parquet file (it does not start and end with PAR1)`);
  }
  const footerLength = tailView.getUint32(0, true);
  if (footerLength > size - 12)
    throw new ArchiveError(`${name}: its footer of ${footerLength} bytes is longer than the file (${size} bytes)`);
  if (footerLength > MAX_FOOTER_BYTES)
    throw new ArchiveError(`${name}: its footer of ${footerLength} bytes is larger than CAI reads (${MAX_FOOTER_BYTES})`);
  const footer = await source.read(size - 8 - footerLength, footerLength + 8);
  try {
    return parquetMetadata(footer, { geoparquet: false });
  } catch (error) {
    throw new ArchiveError(`${name}: unreadable Parquet footer (${printable((error as Error).message)})`, { cause: error });
  }
}

/** The dtype of a numeric leaf, or why it is not a tensor. */
function leafDType(node: SchemaTree): DType | string {
  const { type, type_length: typeLength, converted_type: converted, logical_type: logical } = node.element;
  if (logical?.type === 'STRING' || converted === 'UTF8' || logical?.type === 'ENUM' || logical?.type === 'JSON') return 'holds strings';
  if (logical && logical.type !== 'INTEGER' && logical.type !== 'FLOAT16') return `holds ${logical.type} values`;
  if (converted && !/^U?INT_(8|16|32|64)$/.test(converted)) return `holds ${converted} values`;
  const bits = logical?.type === 'INTEGER' ? logical.bitWidth : converted ? Number(converted.replace(/\D/g, '')) : undefined;
  const unsigned = logical?.type === 'INTEGER' ? !logical.isSigned : converted?.startsWith('U');
  switch (type) {
    case 'BOOLEAN':
      return 'bool';
    case 'INT32':
    case 'INT64': {
      const width = bits ?? (type === 'INT32' ? 32 : 64);
      if (![8, 16, 32, 64].includes(width)) return `holds ${width}-bit integers`;
      return `${unsigned ? 'uint' : 'int'}${width}` as DType;
    }
    case 'FLOAT':
      return 'float32';
    case 'DOUBLE':
      return 'float64';
    case 'FIXED_LEN_BYTE_ARRAY':
      return logical?.type === 'FLOAT16' && typeLength === 2 ? 'float16' : 'holds fixed-length binary values';
    case 'BYTE_ARRAY':
      return 'holds binary values';
    default:
      return `holds ${type ?? 'untyped'} values`;
  }
}

const isList = (node: SchemaTree) => node.element.converted_type === 'LIST' || node.element.logical_type?.type === 'LIST';
const isMap = (node: SchemaTree) =>
  node.element.converted_type === 'MAP' || node.element.converted_type === 'MAP_KEY_VALUE' || node.element.logical_type?.type === 'MAP';
const countLeaves = (node: SchemaTree): number => (node.children.length ? node.children.reduce((n, c) => n + countLeaves(c), 0) : 1);

interface SchemaScan {
  leaves: { name: string; leaf: LeafColumn; chunkIndex: number; path: string[] }[];
  refusals: Map<string, string>;
}

/** Names every top-level column (and struct field, dotted): a tensor's leaf, or why it is not one. */
function scanSchema(root: SchemaTree): SchemaScan {
  const scan: SchemaScan = { leaves: [], refusals: new Map() };
  let chunkIndex = 0;
  const refuse = (node: SchemaTree, name: string, why: string) => {
    scan.refusals.set(name, `column ${name} ${why}`);
    chunkIndex += countLeaves(node);
  };
  /** `definition`/`repetition`: levels of the node's parent. */
  const visit = (node: SchemaTree, name: string, definition: number, repetition: number) => {
    const { repetition_type: kind } = node.element;
    const ownDefinition = definition + (kind === 'REQUIRED' ? 0 : 1);
    if (isMap(node)) return refuse(node, name, 'is a map: not a tensor');
    if (isList(node)) {
      const repeated = node.children[0];
      if (node.children.length !== 1 || repeated.element.repetition_type !== 'REPEATED')
        return refuse(node, name, 'is a list CAI cannot read (malformed LIST)');
      // Three levels (list > repeated group > element) or two (list > repeated element).
      const element = repeated.children.length === 1 ? repeated.children[0] : repeated.children.length === 0 ? repeated : undefined;
      if (!element) return refuse(node, name, 'is a list of structs: not a tensor');
      if (isList(element) || element.element.repetition_type === 'REPEATED')
        return refuse(node, name, 'is a list of lists: CAI reads one list of numbers a row');
      if (element.children.length)
        return refuse(node, name, isMap(element) ? 'is a list of maps: not a tensor' : 'is a list of structs: not a tensor');
      const dtype = leafDType(element);
      if (!(dtype in DTYPES)) return refuse(node, name, `is a list that ${dtype}: not a tensor`);
      const repeatedDefinition = ownDefinition + 1;
      const leafDefinition =
        element === repeated ? repeatedDefinition : repeatedDefinition + (element.element.repetition_type === 'REQUIRED' ? 0 : 1);
      scan.leaves.push({
        name,
        chunkIndex: chunkIndex++,
        path: element.path,
        leaf: makeLeaf(name, element, dtype as DType, repetition + 1, leafDefinition, repeatedDefinition - 1),
      });
      return;
    }
    if (kind === 'REPEATED') return refuse(node, name, 'is a repeated field without a LIST annotation: not a tensor');
    if (node.children.length) {
      scan.refusals.set(
        name,
        `column ${name} is a struct: name one of its fields (${node.children.map((c) => `${name}.${printable(String(c.element.name))}`).join(', ')})`,
      );
      for (const child of node.children) visit(child, `${name}.${printable(String(child.element.name))}`, ownDefinition, repetition);
      return;
    }
    const dtype = leafDType(node);
    if (!(dtype in DTYPES)) return refuse(node, name, `${dtype}: not a tensor`);
    scan.leaves.push({
      name,
      chunkIndex: chunkIndex++,
      path: node.path,
      leaf: makeLeaf(name, node, dtype as DType, repetition, ownDefinition, -1),
    });
  };
  for (const child of root.children) visit(child, printable(String(child.element.name)), 0, 0);
  return scan;
}

function makeLeaf(
  name: string,
  node: SchemaTree,
  dtype: DType,
  maxRepetition: number,
  maxDefinition: number,
  emptyListDefinition: number,
): LeafColumn {
  const physical = node.element.type as LeafColumn['physical'];
  const physicalSize =
    physical === 'BOOLEAN' ? 1 : physical === 'INT32' || physical === 'FLOAT' ? 4 : physical === 'FIXED_LEN_BYTE_ARRAY' ? 2 : 8;
  return { name, physical, physicalSize, dtype, maxRepetition, maxDefinition, emptyListDefinition };
}

/** Where a column chunk's pages lie in the file. */
function chunkRange(meta: ColumnMetaData, name: string, fileName: string, dataEnd: number): { offset: number; length: number } {
  const data = toCount(meta.data_page_offset, 'data page offset', fileName);
  const dictionary =
    meta.dictionary_page_offset === undefined ? undefined : toCount(meta.dictionary_page_offset, 'dictionary page offset', fileName);
  // Some writers record a dictionary offset of 0 where there is none.
  const offset = dictionary !== undefined && dictionary > 0 && dictionary < data ? dictionary : data;
  const length = toCount(meta.total_compressed_size, 'column chunk size', fileName);
  if (offset < 4 || offset + length > dataEnd) {
    throw new ArchiveError(`${fileName}: column ${name}'s chunk at ${offset}+${length} lies outside the file's data (4..${dataEnd})`);
  }
  return { offset, length };
}

const ragged = (name: string, findings: ChunkFindings) =>
  `column ${name} is ragged (lengths ${findings.shortest}..${findings.longest}): a model input needs one length per object`;
const nullAt = (name: string, row: number) => `column ${name} has a null at row ${row}: a model input needs a value for every object`;

export async function openParquetFile(source: ByteSource): Promise<TensorFile> {
  const fileName = source.name;
  const metadata = await readFooter(source);
  const dataEnd = source.size - 8 - metadata.metadata_length;
  let scan: SchemaScan;
  try {
    scan = scanSchema(parquetSchema(metadata));
  } catch (error) {
    throw new ArchiveError(`${fileName}: unreadable Parquet schema (${printable((error as Error).message)})`, { cause: error });
  }
  const rowGroups: RowGroupSpan[] = [];
  let totalRows = 0;
  for (const group of metadata.row_groups ?? []) {
    const rows = toCount(group.num_rows, 'row count of a row group', fileName);
    rowGroups.push({ start: totalRows, rows });
    totalRows += rows;
  }
  const fileRows = toCount(metadata.num_rows, 'row count', fileName);
  if (!Number.isSafeInteger(totalRows) || totalRows !== fileRows) {
    throw new ArchiveError(`${fileName}: its row groups hold ${totalRows} rows, its footer says ${fileRows}`);
  }

  const chunkMeta = (group: number, index: number, path: string[], name: string): ColumnMetaData => {
    const chunk = metadata.row_groups[group].columns?.[index];
    const meta = chunk?.meta_data;
    if (!meta || meta.path_in_schema?.join('.') !== path.join('.')) {
      throw new ArchiveError(`${fileName}: row group ${group} has no column chunk for ${name}, as its schema says`);
    }
    if (chunk.file_path)
      throw new UnsupportedTensorError(`${fileName}: column ${name} is kept in another file (${printable(String(chunk.file_path))})`);
    return meta;
  };

  const largestGroup = rowGroups.reduce((most, g) => Math.max(most, g.rows), 1);
  const tensors: ParquetTensor[] = [];
  const refusals = scan.refusals;
  for (const { name, leaf, chunkIndex, path } of scan.leaves) {
    const metas = rowGroups.map((_, g) => chunkMeta(g, chunkIndex, path, name));
    const codec = metas.find((m) => !isSupportedCodec(m.codec))?.codec;
    if (metas.some((m) => !isSupportedCodec(m.codec))) {
      refusals.set(name, `column ${name} is ${unsupportedCodec(codec).message}`);
      continue;
    }
    let storedBytes = 0;
    const counts = metas.map((m) => {
      storedBytes += chunkRange(m, name, fileName, dataEnd).length;
      return toCount(m.num_values, `value count of column ${name}`, fileName);
    });
    const list = leaf.maxRepetition > 0;
    let rowLength = 1;
    // Where the footer shows nulls or unequal lengths: the first row group that does.
    let suspect = -1;
    if (list) {
      const lengths = rowGroups.map((g, i) => (g.rows ? counts[i] / g.rows : NaN));
      rowLength = lengths.find((l) => !Number.isNaN(l)) ?? 0;
      suspect = lengths.findIndex((l) => !Number.isNaN(l) && (l !== rowLength || !Number.isInteger(l)));
    } else {
      const mismatch = counts.findIndex((n, g) => n !== rowGroups[g].rows);
      if (mismatch >= 0)
        throw new ArchiveError(
          `${fileName}: column ${name} counts ${counts[mismatch]} values in a row group of ${rowGroups[mismatch].rows} rows`,
        );
    }
    if (suspect < 0) suspect = metas.findIndex((m) => Number(m.statistics?.null_count ?? 0) > 0);
    if (suspect >= 0) {
      refusals.set(
        name,
        await describeSuspect(source, leaf, metas[suspect], rowGroups[suspect], counts[suspect], Math.round(rowLength), dataEnd),
      );
      continue;
    }
    if (rowLength * DTYPES[leaf.dtype].itemSize > MAX_ROW_BYTES) {
      refusals.set(name, `column ${name} holds ${rowLength} values a row, more than CAI reads as one object`);
      continue;
    }
    const rows = totalRows;
    tensors.push({
      leaf,
      chunkIndex,
      rowLength,
      tensor: {
        name,
        dtype: leaf.dtype,
        shape: list ? [rows, rowLength] : [rows],
        rowsReadTogether: largestGroup,
        storedBytesPerRow: rows ? storedBytes / rows : 0,
      },
    });
  }

  // Per tensor, the last row group decoded whole because a read wanted part of it.
  const lastGroup = new Map<StoredTensor, { group: number; data: Promise<TensorData> }>();
  const byName = new Map(tensors.map((t) => [t.tensor.name, t]));
  const file: TensorFile = {
    format: 'parquet',
    name: fileName,
    size: source.size,
    tensors: tensors.map((t) => t.tensor),
    find(ref) {
      if (typeof ref === 'number') return `Parquet columns are named, not numbered: ${describeTensors(file, 'it holds columns')}`;
      const found = byName.get(ref);
      if (found) return found.tensor;
      return refusals.get(ref) ?? `no column "${ref}": ${describeTensors(file, 'it holds columns')}`;
    },
    async readRows(tensor, start, end, into) {
      const entry = byName.get(tensor.name);
      if (!entry || entry.tensor !== tensor) throw new RangeError(`${fileName}: ${tensor.name} is not a tensor of this file`);
      const rows = tensor.shape[0];
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end || end > rows) {
        throw new RangeError(`rows ${start}..${end} outside a tensor of ${rows} rows`);
      }
      const { itemSize, view } = DTYPES[tensor.dtype];
      const count = (end - start) * entry.rowLength;
      const out: TensorData =
        into && into.byteLength >= count * itemSize && into.byteOffset % itemSize === 0
          ? view(into.buffer as ArrayBuffer, into.byteOffset, count)
          : view(new ArrayBuffer(count * itemSize), 0, count);
      /** Rows [first, last) of row group g decoded into `target` from its row `at`. */
      const decodeGroup = async (g: number, first: number, last: number, target: TensorData, at: number) => {
        const group = rowGroups[g];
        const meta = chunkMeta(g, entry.chunkIndex, metaPath(metadata, g, entry.chunkIndex), tensor.name);
        const { offset, length } = chunkRange(meta, tensor.name, fileName, dataEnd);
        const bytes = await source.read(offset, length);
        const read: ChunkRead = {
          column: entry.leaf,
          codec: meta.codec as Codec,
          bytes,
          rows: group.rows,
          values: toCount(meta.num_values, 'value count', fileName),
          rowLength: entry.rowLength,
          first,
          last,
          out: target,
          at,
          groupStart: group.start,
        };
        const findings = decodeChunk(fileName, read);
        if (findings.firstNull >= 0) throw new UnsupportedTensorError(`${fileName}: ${nullAt(tensor.name, findings.firstNull)}`);
        if (refused(findings, entry.rowLength, entry.leaf.maxRepetition > 0))
          throw new UnsupportedTensorError(`${fileName}: ${ragged(tensor.name, findings)}`);
      };
      for (let g = 0; g < rowGroups.length; g++) {
        const group = rowGroups[g];
        const first = Math.max(start, group.start) - group.start;
        const last = Math.min(end, group.start + group.rows) - group.start;
        if (first >= last) continue;
        if (first === 0 && last === group.rows) {
          await decodeGroup(g, first, last, out, group.start - start);
          continue;
        }
        // Part of a group: the whole group is decoded once and kept, as a walk in chunks that do not
        // line up with the groups asks for its next part next (the memory plan holds a group a column).
        // Held as a promise: the walk reads its next chunk while this one is in hand, so both may want the group at once.
        let held = lastGroup.get(tensor);
        if (held?.group !== g) {
          const whole = view(new ArrayBuffer(group.rows * entry.rowLength * itemSize), 0, group.rows * entry.rowLength);
          held = { group: g, data: decodeGroup(g, 0, group.rows, whole, 0).then(() => whole) };
          lastGroup.set(tensor, held);
          // A failed decode is not kept: the next read tries again (and fails with its own reason).
          held.data.catch(() => lastGroup.get(tensor) === held && lastGroup.delete(tensor));
        }
        const data = (await held.data) as Float32Array;
        const at = (group.start + first - start) * entry.rowLength;
        (out as Float32Array).set(data.subarray(first * entry.rowLength, last * entry.rowLength), at);
      }
      return out;
    },
    close: () => source.close(),
  };
  return file;
}

const metaPath = (metadata: FileMetaData, group: number, index: number) =>
  metadata.row_groups[group].columns[index]?.meta_data?.path_in_schema ?? [];

/** Runs the decoder, naming the file and column on any failure that is not already a reason. */
function decodeChunk(fileName: string, read: ChunkRead): ChunkFindings {
  try {
    return readChunk(read);
  } catch (error) {
    if (error instanceof CaiError) {
      const Type = error.constructor as new (message: string, options: { cause: unknown }) => CaiError;
      throw new Type(`${fileName}: ${error.message}`, { cause: error });
    }
    throw new ArchiveError(
      `${fileName}: cannot decode column ${read.column.name} in the row group at row ${read.groupStart}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/** Reads one row group's chunk of a column the footer shows to hold nulls or unequal lengths, to say which. */
async function describeSuspect(
  source: ByteSource,
  leaf: LeafColumn,
  meta: ColumnMetaData,
  group: RowGroupSpan,
  values: number,
  rowLength: number,
  dataEnd: number,
): Promise<string> {
  const { offset, length } = chunkRange(meta, leaf.name, source.name, dataEnd);
  const list = leaf.maxRepetition > 0;
  const fallback = list
    ? `column ${leaf.name} is ragged (its row group at row ${group.start} holds ${values} values in ${group.rows} rows): a model input needs one length per object`
    : `column ${leaf.name} holds nulls (in the row group at row ${group.start}): a model input needs a value for every object`;
  if (length > SURVEY_BYTES) return fallback;
  const findings = decodeChunk(source.name, {
    column: leaf,
    codec: meta.codec as Codec,
    bytes: await source.read(offset, length),
    rows: group.rows,
    values,
    rowLength,
    first: 0,
    last: group.rows,
    at: 0,
    groupStart: group.start,
    survey: true,
  });
  if (findings.firstNull >= 0) return nullAt(leaf.name, findings.firstNull);
  if (list && findings.rowsSeen && findings.shortest !== findings.longest) return ragged(leaf.name, findings);
  return fallback;
}
