import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { CaiError } from '../errors';
import type { ModelObject } from './contracts';
import type { ModelCard } from '../model/card';
import { readModelFile } from '../model/model-file';
import type { OnnxSignature } from '../model/onnx-signature';
import { startInferencePool, type InferencePool } from '../model/worker-pool';

/**
 * The model an inference container runs: the deployed one, or a run's own, fetched from S3 into
 * /tmp once per container and version (its ETag), so a warm container reuses it. One model's pool is
 * held at a time: a rank of another model releases it and starts that one's.
 */
export class ModelSourceError extends CaiError {}

export interface LoadedModel {
  /** 'deployed', or s3://bucket/key#etag. */
  id: string;
  pool: InferencePool;
  card: ModelCard;
  signature: OnnxSignature;
  /** Seconds this rank spent fetching and loading it (0 when the container held it). */
  loadSeconds: number;
  /** Of those, the seconds spent downloading it from S3. */
  fetchSeconds: number;
  /** Why the pool held before was replaced rather than reused (it broke in an earlier rank). */
  replacedBroken?: string;
}

export class ModelSource {
  private current?: LoadedModel;

  constructor(
    private readonly options: {
      s3: S3Client;
      workers: number;
      workerScript: string;
      /** The deployed model and its card (the artifact's model.onnx and model.card.json). */
      deployed: { path: string; cardPath: string };
      /** Where run models are kept (Lambda's /tmp). */
      directory: string;
    },
  ) {}

  /** The deployed model, loaded at INIT. */
  async loadDeployed(): Promise<LoadedModel> {
    const { path, cardPath } = this.options.deployed;
    // The card beside it when the build copied one, else the one in its metadata.
    return this.hold('deployed', path, existsSync(cardPath) ? await readFile(cardPath, 'utf8') : undefined);
  }

  /**
   * The model a rank runs: the one held when it is the same and its pool still works, else fetched
   * and loaded. A pool broken in an earlier rank (a worker died) is replaced, never handed on.
   */
  async forItem(model?: ModelObject): Promise<LoadedModel> {
    const id = model ? `s3://${model.bucket}/${model.key}#${model.etag.replace(/"/g, '')}` : 'deployed';
    const broken = this.current?.pool.broken;
    if (this.current?.id === id && !broken) return { ...this.current, loadSeconds: 0, fetchSeconds: 0 };
    const started = performance.now();
    const loaded = model ? await this.fetchAndHold(id, model) : await this.loadDeployed();
    return { ...loaded, loadSeconds: (performance.now() - started) / 1000, ...(broken ? { replacedBroken: broken.message } : {}) };
  }

  private async fetchAndHold(id: string, model: ModelObject): Promise<LoadedModel> {
    const { s3, directory } = this.options;
    await mkdir(directory, { recursive: true });
    // By version and process: containers of the local stack share one disk (on Lambda each has its own /tmp).
    const path = join(directory, `${model.etag.replace(/[^A-Za-z0-9]/g, '')}-${process.pid}.onnx`);
    const free = await statfs(directory).then((s) => s.bavail * s.bsize);
    if (model.bytes > free) {
      throw new ModelSourceError(
        `${id}: the model is ${model.bytes} bytes, more than the ${free} free in ${directory}: raise InferenceEphemeralStorage`,
      );
    }
    const fetchStarted = performance.now();
    let cardText: string | undefined;
    if (model.card) {
      // The card as validated, like the model: one overwritten since is refused (412), never paired with the model.
      const card = await s3.send(new GetObjectCommand({ Bucket: model.card.bucket, Key: model.card.key, IfMatch: model.card.etag }));
      cardText = await card.Body!.transformToString();
    }
    const object = await s3.send(new GetObjectCommand({ Bucket: model.bucket, Key: model.key, IfMatch: model.etag }));
    const partial = `${path}.partial`;
    await pipeline(object.Body as NodeJS.ReadableStream, createWriteStream(partial));
    await rename(partial, path);
    const fetchSeconds = (performance.now() - fetchStarted) / 1000;
    try {
      return { ...(await this.hold(id, path, cardText)), fetchSeconds };
    } finally {
      // The sessions have read the file; the disk is free for the next one.
      await rm(path, { force: true });
    }
  }

  private async hold(id: string, path: string, cardText?: string): Promise<LoadedModel> {
    const { card, signature } = await readModelFile(path, cardText);
    await this.current?.pool.release();
    this.current = undefined;
    const pool = await startInferencePool({ modelPath: path, workers: this.options.workers, workerScript: this.options.workerScript });
    this.current = { id, pool, card, signature, loadSeconds: 0, fetchSeconds: 0 };
    return this.current;
  }
}
