import { z } from 'zod';
import { CaiError } from '../errors';
import type { TensorFeed } from '../partitions/partition';
import type { OnnxSignature, ValueInfo } from './onnx-signature';

/**
 * A model card: how a partition feeds a model and what its outputs mean, small enough to write by
 * hand (model/README.md, "Writing a card"). Beside `<model>.onnx` as `<model>.card.json`, or in the
 * ONNX file's metadata under `cai.card`. Each graph input takes one partition tensor, by position
 * (a TensorDataset, or a dict's tensors in order) or by key (a dict of tensors); each output has a
 * task: `regression` (a value per object), `classification` (scores over named classes) or `score`
 * (one number per object, high meaning unusual), each with an optional label tensor.
 */
export class CardError extends CaiError {}

/** The key a card is stored under in an ONNX file's metadata. */
export const CARD_METADATA_KEY = 'cai.card';

/**
 * An array of the data, in the file's own terms: a torch position or dict key, an HDF5 dataset path,
 * a Parquet column, a FITS HDU (index or EXTNAME) or `HDU/COLUMN`, an .npz array name (docs/data.md).
 */
const TensorRef = z.union([z.number().int().min(0), z.string().min(1).max(200)]);
export type TensorRef = z.infer<typeof TensorRef>;

/** What a partition tensor may be given to a model as: widened or narrowed as the decoder does. */
export const INPUT_DTYPES = ['float32', 'int64'] as const;

const Input = z
  .strictObject({
    tensor: TensorRef,
    dtype: z.enum(INPUT_DTYPES),
    /** Each object's values read as this shape (a Parquet list of 5120 floats as [5, 32, 32]): same count, row-major. */
    shape: z.array(z.number().int().min(1)).min(1).max(8).optional(),
    /** The file holds each object channel-last ([H, W, C]); the model is given it channel-first. */
    channelsLast: z.boolean().optional(),
    /** The model is given value × scale + offset (uint8 0–255 → 0–1: scale 0.00392156862745098). */
    scale: z.number().finite().optional(),
    offset: z.number().finite().optional(),
  })
  .refine(
    (input) =>
      input.dtype === 'float32' || (input.scale === undefined && input.offset === undefined && !input.channelsLast && !input.shape),
    { message: 'shape, scale, offset and channelsLast apply to float32 inputs only' },
  );
const Output = z.discriminatedUnion('task', [
  z.strictObject({ task: z.literal('regression'), label: TensorRef.optional() }),
  z.strictObject({
    task: z.literal('classification'),
    classes: z.array(z.string().min(1).max(100)).min(2).max(1000),
    scores: z.enum(['logits', 'probabilities']),
    label: TensorRef.optional(),
  }),
  z.strictObject({ task: z.literal('score'), label: TensorRef.optional() }),
]);

const Card = z.strictObject({
  name: z.string().min(1).max(100).optional(),
  version: z.string().min(1).max(50).optional(),
  description: z.string().max(1000).optional(),
  inputs: z.record(z.string().min(1), Input).refine((inputs) => Object.keys(inputs).length > 0, 'a card names at least one input'),
  outputs: z.record(z.string().min(1), Output).refine((outputs) => Object.keys(outputs).length > 0, 'a card names at least one output'),
  batchSize: z.number().int().min(1).max(16384).optional(),
});

export type ModelCard = z.infer<typeof Card>;
export type CardOutput = z.infer<typeof Output>;
export type Task = CardOutput['task'];

/** Parses a card's JSON text; a CardError says, in one line, what is wrong first. */
export function parseCard(text: string, where: string): ModelCard {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new CardError(`${where}: the card is not JSON: ${(error as Error).message}`, { cause: error });
  }
  const parsed = Card.safeParse(json);
  if (!parsed.success) {
    const [issue] = parsed.error.issues;
    const path = issue.path.length ? issue.path.join('.') : '(card)';
    throw new CardError(`${where}: card ${path}: ${issue.message}`);
  }
  return parsed.data;
}

const shapeText = (shape: ValueInfo['shape']) => `[${shape.map((d) => d ?? '?').join(', ')}]`;

/** The card fits the graph: the same inputs, the dtypes it wants, outputs it has of the shape each task needs. */
export function checkCardAgainstGraph(card: ModelCard, graph: OnnxSignature, where: string): void {
  const fail = (message: string) => {
    throw new CardError(`${where}: ${message}`);
  };
  const graphInputs = new Map(graph.inputs.map((i) => [i.name, i]));
  const graphOutputs = new Map(graph.outputs.map((o) => [o.name, o]));
  const names = (m: Map<string, unknown>) => [...m.keys()].join(', ');
  for (const name of Object.keys(card.inputs)) {
    if (!graphInputs.has(name)) fail(`the card names input ${name}, which the graph lacks (its inputs: ${names(graphInputs)})`);
  }
  for (const [name, info] of graphInputs) {
    const input = card.inputs[name];
    if (!input) fail(`the graph's input ${name} is not in the card (the card feeds ${Object.keys(card.inputs).join(', ')})`);
    if (input.dtype !== info.dtype) fail(`input ${name}: the card says ${input.dtype}, the graph wants ${info.dtype}`);
  }
  for (const [name, output] of Object.entries(card.outputs)) {
    const info = graphOutputs.get(name);
    if (!info) fail(`the card names output ${name}, which the graph lacks (its outputs: ${names(graphOutputs)})`);
    if (info!.dtype !== 'float32') fail(`output ${name}: CAI reads float32 outputs, the graph's is ${info!.dtype}`);
    const perObject = info!.shape.slice(1);
    if (output.task === 'classification') {
      const classes = perObject.length === 1 ? perObject[0] : null;
      if (perObject.length !== 1)
        fail(`output ${name}: a classification is one score per class, the graph's output is ${shapeText(info!.shape)}`);
      if (typeof classes === 'number' && classes !== output.classes.length) {
        fail(`output ${name}: the card names ${output.classes.length} classes, the graph's output has ${classes}`);
      }
    } else if (!(perObject.length === 0 || (perObject.length === 1 && perObject[0] === 1))) {
      fail(`output ${name}: a ${output.task} is one value per object, the graph's output is ${shapeText(info!.shape)}`);
    }
  }
}

/** The card stored in an ONNX file's metadata, if there is one. */
export function cardFromMetadata(graph: OnnxSignature, where: string): ModelCard | undefined {
  const text = graph.metadata[CARD_METADATA_KEY];
  return text === undefined ? undefined : parseCard(text, `${where} (metadata ${CARD_METADATA_KEY})`);
}

/** Where a model's card lies beside it: `<model>.card.json` for `<model>.onnx`. */
export const cardKeyFor = (modelKey: string) => `${modelKey.replace(/\.onnx$/i, '')}.card.json`;

/** Each feed's shape of one object, as a partition holds it (TensorPartition.feeds). */
export type FeedShapes = Record<string, { rowShape: number[] }>;

/**
 * The partition's tensors fit the graph: each input's shape per object is the graph input's (its
 * fixed dimensions), each label one value per object. A PartitionLayoutError-worthy line otherwise,
 * naming the input and the tensor.
 */
export function partitionMisfit(card: ModelCard, graph: OnnxSignature, feeds: FeedShapes): string | undefined {
  const graphInputs = new Map(graph.inputs.map((i) => [i.name, i]));
  for (const [name, input] of Object.entries(card.inputs)) {
    const feed = feeds[name];
    const wanted = graphInputs.get(name)?.shape.slice(1) ?? [];
    const tensor = typeof input.tensor === 'number' ? `tensor ${input.tensor}` : `tensor "${input.tensor}"`;
    if (!feed) return `input ${name}: the partition has no ${tensor}`;
    const fits = feed.rowShape.length === wanted.length && wanted.every((d, i) => typeof d !== 'number' || d === feed.rowShape[i]);
    if (!fits)
      return `input ${name}: the partition's ${tensor} is [N, ${feed.rowShape.join(', ')}] per object, the graph wants ${shapeText(graphInputs.get(name)!.shape)}`;
  }
  for (const [name, output] of Object.entries(card.outputs)) {
    const label = feeds[`label:${name}`];
    if (label && !(label.rowShape.length === 0 || (label.rowShape.length === 1 && label.rowShape[0] === 1))) {
      return `output ${name}: its label tensor ${JSON.stringify(output.label)} is [N, ${label.rowShape.join(', ')}], not one value per object`;
    }
  }
  return undefined;
}

/** The feeds a partition is opened with for a card: its inputs, and each output's label (optional). */
export function cardFeeds(card: ModelCard): TensorFeed[] {
  return [
    ...Object.entries(card.inputs).map(([name, { tensor, dtype, shape, channelsLast, scale, offset }]) => ({
      name,
      tensor,
      dtype,
      ...(shape || channelsLast || scale !== undefined || offset !== undefined
        ? { transform: { shape, channelsLast, scale, offset } }
        : {}),
    })),
    ...Object.entries(card.outputs)
      .filter(([, output]) => output.label !== undefined)
      .map(([name, output]) => ({ name: `label:${name}`, tensor: output.label!, dtype: 'float32' as const, optional: true })),
  ];
}
