import { CaiError } from '../errors';
import type { ByteSource } from '../tensors/byte-source';

/**
 * An ONNX model's signature, read from the file without loading it: the graph's inputs and outputs
 * (names, element types, shapes), the model's metadata properties, and what a runtime must support
 * to load it (its IR version, the operator sets it imports, its local functions' domains). Only what
 * these need is read: the weights (the graph's initializers, most of the file) are skipped by their
 * lengths, so a model in S3 is checked with a few small ranged reads. The layout is onnx.proto's (ModelProto → GraphProto
 * → ValueInfoProto → TypeProto.Tensor → TensorShapeProto), in protobuf's wire format.
 */
export class OnnxError extends CaiError {}

/** A graph input or output: its element type (as CAI's cards name them) and shape (a number, a named dimension, or unknown). */
export interface ValueInfo {
  name: string;
  dtype: string;
  shape: (number | string | null)[];
}

/** An operator set the model imports (ModelProto.opset_import): '' is the default domain, ai.onnx. */
export interface OpsetImport {
  domain: string;
  version: number;
}

export interface OnnxSignature {
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  metadata: Record<string, string>;
  /** ModelProto.ir_version (0 when absent). */
  irVersion: number;
  opsets: OpsetImport[];
  /** Domains of the model's local functions (ModelProto.functions): operators it defines itself. */
  functionDomains: string[];
}

/** onnx.proto's TensorProto.DataType, by the names CAI's cards use. */
const ELEMENT_TYPES: Record<number, string> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
};

/** Bytes read at a time: one request covers many small fields; large ones are skipped without reading. */
const WINDOW = 64 * 1024;
/** A string or shape in a signature is small; anything larger is not one. */
const MAX_SMALL_FIELD = 1 << 20;

/** A read position over a byte source, with one window of bytes in hand. */
class Cursor {
  private window: Uint8Array = new Uint8Array(0);
  private windowStart = 0;
  constructor(
    private readonly source: ByteSource,
    public pos: number,
  ) {}

  private async ensure(length: number): Promise<void> {
    if (this.pos >= this.windowStart && this.pos + length <= this.windowStart + this.window.byteLength) return;
    if (this.pos + length > this.source.size) throw new OnnxError(`${this.source.name}: not an ONNX model: it ends inside a field`);
    const size = Math.min(Math.max(length, WINDOW), this.source.size - this.pos);
    this.window = await this.source.read(this.pos, size);
    this.windowStart = this.pos;
  }

  async varint(): Promise<number> {
    let value = 0;
    for (let shift = 0; shift < 64; shift += 7) {
      await this.ensure(1);
      const byte = this.window[this.pos++ - this.windowStart];
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) {
        if (!Number.isSafeInteger(value)) throw new OnnxError(`${this.source.name}: not an ONNX model: a number out of range`);
        return value;
      }
    }
    throw new OnnxError(`${this.source.name}: not an ONNX model: a malformed number`);
  }

  async bytes(length: number): Promise<Uint8Array> {
    if (length > MAX_SMALL_FIELD) throw new OnnxError(`${this.source.name}: not an ONNX model: a ${length}-byte name`);
    await this.ensure(length);
    const at = this.pos - this.windowStart;
    this.pos += length;
    return this.window.subarray(at, at + length);
  }

  skip(length: number, end: number): void {
    if (this.pos + length > end) throw new OnnxError(`${this.source.name}: not an ONNX model: a field runs past its message`);
    this.pos += length;
  }
}

/** A field's key: its number and wire type (0 a varint, 2 length-delimited). */
const VARINT_FIELD_1 = (1 << 3) | 0;
const BYTES_FIELD_2 = (2 << 3) | 2;

const text = (bytes: Uint8Array) => new TextDecoder('utf-8', { fatal: false }).decode(bytes);

/**
 * Walks a message's fields from the cursor to `end`, calling `visit` on each length-delimited one
 * and `number` on each varint; fields `visit` leaves unread are skipped.
 */
async function walk(
  cursor: Cursor,
  end: number,
  visit: (field: number, length: number) => Promise<boolean | void>,
  number?: (field: number, value: number) => void,
): Promise<void> {
  while (cursor.pos < end) {
    const key = await cursor.varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (field === 0) throw new OnnxError(`not an ONNX model: field 0 at byte ${cursor.pos}`);
    if (wire === 0) {
      const value = await cursor.varint();
      number?.(field, value);
    } else if (wire === 1) cursor.skip(8, end);
    else if (wire === 5) cursor.skip(4, end);
    else if (wire === 2) {
      const length = await cursor.varint();
      const start = cursor.pos;
      if (start + length > end) throw new OnnxError(`not an ONNX model: a field of ${length} bytes runs past its message`);
      const read = await visit(field, length);
      // Whatever the visitor read, the next field starts after this one.
      cursor.pos = start + length;
      if (read === false) continue;
    } else throw new OnnxError(`not an ONNX model: wire type ${wire} at byte ${cursor.pos}`);
  }
}

async function readShape(cursor: Cursor, end: number): Promise<(number | string | null)[]> {
  const shape: (number | string | null)[] = [];
  await walk(cursor, end, async (field, length) => {
    if (field !== 1) return false;
    let dim: number | string | null = null;
    const dimEnd = cursor.pos + length;
    while (cursor.pos < dimEnd) {
      const key = await cursor.varint();
      if (key === VARINT_FIELD_1) dim = await cursor.varint();
      else if (key === BYTES_FIELD_2) dim = text(await cursor.bytes(await cursor.varint()));
      else if (key % 8 === 2) cursor.skip(await cursor.varint(), dimEnd);
      else if (key % 8 === 0) await cursor.varint();
      else throw new OnnxError('not an ONNX model: a malformed tensor shape');
    }
    shape.push(dim);
  });
  return shape;
}

async function readValueInfo(cursor: Cursor, end: number): Promise<ValueInfo> {
  const info: ValueInfo = { name: '', dtype: 'not a tensor', shape: [] };
  await walk(cursor, end, async (field, length) => {
    if (field === 1) info.name = text(await cursor.bytes(length));
    if (field !== 2) return false;
    // TypeProto: tensor_type (1) holds elem_type (1) and shape (2).
    await walk(cursor, cursor.pos + length, async (typeField, typeLength) => {
      if (typeField !== 1) return false;
      const tensorEnd = cursor.pos + typeLength;
      while (cursor.pos < tensorEnd) {
        const key = await cursor.varint();
        if (key === VARINT_FIELD_1) {
          const type = await cursor.varint();
          info.dtype = ELEMENT_TYPES[type] ?? `element type ${type}`;
        } else if (key === BYTES_FIELD_2) {
          const shapeLength = await cursor.varint();
          info.shape = await readShape(cursor, cursor.pos + shapeLength);
        } else if (key % 8 === 2) cursor.skip(await cursor.varint(), tensorEnd);
        else if (key % 8 === 0) await cursor.varint();
        else throw new OnnxError('not an ONNX model: a malformed tensor type');
      }
    });
  });
  return info;
}

/** Reads a model's signature from a byte source (a file, an S3 object); an OnnxError names what is wrong. */
export async function readOnnxSignature(source: ByteSource): Promise<OnnxSignature> {
  const signature: OnnxSignature = { inputs: [], outputs: [], metadata: {}, irVersion: 0, opsets: [], functionDomains: [] };
  const cursor = new Cursor(source, 0);
  const initializers = new Set<string>();
  let graphs = 0;
  try {
    await walk(
      cursor,
      source.size,
      async (field, length) => {
        const end = cursor.pos + length;
        if (field === 7) {
          graphs++;
          // GraphProto: nodes (1) are skipped; of initializers (5) only the name (TensorProto's 8) is
          // read, their data skipped; inputs (11) and outputs (12) are read.
          await walk(cursor, end, async (graphField, graphLength) => {
            if (graphField === 11) signature.inputs.push(await readValueInfo(cursor, cursor.pos + graphLength));
            else if (graphField === 12) signature.outputs.push(await readValueInfo(cursor, cursor.pos + graphLength));
            else if (graphField === 5)
              await walk(cursor, cursor.pos + graphLength, async (tensorField, tensorLength) => {
                if (tensorField === 8) initializers.add(text(await cursor.bytes(tensorLength)));
                else return false;
              });
            else return false;
          });
        } else if (field === 14) {
          let key = '';
          let value = '';
          await walk(cursor, end, async (entryField, entryLength) => {
            if (entryField === 1) key = text(await cursor.bytes(entryLength));
            else if (entryField === 2) value = text(await cursor.bytes(entryLength));
            else return false;
          });
          signature.metadata[key] = value;
        } else if (field === 8) {
          // OperatorSetIdProto: domain (1), version (2).
          const opset: OpsetImport = { domain: '', version: 0 };
          await walk(
            cursor,
            end,
            async (opsetField, opsetLength) => {
              if (opsetField === 1) opset.domain = text(await cursor.bytes(opsetLength));
              else return false;
            },
            (opsetField, value) => {
              if (opsetField === 2) opset.version = value;
            },
          );
          signature.opsets.push(opset);
        } else if (field === 25) {
          // FunctionProto: of its fields only the domain (10); its nodes are skipped.
          await walk(cursor, end, async (functionField, functionLength) => {
            if (functionField !== 10) return false;
            const domain = text(await cursor.bytes(functionLength));
            if (!signature.functionDomains.includes(domain)) signature.functionDomains.push(domain);
          });
        } else return false;
      },
      (field, value) => {
        if (field === 1) signature.irVersion = value;
      },
    );
  } catch (error) {
    if (error instanceof OnnxError)
      throw new OnnxError(`${source.name}: ${error.message.replace(`${source.name}: `, '')}`, { cause: error });
    throw error;
  }
  if (graphs !== 1 || !signature.inputs.length || !signature.outputs.length) {
    throw new OnnxError(`${source.name}: not an ONNX model: ${graphs ? 'its graph has no inputs or no outputs' : 'it holds no graph'}`);
  }
  // Older exports list the weights among the graph's inputs: those have initializers and are not fed.
  signature.inputs = signature.inputs.filter((input) => !initializers.has(input.name));
  return signature;
}
