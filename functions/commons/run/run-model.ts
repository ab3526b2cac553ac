import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { parseS3Uri } from '../aws/s3-uri';
import { describeError } from '../errors';
import { cardFromMetadata, cardKeyFor, checkCardAgainstGraph, parseCard, partitionMisfit, type ModelCard } from '../model/card';
import type { ModelObject } from './contracts';
import { readOnnxSignature } from '../model/onnx-signature';
import { runtimeMisfit } from '../model/runtime-support';
import { cardFeeds } from '../model/card';
import { openPartition } from '../partitions/partition';
import { s3Source } from '../tensors/byte-source';
import type { PartitionObject } from './contracts';

/**
 * A run's own model (the payload's `model`), checked before any rank starts: readable from a bucket
 * the functions may read models from, small enough for the inference function's /tmp, an ONNX file
 * the packed ONNX Runtime can load (IR version, opsets), whose card (beside it, or in its metadata)
 * parses and fits its graph, and whose inputs the run's first partition can feed. Each refusal is one line naming what is wrong.
 */
export class ModelRefusal extends Error {}

/** The run's model as the ranks receive it (RankItem.model), with the card the initializer read. */
export interface RunModel {
  uri: string;
  object: ModelObject;
  card: ModelCard;
}

/** What the initializer knows of where models may come from and how much room they have. */
export interface ModelLimits {
  /** The control bucket, whose models/ folder the inference function may read. */
  controlBucket: string;
  /** Buckets the inference function may read any model from: the template's ModelBucketNames. */
  buckets: string[];
  /** The inference function's /tmp, in bytes (its ephemeral storage), less what it needs for itself. */
  storageBytes: number;
}

/** Where models go in the control bucket: the only folder of it the inference function may read. */
export const CONTROL_MODELS_FOLDER = 'models/';

/** Of the inference function's /tmp, what a run's model may take: the rest is kept for the function's own files. */
export const RESERVED_TMP_BYTES = 64 * 1024 * 1024;
export const modelStorageBytes = (ephemeralMb: number) => ephemeralMb * 1024 * 1024 - RESERVED_TMP_BYTES;

const status = (error: unknown) => (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

export async function resolveRunModel(
  uri: string,
  first: PartitionObject,
  dataBucket: string,
  s3: S3Client,
  limits: ModelLimits,
): Promise<RunModel> {
  const { bucket, key } = parseS3Uri(uri, 'model');
  if (bucket === limits.controlBucket && !key.startsWith(CONTROL_MODELS_FOLDER)) {
    throw new ModelRefusal(
      `model ${uri}: in the control bucket, models go under ${CONTROL_MODELS_FOLDER} (the inference function reads only there)`,
    );
  }
  if (bucket !== limits.controlBucket && !limits.buckets.includes(bucket)) {
    const allowed = [`s3://${limits.controlBucket}/${CONTROL_MODELS_FOLDER}`, ...limits.buckets.map((b) => `s3://${b}/`)].join(', ');
    throw new ModelRefusal(
      `model ${uri}: the functions may read models only from ${allowed}; add ${bucket} to the template's ModelBucketNames to run models from it`,
    );
  }
  let head;
  try {
    head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  } catch (error) {
    const code = status(error);
    throw new ModelRefusal(
      code === 404
        ? `model ${uri} does not exist`
        : code === 403
          ? `model ${uri} is not readable (403)`
          : `cannot read model ${uri}: ${describeError(error)}`,
    );
  }
  const bytes = head.ContentLength ?? 0;
  if (bytes > limits.storageBytes) {
    throw new ModelRefusal(
      `model ${uri} is ${bytes} bytes; the inference function's /tmp holds ${limits.storageBytes}: raise the template's InferenceEphemeralStorage`,
    );
  }
  const source = await s3Source(s3, bucket, key);
  let signature;
  try {
    signature = await readOnnxSignature(source);
  } catch (error) {
    throw new ModelRefusal(`model ${describeError(error)}`);
  }
  const misfit = runtimeMisfit(signature);
  if (misfit) throw new ModelRefusal(`model ${uri}: ${misfit}`);
  const cardObject = { bucket, key: cardKeyFor(key), etag: '' };
  let card: ModelCard | undefined;
  let besideFound = false;
  try {
    const read = await s3.send(new GetObjectCommand({ Bucket: cardObject.bucket, Key: cardObject.key }));
    const text = await read.Body!.transformToString();
    cardObject.etag = read.ETag ?? '';
    besideFound = true;
    card = parseCard(text, `s3://${cardObject.bucket}/${cardObject.key}`);
  } catch (error) {
    if (besideFound) throw new ModelRefusal(describeError(error));
    if (status(error) !== 404 && (error as Error).name !== 'NoSuchKey')
      throw new ModelRefusal(`cannot read the card beside ${uri}: ${describeError(error)}`);
  }
  try {
    card ??= cardFromMetadata(signature, uri);
    if (!card)
      throw new ModelRefusal(`model ${uri} has no card: none at s3://${bucket}/${cardObject.key} and none in its metadata (cai.card)`);
    checkCardAgainstGraph(card, signature, uri);
  } catch (error) {
    throw error instanceof ModelRefusal ? error : new ModelRefusal(describeError(error));
  }
  // The card's inputs against the run's first partition: presence, shape per object, dtype.
  try {
    const partition = await openPartition(await s3Source(s3, dataBucket, first.key), cardFeeds(card), first.rows);
    try {
      const misfit = partitionMisfit(card, signature, partition.feeds);
      if (misfit) throw new ModelRefusal(`model ${uri} cannot run on s3://${dataBucket}/${first.key}: ${misfit}`);
    } finally {
      await partition.close();
    }
  } catch (error) {
    throw error instanceof ModelRefusal
      ? error
      : new ModelRefusal(`model ${uri} cannot run on the run's partitions: ${describeError(error)}`);
  }
  const object: ModelObject = { bucket, key, etag: head.ETag ?? '', bytes, ...(besideFound ? { card: cardObject } : {}) };
  return { uri, object, card };
}
