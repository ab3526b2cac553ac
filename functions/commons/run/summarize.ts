import { PutObjectCommand, paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import type { Accuracy } from '../model/accuracy';
import { mergeOutputStatistics, outputMetrics, type OutputMetrics, type OutputStatistics } from '../model/task-statistics';
import { countsSince, requestCounts, type RequestCounts } from '../aws/clients';
import type { LambdaInvocation } from '../aws/invocation';
import { billRun, prototypeCost, type Architecture, type CostBreakdown } from '../billing/cost';
import { stateTransitions, uncountedRequests, type RunShape } from '../billing/run-usage';
import { itemBytes, writeUnits } from '../billing/dynamo-units';
import pLimit from 'p-limit';
import type { SFNClient } from '@aws-sdk/client-sfn';
import {
  attemptsUsage,
  billCrashes,
  rankFailureText,
  rankRetries,
  readAttemptRecords,
  type RankEnd,
  stateErrorText,
  taskFailures,
} from './attempts';
import type {
  CrashedAttempt,
  ExecutionInput,
  ExecutionStatusChange,
  FailedAttempt,
  MapChildExecution,
  MapResultManifest,
  MapRunResult,
  PartitionFailure,
  RankItem,
  RankOutcome,
  RankResult,
  SummarizeInput,
} from './contracts';
import { outputKeys } from './output-keys';
import { partitionName } from './partition-name';
import { MAX_STORED_FAILURES, RUNS_INDEXES, UNREAD_DATASET, storable, type RunRecord, type RunStatus, type RunStore } from './run-store';
import { readJsonObject } from '../aws/s3-json';

export interface SummarizeContext {
  s3: S3Client;
  runs: RunStore;
  region: string;
  architecture: Architecture;
  /** This invocation's billing so far. */
  invocation: () => LambdaInvocation;
  /** Reads the ranks' child executions' histories, for the errors of attempts whose runtime died. */
  sfn?: SFNClient;
  /** The inference function's memory size (an attempt that died before its record is billed at it). */
  inferenceMemoryMb?: number;
  /** The inference function's ephemeral storage (MB): above 512 MB, billed over each attempt's duration. */
  inferenceEphemeralMb?: number;
  /** When this invocation must have returned (ms since the epoch; Lambda's remaining time): history reads stop in time to write the summary. */
  deadline?: number;
}

/**
 * Time kept after the last history read for what follows: combined_data.json twice, summary.json and
 * the record (bench:summarizer's whole summary of 10,240 ranks takes 12–27 s).
 */
export const SUMMARY_WRITE_MARGIN_MS = 30_000;

async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: prefix })) {
    for (const object of page.Contents ?? []) keys.push(object.Key as string);
  }
  return keys;
}

/** S3 reads the summarizer keeps in flight at once. */
export const READ_CONCURRENCY = 32;

/** The folder the ResultWriter wrote (its manifest's folder), as an s3:// URI. */
const mapResultsUri = ({ ResultWriterDetails: { Bucket, Key } }: MapRunResult) =>
  `s3://${Bucket}/${Key.slice(0, Key.lastIndexOf('/') + 1)}`;

/**
 * Every rank's outcome, from the files the Map's ResultWriter wrote: the manifest names them by the
 * child executions' status. A child that failed outright (nothing caught it) counts as a failed rank.
 */
async function readOutcomes(
  s3: S3Client,
  mapRun: MapRunResult,
): Promise<{ outcomes: Map<number, RankOutcome>; ends: Map<number, RankEnd>; files: number }> {
  const { Bucket, Key } = mapRun.ResultWriterDetails;
  const manifest = await readJsonObject<MapResultManifest>(s3, Bucket, Key);
  const outcomes = new Map<number, RankOutcome>();
  const ends = new Map<number, RankEnd>();
  if (!manifest) return { outcomes, ends, files: 0 };
  const files = Object.values(manifest.ResultFiles).flat();
  for (const file of files) {
    for (const child of (await readJsonObject<MapChildExecution[]>(s3, manifest.DestinationBucket, file.Key)) ?? []) {
      const rank = (JSON.parse(child.Input) as RankItem).rank;
      const outcome: RankOutcome =
        child.Status === 'SUCCEEDED' && child.Output
          ? (JSON.parse(child.Output) as RankOutcome)
          : { rank, status: 'FAILED', error: { Error: child.Error ?? child.Status, Cause: child.Cause } };
      outcomes.set(rank, outcome);
      const stoppedAt = child.StopDate ? Date.parse(child.StopDate) : undefined;
      ends.set(rank, { executionArn: child.ExecutionArn, stoppedAt, caught: outcome.error });
    }
  }
  return { outcomes, ends, files: files.length };
}

/** What the summarizer reads of a run: its ranks, their outcomes and results, and failed attempts. */
interface GatheredRun {
  items: RankItem[];
  outcomes: Map<number, RankOutcome>;
  /** Result files the Map's ResultWriter wrote. */
  mapResultFiles: number;
  /** Each rank's result in manifest order (undefined: the rank wrote none), its partial statistics taken out. */
  rankResults: (RankResult | undefined)[];
  /** The ranks' partial statistics of each output, merged. */
  statistics: Record<string, OutputStatistics>;
  /** Attempts whose handler caught an error, and those whose runtime died (attempts.ts). */
  failedAttempts: FailedAttempt[];
  crashedAttempts: CrashedAttempt[];
  /** Ranks whose history was not read, and attempts of theirs left out of the cost (CrashBill). */
  historiesNotRead: number;
  attemptsNotBilled: number;
  /** Attempt start records: one PUT each. */
  attemptRecords: number;
  /** The inference function's memory size, as the summarizer knows it. */
  memoryMb: number;
}

/**
 * Reads the run's manifest, the Map's outcomes, every rank's result and every failed attempt, at a
 * bounded concurrency (thousands of ranks in seconds, without a storm of sockets). Each rank's
 * partial statistics are merged as it arrives and then dropped: memory holds one merged set.
 */
async function gatherRun(input: SummarizeInput, { s3, sfn, inferenceMemoryMb, deadline }: SummarizeContext): Promise<GatheredRun> {
  const keys = outputKeys(input.resultPath, input.runId);
  const bucket = input.resultBucket;
  const items = (await readJsonObject<RankItem[]>(s3, bucket, keys.manifest)) ?? [];
  const { outcomes, ends, files } = input.mapRun
    ? await readOutcomes(s3, input.mapRun)
    : { outcomes: new Map<number, RankOutcome>(), ends: new Map<number, RankEnd>(), files: 0 };
  const limit = pLimit(READ_CONCURRENCY);
  const statistics: Record<string, OutputStatistics> = {};
  const rankResults = await Promise.all(
    items.map((item) =>
      limit(async () => {
        const result = await readJsonObject<RankResult>(s3, bucket, keys.rank(item.rank));
        if (result) {
          for (const [name, stats] of Object.entries(result.statistics ?? {})) {
            statistics[name] = mergeOutputStatistics(statistics[name] ?? null, stats)!;
          }
          result.statistics = {};
        }
        return result;
      }),
    ),
  );
  const attemptKeys = await listKeys(s3, bucket, keys.attempts);
  const { failed, started, records } = await readAttemptRecords(s3, bucket, attemptKeys, rankResults, limit);
  const memoryMb = inferenceMemoryMb ?? rankResults.reduce((most, r) => Math.max(most, r?.memory_configured_mb ?? 0), 0);
  const crashes = await billCrashes(started, {
    items,
    failed,
    results: rankResults,
    ends,
    failuresOf: sfn ? (arn, signal) => taskFailures(sfn, arn, signal) : undefined,
    historyDeadline: deadline === undefined ? undefined : deadline - SUMMARY_WRITE_MARGIN_MS,
    memoryMb,
    now: Date.now(),
  });
  return {
    items,
    outcomes,
    mapResultFiles: files,
    rankResults,
    statistics,
    failedAttempts: failed,
    crashedAttempts: crashes.crashed,
    historiesNotRead: crashes.historiesNotRead,
    attemptsNotBilled: crashes.attemptsNotBilled,
    attemptRecords: records,
    memoryMb,
  };
}

/** Every partition ends in a rank's result or in the failures: a rank that wrote none fails all of its partitions. */
function partitionOutcomes(run: GatheredRun, input: SummarizeInput): { results: RankResult[]; failures: PartitionFailure[] } {
  const results: RankResult[] = [];
  const failures: PartitionFailure[] = [];
  for (const [index, item] of run.items.entries()) {
    const result = run.rankResults[index];
    if (result) {
      results.push(result);
      for (const failure of result.failures) failures.push(failure);
    } else {
      const reason =
        input.failure && !run.outcomes.has(item.rank)
          ? stateErrorText(input.failure)
          : rankFailureText(run.outcomes.get(item.rank)?.error, item, run.crashedAttempts, run.memoryMb);
      for (const p of item.partitions) failures.push({ partition: partitionName(p), rank: item.rank, error: reason });
    }
  }
  return { results, failures };
}

/**
 * FAILED whenever the execution fails: a run reaching RecordFailure (its Summarize or its Map failed)
 * or ended outside any Catch, even if every rank wrote its results, so that the record agrees with
 * the execution's own status (the console, ExecutionsFailed alarms). SUCCEEDED with no failed
 * partition; PARTIAL when some partitions failed and others have predictions.
 */
function runStatus(partitions: number, failures: PartitionFailure[], input: SummarizeInput, executionFailed?: boolean): RunStatus {
  if (executionFailed || input.failure) return 'FAILED';
  if (failures.length === 0) return 'SUCCEEDED';
  return failures.length < partitions ? 'PARTIAL' : 'FAILED';
}

/** combined_data.json, the prototype's per-rank fields and CAI's, without the partial statistics (ranks/<rank>.json has them). */
async function writeCombinedData(s3: S3Client, input: SummarizeInput, results: RankResult[]): Promise<void> {
  const keys = outputKeys(input.resultPath, input.runId);
  const combined = JSON.stringify(results.map(({ statistics: _statistics, ...rest }) => rest));
  await s3.send(new PutObjectCommand({ Bucket: input.resultBucket, Key: keys.combined, Body: combined, ContentType: 'application/json' }));
  // The prototype's file where its notebooks look: the latest finished run's copy (written, never read).
  await s3.send(
    new PutObjectCommand({ Bucket: input.resultBucket, Key: keys.latestCombined, Body: combined, ContentType: 'application/json' }),
  );
}

/** Every invocation AWS would bill (initializer, each inference attempt, this summarizer), the requests and the transitions. */
function costOfRun(
  run: GatheredRun,
  results: RankResult[],
  existing: RunRecord | undefined,
  input: SummarizeInput,
  context: SummarizeContext,
  ownRequests: RequestCounts,
  recordWriteUnits: number,
): CostBreakdown {
  const attempts = attemptsUsage(run.failedAttempts, run.crashedAttempts, run.attemptRecords);
  const ephemeralStorageMb = context.inferenceEphemeralMb;
  const invocations: LambdaInvocation[] = [
    ...(existing?.initializer ? [existing.initializer] : []),
    ...[
      ...results.map((r) => ({ memoryMb: r.memory_configured_mb, durationMs: r.duration_ms, initMs: r.init_s * 1000 })),
      ...attempts.invocations,
    ].map((i) => ({ ...i, ephemeralStorageMb })),
    context.invocation(),
  ];
  const shape: RunShape = {
    ranks: run.items.length,
    retries: rankRetries(results, run.failedAttempts, run.crashedAttempts),
    caughtRanks: [...run.outcomes.values()].filter((o) => o.status === 'FAILED').length,
    failurePath: Boolean(input.failure),
    mapResultFiles: input.mapRun ? run.mapResultFiles : 0,
  };
  const initializerRequests = existing?.initializer?.requests;
  const requests = [
    ...results.map((r) => r.requests),
    ...attempts.requests,
    ownRequests,
    ...(initializerRequests ? [initializerRequests] : []),
    uncountedRequests(shape, recordWriteUnits),
  ];
  const total = (k: keyof RequestCounts) => requests.reduce((s, r) => s + (r[k] ?? 0), 0);
  return billRun(
    {
      invocations,
      stateTransitions: stateTransitions(shape),
      s3: { get: total('s3Get'), put: total('s3Put'), list: total('s3List') },
      dynamo: { writes: total('dynamoWrite'), reads: total('dynamoRead') },
      kms: { requests: total('kms'), bucketKey: total('kmsBucketKey') },
    },
    context.region,
    context.architecture,
  );
}

/** What the cost leaves out of ranks whose history the summary did not read (attempts.ts, CrashBill): which is estimated, which omitted. */
function unreadHistoriesWarning(unread: number, unbilled: number): string {
  const ranks = unread === 1 ? "1 rank's execution history was" : `${unread} ranks' execution histories were`;
  const attempts = unbilled === 1 ? '1 attempt' : `${unbilled} attempts`;
  return (
    `${ranks} not read (attempts.historiesNotRead: the summary's deadline came first, or a read failed): their crashed attempts ` +
    "with a record are billed up to the next moment known after them (an estimate, at or above Lambda's bill)" +
    (unbilled
      ? `; ${attempts} known only by a later attempt's number (died before writing a record, or throttled, which Lambda does not bill) ` +
        `${unbilled === 1 ? 'is' : 'are'} not in the cost`
      : '')
  );
}

/** What a person should know about the run's numbers: prices assumed, NaN predictions, labels left out, attempts not seen. */
function runWarnings(cost: CostBreakdown, results: RankResult[], accuracy: Accuracy | null, run: GatheredRun): string[] {
  const nonFinite = results.reduce((n, r) => n + (r.non_finite_predictions ?? 0), 0);
  const excludedLabelled = accuracy?.excluded ?? 0;
  const objects = (n: number) => `${n} object${n === 1 ? '' : 's'}`;
  const { historiesNotRead: unread, attemptsNotBilled: unbilled } = run;
  return [
    ...(cost.warning ? [cost.warning] : []),
    ...(unread ? [unreadHistoriesWarning(unread, unbilled)] : []),
    ...(nonFinite ? [`${objects(nonFinite)} with a non-finite input value (NaN or infinity): predicted NaN`] : []),
    ...(excludedLabelled
      ? [`${objects(excludedLabelled)} left out of the accuracy: a non-finite prediction or label (accuracy.excluded)`]
      : []),
  ];
}

/** The ranks' timings, summed or the largest, and throughput over the run's wall time. */
function timingFields(results: RankResult[], wallSeconds: number): Pick<RunRecord, 'timings' | 'throughput'> {
  const sum = (f: (r: RankResult) => number) => results.reduce((s, r) => s + f(r), 0);
  const max = (f: (r: RankResult) => number) => results.reduce((m, r) => Math.max(m, f(r)), 0);
  const samples = sum((r) => r.samples);
  return {
    timings: {
      wall_s: wallSeconds,
      rank_wall_s_max: max((r) => r.wall_s.total),
      rank_wall_s_sum: sum((r) => r.wall_s.total),
      download_s_sum: sum((r) => r.wall_s.download),
      inference_s_sum: sum((r) => r.wall_s.inference),
      read_wait_s_sum: sum((r) => r.wall_s.read_wait),
      upload_s_sum: sum((r) => r.wall_s.upload),
      init_s_sum: sum((r) => r.init_s),
      cold_starts: results.filter((r) => r.cold_start).length,
      peak_rss_mb_max: max((r) => r.peak_rss_mb),
    },
    throughput: {
      samples_per_s_wall: wallSeconds > 0 ? samples / wallSeconds : 0,
      samples_per_s_per_rank: sum((r) => r.wall_s.total) > 0 ? samples / sum((r) => r.wall_s.total) : 0,
      bytes: sum((r) => r.bytes),
    },
  };
}

/**
 * Gathers a run: rank results → combined_data.json (the prototype's format), predictions →
 * accuracy, every invocation → cost, every partition → either results or the failure list; writes
 * summary.json and the final run record. Runs on success and on the failure path alike, so a run
 * never stays RUNNING.
 */
export async function summarizeRun(
  input: SummarizeInput,
  context: SummarizeContext,
  /** completion: a retry summarizes an ended run again (functions/commons/run/retry.ts): its end stays when it was, its error goes. */
  options: { executionFailed?: boolean; completion?: boolean } = {},
): Promise<RunRecord> {
  const { s3, runs } = context;
  const requestsBefore = requestCounts();
  const existing = await runs.get(input.runId);
  const run = await gatherRun(input, context);
  const { results, failures } = partitionOutcomes(run, input);
  const partitions = run.items.reduce((n, i) => n + i.partitions.length, 0);
  const samples = results.reduce((n, r) => n + r.samples, 0);
  // Counted before the last writes, which uncountedRequests bills (combined data twice, the summary, the record).
  const ownRequests = countsSince(requestsBefore);
  await writeCombinedData(s3, input, results);

  const finishedAt = (options.completion && existing?.finishedAt) || new Date().toISOString();
  const wallSeconds = (Date.parse(finishedAt) - (existing ? Date.parse(existing.startedAt) : Date.now())) / 1000;
  // Metrics from the ranks' partial statistics: never every prediction at once. A regression output's
  // accuracy is also the run's `accuracy` (the first one's, as CAI's redshift model has one output).
  const metrics: Record<string, OutputMetrics> = Object.fromEntries(
    Object.entries(run.statistics).map(([name, stats]) => [name, outputMetrics(stats)]),
  );
  const firstRegression = Object.entries(run.statistics).find(([, stats]) => stats.task === 'regression');
  const accuracy = firstRegression ? (metrics[firstRegression[0]] as Extract<OutputMetrics, { task: 'regression' }>).accuracy : null;
  const removed: (keyof RunRecord)[] = options.completion ? ['error'] : [];
  // Sized first as the record stands, then again with the fields (and this cost) it will hold.
  const unseenUnits = unseenRecordWriteUnits(existing, {}, removed);
  const cost = costOfRun(run, results, existing, input, context, ownRequests, unseenUnits);
  const warnings = runWarnings(cost, results, accuracy, run);
  const fields: Partial<RunRecord> = {
    status: runStatus(partitions, failures, input, options.executionFailed),
    finishedAt,
    ...(warnings.length ? { warnings: [...new Set([...(existing?.warnings ?? []), ...warnings])] } : {}),
    error: input.failure ? failureText(input.failure, partitions, failures) : options.completion ? undefined : existing?.error,
    partitions,
    ranks: run.items.length,
    samples,
    predictions: samples,
    nonFinitePredictions: results.reduce((n, r) => n + (r.non_finite_predictions ?? 0), 0),
    failedPartitions: failures.length,
    failures: failures.slice(0, MAX_STORED_FAILURES),
    attempts: {
      failed: run.failedAttempts.length,
      crashed: run.crashedAttempts.length,
      ...(run.historiesNotRead ? { historiesNotRead: run.historiesNotRead, notBilled: run.attemptsNotBilled } : {}),
    },
    ...timingFields(results, wallSeconds),
    accuracy,
    metrics,
    cost,
    prototypeFormulaUsd: prototypeFormula(results),
    ...(existing?.outputs && input.mapRun ? { outputs: { ...existing.outputs, mapResults: mapResultsUri(input.mapRun) } } : {}),
  };
  const sized = unseenRecordWriteUnits(existing, fields, removed);
  if (sized !== unseenUnits) fields.cost = costOfRun(run, results, existing, input, context, ownRequests, sized);
  // Sketches and histograms go to summary.json only (the record has their quantiles): a DynamoDB item is at most 400 KB.
  const histograms = firstRegression && firstRegression[1].task === 'regression' ? firstRegression[1].histograms : null;
  const summary = {
    ...existing,
    ...fields,
    failures,
    failedAttempts: run.failedAttempts,
    crashedAttempts: run.crashedAttempts,
    statistics: run.statistics,
    histograms,
  };
  const keys = outputKeys(input.resultPath, input.runId);
  await s3.send(
    new PutObjectCommand({
      Bucket: input.resultBucket,
      Key: keys.summary,
      Body: JSON.stringify(summary, null, 2),
      ContentType: 'application/json',
    }),
  );
  if (existing) await runs.update(input.runId, fields, removed);
  return summary as RunRecord;
}

/**
 * Write units of the record's two writes that no counter sees, by DynamoDB's item-size rule: the
 * initializer's update after its count (the item as read here; where it set the dataset, the item
 * moved in the byDataset index: a delete and a put there) and this summary's (the larger of the item
 * before and after), each for the table and its indexes. None without a record to update.
 */
function unseenRecordWriteUnits(existing: RunRecord | undefined, fields: Partial<RunRecord>, removed: (keyof RunRecord)[]): number {
  if (!existing) return 0;
  const indexes = Object.keys(RUNS_INDEXES).length;
  const before = itemBytes(existing);
  const after: Partial<RunRecord> = { ...existing, ...storable(fields) };
  for (const key of removed) delete after[key];
  const moved = existing.dataset !== UNREAD_DATASET ? 1 : 0;
  return writeUnits(before, indexes + moved) + writeUnits(Math.max(before, itemBytes(after)), indexes);
}

/** Why the execution failed, and whether its predictions are whole nonetheless. */
function failureText(failure: { Error?: string; Cause?: string }, partitions: number, failures: PartitionFailure[]): string {
  const text = stateErrorText(failure);
  if (partitions === 0 || failures.length > 0) return text;
  return `${text} (every one of the ${partitions} partitions has its predictions; the summary was written after the failure)`;
}

/** What the prototype's formula would have said: requests × mean duration × peak memory used. */
function prototypeFormula(results: RankResult[]): number {
  const meanDuration = results.length ? results.reduce((s, r) => s + r.duration_ms, 0) / results.length / 1000 : 0;
  return prototypeCost(results.length, meanDuration, results.reduce((m, r) => Math.max(m, r.peak_rss_mb), 0) / 1024);
}

export const isExecutionStatusChange = (event: unknown): event is ExecutionStatusChange =>
  (event as ExecutionStatusChange)?.['detail-type'] === 'Step Functions Execution Status Change';

/**
 * An execution ended FAILED, TIMED_OUT or ABORTED (EventBridge's rule on the state machine): what no
 * Catch can handle (States.DataLimitExceeded, a timeout, an abort, RecordFailure itself failing).
 * A run still RUNNING is summarized as failed with the reason; one already recorded is left alone.
 */
export async function recordEndedExecution(event: ExecutionStatusChange, context: SummarizeContext): Promise<RunRecord | undefined> {
  const input = JSON.parse(event.detail.input) as ExecutionInput;
  const run = await context.runs.get(input.runId);
  if (run?.status !== 'RUNNING') return run;
  const { status, error, cause } = event.detail;
  return summarizeRun(
    {
      runId: input.runId,
      resultBucket: input.resultBucket,
      resultPath: input.resultPath,
      failure: { Error: error ?? `States.${status}`, Cause: cause ?? `the execution ended ${status}` },
    },
    context,
    { executionFailed: true },
  );
}
