import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { s3Source, type ByteSource } from '../tensors/byte-source';
import { countsSince, requestCounts } from '../aws/clients';
import { CaiError, describeError, PartitionLayoutError, RankError } from '../errors';
import { partitionMisfit, type ModelCard } from '../model/card';
import type { OnnxSignature } from '../model/onnx-signature';
import { cardFeeds } from '../model/card';
import { runPartition, type OnnxModel } from '../model/session';
import { peakRssMb } from '../model/peak-rss';
import { openPartition } from '../partitions/partition';
import { mergeOutputStatistics, outputStatistics, type OutputStatistics } from '../model/task-statistics';
import { predictionsCsv } from '../model/predictions';
import type { PartitionFailure, RankItem, RankResult } from './contracts';
import { outputKeys } from './output-keys';
import { partitionName } from './partition-name';

export interface RankContext {
  s3: S3Client;
  model: OnnxModel;
  /** How partitions feed the model and what its outputs mean. */
  card: ModelCard;
  /** The model graph's inputs and outputs, which each partition's tensors must fit. */
  signature: OnnxSignature;
  /** 'deployed', or the run's model as s3://bucket/key#etag. */
  modelId: string;
  /** Seconds this invocation spent fetching and loading a run's model before the rank began (0: the container held it). */
  modelLoadSeconds?: number;
  /** Of those, the seconds downloading it. */
  modelFetchSeconds?: number;
  /** Seconds this invocation waited before its first read (firstReadWaitMs), before the rank began: the rank's, and billed. */
  firstReadWaitSeconds?: number;
  memoryMb: number;
  /** Inference workers the model runs batches on. */
  workers: number;
  /** For items whose payload gave no batch_size. */
  batchSize: number;
  /** INIT seconds of this container when this is its first invocation, else 0. */
  initSeconds: number;
  /** This invocation's request id: the result names it, completing its attempt record (attempts.ts). */
  requestId?: string;
  /** The state machine's attempt number for this rank (RankInvocation.attempt). */
  attempt?: number;
  /**
   * This invocation's time so far (ms), from the handler's clock: what Lambda bills, before the rank
   * began too (a cold start's jitter, the attempt's start record, a run model's fetch). Unset: the rank's own clock.
   */
  invocationMs?: () => number;
}

/** A source that keeps the wall time and bytes of its reads. */
function timed(source: ByteSource, into: { seconds: number; bytes: number }): ByteSource {
  return {
    ...source,
    async read(offset, length, buffer) {
      const start = process.hrtime.bigint();
      try {
        return await source.read(offset, length, buffer);
      } finally {
        into.seconds += Number(process.hrtime.bigint() - start) / 1e9;
        into.bytes += length;
      }
    },
    close: () => source.close(),
  };
}

/**
 * The longest pause before a cold rank's first read: the ranks of a run's first wave (all cold
 * starts) spread their first requests over up to 2 s (2 ms a rank), keeping a thousand ranks'
 * first GETs near S3's 5,500 a second per prefix rather than all in the same instant.
 */
export const firstReadJitterMs = (worldSize: number): number => Math.min(2000, 2 * worldSize);

/**
 * How long an invocation waits before its first read, ms: a cold start (its container's first
 * invocation, `initSeconds` > 0) a random share of firstReadJitterMs; a warm one not at all, as the
 * ranks that start together are the cold ones.
 */
export const firstReadWaitMs = (initSeconds: number, worldSize: number, random: () => number = Math.random): number =>
  initSeconds > 0 ? random() * firstReadJitterMs(worldSize) : 0;

const seconds = (since: bigint) => Number(process.hrtime.bigint() - since) / 1e9;

/**
 * Runs one rank: every partition of the item through the model, predictions and the rank result
 * to S3. A partition that cannot be read (missing, corrupt, refused, wrong layout) is recorded as
 * a failure and the rank goes on; any other error (S3 down, an inference worker dead: a RankError)
 * is thrown, so that the state machine retries the rank.
 */
export async function runRank(item: RankItem, context: RankContext): Promise<RankResult> {
  const started = process.hrtime.bigint();
  // The invocation began when it began to wait for its first read, then to load the model: that time is the rank's, and billed.
  const modelLoad = context.modelLoadSeconds ?? 0;
  const firstReadWait = context.firstReadWaitSeconds ?? 0;
  const before = firstReadWait + modelLoad;
  const startedAt = new Date(Date.now() - before * 1000).toISOString();
  const cpuBefore = process.cpuUsage();
  const requestsBefore = requestCounts();
  const keys = outputKeys(item.resultPath, item.runId);
  const batchSize = item.batchSize ?? context.batchSize;
  const download = { seconds: 0, bytes: 0 };
  let open = 0;
  let inference = 0;
  let readWait = 0;
  let batches = 0;
  const done: RankResult['partitions'] = [];
  const failures: PartitionFailure[] = [];
  const csv: string[] = [];
  const statistics: Record<string, OutputStatistics | null> = {};
  let nonFinite = 0;

  for (const partition of item.partitions) {
    const name = partitionName(partition);
    const openStart = process.hrtime.bigint();
    try {
      const source = timed(await s3Source(context.s3, item.dataBucket, partition.key), download);
      const reader = await openPartition(source, cardFeeds(context.card), partition.rows);
      open += seconds(openStart);
      try {
        const misfit = partitionMisfit(context.card, context.signature, reader.feeds);
        if (misfit) throw new PartitionLayoutError(`${source.name}: ${misfit}`);
        const result = await runPartition(context.model, context.card, reader, batchSize);
        inference += result.inferenceSeconds;
        readWait += result.readWaitSeconds;
        batches += result.batches;
        nonFinite += result.nonFinite;
        const columns = Object.entries(context.card.outputs).map(([name, output]) => ({
          name,
          output,
          ...result.outputs[name],
          labels: result.labels[name],
        }));
        for (const column of columns) {
          const stats = outputStatistics(column.output, column.values, name, column.labels);
          statistics[column.name] = mergeOutputStatistics(statistics[column.name] ?? null, stats);
        }
        const rows = predictionsCsv(partition.key, columns, reader.samples, reader.firstRow);
        csv.push(csv.length === 0 ? rows : rows.slice(rows.indexOf('\n') + 1));
        done.push({ key: name, bytes: partition.rows ? partition.bytes : source.size, samples: reader.samples });
      } finally {
        await reader.close();
      }
    } catch (error) {
      if (!(error instanceof CaiError) || error instanceof RankError) throw error;
      failures.push({ partition: name, rank: item.rank, error: describeError(error) });
    }
  }

  const uploadStart = process.hrtime.bigint();
  const predictionsKey = csv.length ? keys.predictions(item.rank) : null;
  if (predictionsKey) {
    await context.s3.send(
      new PutObjectCommand({ Bucket: item.resultBucket, Key: predictionsKey, Body: csv.join(''), ContentType: 'text/csv' }),
    );
  }
  const samples = done.reduce((n, p) => n + p.samples, 0);
  const bytes = done.reduce((n, p) => n + p.bytes, 0);
  const cpu = process.cpuUsage(cpuBefore);
  const peakRss = peakRssMb();
  const total = seconds(started) + before;
  // The result's own upload is the last request; it is counted before it is sent.
  const requests = countsSince(requestsBefore);
  requests.s3Put += 1;
  const result: RankResult = {
    'total_cpu_time (seconds)': (cpu.user + cpu.system) / 1e6,
    'total_cpu_memory (MB)': peakRss,
    'execution_time (seconds/batch)': batches ? inference / batches : 0,
    num_batches: batches,
    batch_size: batchSize,
    device: 'cpu',
    throughput_bps: total > 0 ? (bytes * 8) / total : 0,
    sample_persec: total > 0 ? samples / total : 0,
    result_path: item.resultPath,
    data_path: item.partitions.map(partitionName).join(','),
    run_id: item.runId,
    rank: item.rank,
    world_size: item.worldSize,
    partitions: done,
    failures,
    samples,
    bytes,
    wall_s: {
      total,
      download: download.seconds,
      open,
      inference,
      read_wait: readWait,
      upload: seconds(uploadStart),
      model_load: modelLoad,
      model_fetch: context.modelFetchSeconds ?? 0,
      first_read_wait: firstReadWait,
    },
    model: { id: context.modelId, name: context.card.name, version: context.card.version },
    init_s: context.initSeconds,
    cold_start: context.initSeconds > 0,
    peak_rss_mb: peakRss,
    memory_configured_mb: context.memoryMb,
    inference_workers: context.workers,
    // Billed: the whole invocation up to the result's PUT, which follows (docs/architecture.md, Cost).
    duration_ms: context.invocationMs ? context.invocationMs() : total * 1000,
    requests,
    predictions_key: predictionsKey,
    non_finite_predictions: nonFinite,
    statistics: Object.fromEntries(Object.entries(statistics).filter((e): e is [string, OutputStatistics] => e[1] !== null)),
    started_at: startedAt,
    request_id: context.requestId,
    attempt: context.attempt,
  };
  await context.s3.send(
    new PutObjectCommand({
      Bucket: item.resultBucket,
      Key: keys.rank(item.rank),
      Body: JSON.stringify(result),
      ContentType: 'application/json',
    }),
  );
  return result;
}
