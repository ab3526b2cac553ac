import { createHash } from 'node:crypto';
import { GetObjectCommand, type GetObjectCommandOutput, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ExecutionAlreadyExists, StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import type { RequestCounts } from '../aws/clients';
import { CaiError, describeError } from '../errors';
import {
  checkSummarizable,
  folderOf,
  listPartitions,
  type ManifestPlan,
  MAX_LISTING_PAGES,
  PlanError,
  planRanks,
  type RankLimits,
} from './rank-plan';
import type { Architecture } from '../billing/cost';
import type { ExecutionInput, ModelObject, PartitionObject, Payload } from './contracts';
import { outputKeys } from './output-keys';
import {
  checkDataBucket,
  checkPayloadSize,
  checkResultBucket,
  PAYLOAD_JSON_LIMIT_BYTES,
  parsePayload,
  parseRetryPayload,
  payloadJson,
  PayloadError,
} from './payload';
import { planRetry, RetryRefusal, type RetryPlan } from './retry';
import { UNREAD_DATASET, type RunRecord, type RunStore } from './run-store';
import { ModelRefusal, resolveRunModel, type ModelLimits } from './run-model';
import { summarizeRun } from './summarize';
import { planRowRanges } from './row-ranges';
import { TENSOR_FILE_KINDS } from '../partitions/file-names';
import { openTensorFile } from '../partitions/tensor-files';
import { s3Source } from '../tensors/byte-source';

/** The uploaded payload.json an S3 event names. */
export interface PayloadObject {
  bucket: string;
  key: string;
  /** S3's per-write sequencer: the same for a re-delivered event, new for a new upload. */
  sequencer?: string;
  etag?: string;
}

export interface InitializeContext {
  s3: S3Client;
  sfn: SFNClient;
  runs: RunStore;
  stateMachineArn: string;
  maxConcurrency: number;
  /** Buckets the functions may write: the control bucket and ResultBucketNames. */
  writableBuckets: string[];
  /** Buckets the inference function may read partitions from: DataBucketName, or the control bucket. */
  readableDataBuckets: string[];
  /** The inference function's memory and timeout: ranks are planned to finish well inside it. */
  rankLimits: RankLimits;
  /** Where a run's own model may come from, and how large it may be. */
  modelLimits: ModelLimits;
  /** The summarizer's memory: it holds every rank's result at once, so it bounds the ranks of a run. */
  summarizerMemoryMb?: number;
  /** Files over this are run as row ranges of about this size (absent: ROW_RANGE_BYTES). */
  rowRangeBytes?: number;
  /**
   * How many inference invocations the account lets run at once (the function's reserved
   * concurrency, or the account's unreserved pool); the Map's concurrency is clamped to it.
   */
  availableConcurrency?: () => Promise<number>;
  /** availableConcurrency is the inference function's reserved concurrency, which the summarizer and initializer do not draw from. */
  reservedConcurrency?: boolean;
  /** Billing of this invocation so far, kept on the run for its cost. */
  invocation: () => { durationMs: number; initMs: number; memoryMb: number };
  /** Requests this invocation has sent so far. */
  requests: () => RequestCounts;
  /**
   * When the function's timeout ends this invocation (epoch ms; absent: never). The run's outcome is
   * recorded OUTCOME_RESERVE_MS before it, whatever is still under way, so no run is left RUNNING.
   */
  deadline?: number;
  /** Where and on what the functions run, for the cost of a run a retry completes by summarizing it again (functions/commons/run/retry.ts). */
  pricing?: { region: string; architecture: Architecture };
}

/** Kept at the end of an invocation to record the run's outcome (a DynamoDB write, with its retries) and return. */
export const OUTCOME_RESERVE_MS = 5_000;

export type InitializeOutcome =
  | { runId: string; outcome: 'STARTED'; executionArn: string; partitions: number; ranks: number }
  | { runId: string; outcome: 'DUPLICATE' }
  /** A retry that ran nothing: the run it retries had every prediction, and was summarized again. */
  | { runId: string; outcome: 'COMPLETED'; completed: string; status: RunRecord['status'] }
  | { runId: string; outcome: 'REJECTED'; error: string };

/**
 * The run id: the folder the payload sits in (runs/<name>/payload.json → <name>) and a digest of
 * the upload, so a re-delivered event maps to the same run and a new upload to a new one. Valid
 * as a Step Functions execution name (≤ 80 characters of [A-Za-z0-9_-]).
 */
export function runIdFor(object: PayloadObject): string {
  const parts = object.key.split('/');
  const name = (parts.length > 1 ? parts[parts.length - 2] : 'run').replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 60) || 'run';
  const digest = createHash('sha256')
    .update(`${object.bucket}/${object.key}#${object.sequencer ?? object.etag ?? ''}`)
    .digest('hex')
    .slice(0, 12);
  return `${name}-${digest}`;
}

/** The record a run starts with, written as its event arrives, before the payload is read. */
function claimRecord(runId: string, object: PayloadObject): RunRecord {
  return {
    runId,
    recordType: 'run',
    status: 'RUNNING',
    startedAt: new Date().toISOString(),
    payloadUri: `s3://${object.bucket}/${object.key}`,
    payload: undefined,
    dataset: UNREAD_DATASET,
    warnings: [],
  };
}

/** What the record keeps of the payload: its text (or why it is not stored), and its dataset once it parsed. */
function payloadFields(raw: unknown, payload?: Payload): Partial<RunRecord> {
  return { payload: raw, dataset: payload ? `${payload.data_bucket}/${folderOf(payload.data_prefix)}` : UNREAD_DATASET };
}

/** A run refused at validation: recorded on the run as FAILED, with nothing started. */
class Refusal extends Error {
  constructor(
    readonly error: string,
    readonly fields: Partial<RunRecord>,
    /** What of the payload is known: its text (or why it is not stored), and the payload if it parsed. */
    readonly raw: unknown,
    readonly payload?: Payload,
  ) {
    super(error);
  }
}

/** A run's own model: the object the ranks fetch (by its ETag) and what the record says of it. */
interface ChosenModel {
  object: ModelObject;
  record: NonNullable<RunRecord['model']>;
}

/** A payload read: a new run's, or a retry's (the earlier run's payload, and what of that run is left). */
interface ReadPayload {
  raw: unknown;
  payload: Payload;
  warnings: string[];
  retry?: RetryPlan;
}

/** A payload that passed validation, with the ranks planned for it. */
interface ValidRun extends ReadPayload {
  plan: ManifestPlan;
  /** The payload's own model, checked; absent: the deployed one. */
  model?: ChosenModel;
  /** Ranks at once: MaxConcurrency, within what the account has free. */
  maxConcurrency: number;
}

/** The uploaded payload.json, read (the size first: one over the limit is neither read nor stored) and parsed. */
async function readPayload(object: PayloadObject, s3: S3Client, runs: RunStore): Promise<ReadPayload> {
  let body: GetObjectCommandOutput;
  try {
    body = await s3.send(new GetObjectCommand({ Bucket: object.bucket, Key: object.key }));
  } catch (error) {
    // Deleted (or never there: a hand-made event) before it could be read: recorded, not retried for ever.
    if ((error as Error).name !== 'NoSuchKey') throw error;
    throw new Refusal(`cannot read s3://${object.bucket}/${object.key}: it does not exist`, {}, undefined);
  }
  const size = body.ContentLength ?? 0;
  let raw: unknown = size > PAYLOAD_JSON_LIMIT_BYTES ? `(not stored: ${size} bytes)` : undefined;
  let retryOf: string | undefined;
  try {
    checkPayloadSize(size);
    const text = (await body.Body?.transformToString()) ?? '';
    raw = text.length > 0 ? text : undefined;
    raw = payloadJson(text);
    retryOf = parseRetryPayload(raw);
    if (retryOf === undefined) return { raw, ...parsePayload(raw) };
  } catch (error) {
    if (size > PAYLOAD_JSON_LIMIT_BYTES) (body.Body as { destroy?: () => void } | undefined)?.destroy?.();
    throw new Refusal(describeError(error), error instanceof PayloadError ? { errors: error.errors } : {}, raw);
  }
  try {
    const retry = await planRetry(retryOf, runs, s3);
    return { raw, payload: retry.payload, warnings: [], retry };
  } catch (error) {
    if (!(error instanceof RetryRefusal)) throw error;
    throw new Refusal(`payload.json: retry_of: ${error.message}`, { errors: [{ field: 'retry_of', message: error.message }] }, raw);
  }
}

/** A retry's payload: the earlier run's, with at most one rank a partition left (its world_size was for all of them). */
function retryPayload(payload: Payload, partitions: number): Payload {
  const { model: _model, file_limit: _limit, ...rest } = payload;
  return { ...rest, ...(payload.world_size ? { world_size: Math.min(payload.world_size, partitions) } : {}) };
}

/** How far validation got: what the record says if the deadline stops it. */
interface Progress {
  stage: string;
  raw?: unknown;
  payload?: Payload;
}

/** Validates the payload against what the stack allows, lists its data and plans its ranks; `signal` stops the listing between pages. */
async function validateRun(
  runId: string,
  object: PayloadObject,
  context: InitializeContext,
  progress: Progress,
  signal: AbortSignal,
): Promise<ValidRun | ReadPayload> {
  const read = await readPayload(object, context.s3, context.runs);
  const { raw, warnings, retry } = read;
  const payload = retry?.kind === 'rerun' ? retryPayload(read.payload, retry.partitions.length) : read.payload;
  Object.assign(progress, { raw, payload });
  try {
    checkResultBucket(payload, context.writableBuckets);
    checkDataBucket(payload, context.readableDataBuckets, context.modelLimits.controlBucket);
  } catch (error) {
    const { errors, message } = error as PayloadError;
    throw new Refusal(message, { errors, warnings }, raw, payload);
  }
  // Nothing left to run: the earlier run is summarized again (completeRun).
  if (retry?.kind === 'resummarize') return read;
  const folder = `s3://${payload.data_bucket}/${folderOf(payload.data_prefix)}`;
  // A retry runs what its earlier run left, read from that run's outputs; a new run what the folder holds.
  let available: PartitionObject[] = retry?.kind === 'rerun' ? retry.partitions : [];
  if (!retry) {
    progress.stage = `listing ${folder} (0 pages so far)`;
    try {
      available = await listPartitions(context.s3, payload.data_bucket, payload.data_prefix, {
        maxPages: MAX_LISTING_PAGES,
        signal,
        onPage: (pages) => (progress.stage = `listing ${folder} (${pages} pages so far)`),
      });
    } catch (error) {
      if (signal.aborted) throw error;
      if (error instanceof PlanError)
        throw new Refusal(error.message, { errors: [{ field: error.field, message: error.message }], warnings }, raw, payload);
      throw new Refusal(`cannot list ${folder}: ${describeError(error)}`, {}, raw, payload);
    }
  }
  if (available.length === 0) throw new Refusal(`no data files (${TENSOR_FILE_KINDS}) under ${folder}`, { warnings }, raw, payload);
  if (!retry) {
    progress.stage = 'reading the headers of large files';
    try {
      available = await planRowRanges(available, async (key) => openTensorFile(await s3Source(context.s3, payload.data_bucket, key)), {
        targetBytes: context.rowRangeBytes,
        onFile: (opened, of) => (progress.stage = `reading the headers of large files (${opened} of ${of})`),
      });
    } catch (error) {
      if (!(error instanceof PlanError)) throw error;
      throw new Refusal(error.message, { errors: [{ field: error.field, message: error.message }], warnings }, raw, payload);
    }
  }
  let model: ChosenModel | undefined;
  if (retry?.model) {
    // Exactly the version the earlier run ran: the ranks fetch it by this ETag (If-Match).
    const { bucket, key, etag } = retry.model;
    model = { object: retry.model, record: retry.earlier.model ?? { uri: `s3://${bucket}/${key}`, etag } };
  } else if (payload.model) {
    progress.stage = `checking the model ${payload.model}`;
    try {
      const resolved = await resolveRunModel(payload.model, available[0], payload.data_bucket, context.s3, context.modelLimits);
      const { uri, object, card } = resolved;
      model = { object, record: { uri, etag: object.etag, name: card.name, version: card.version } };
    } catch (error) {
      if (!(error instanceof ModelRefusal)) throw error;
      throw new Refusal(error.message, { errors: [{ field: 'model', message: error.message }], warnings }, raw, payload);
    }
  }
  let plan: ManifestPlan;
  progress.stage = `planning ${available.length} partitions`;
  try {
    plan = planRanks(runId, payload, available, context.rankLimits, model?.object);
    if (context.summarizerMemoryMb) checkSummarizable(plan.items.length, context.summarizerMemoryMb);
  } catch (error) {
    if (!(error instanceof PlanError)) throw error;
    throw new Refusal(error.message, { errors: [{ field: error.field, message: error.message }], warnings }, raw, payload);
  }
  const concurrency = await clampConcurrency(context);
  return {
    raw,
    payload,
    retry,
    warnings: [...warnings, ...concurrency.warnings],
    plan,
    maxConcurrency: concurrency.maxConcurrency,
    model,
  };
}

/**
 * Concurrent executions of the account's unreserved pool a run's Map leaves free. The summarizer
 * (Summarize, RecordFailure, the status rule's) and the initializer draw from the same pool: with
 * the Map at the whole pool, each would be throttled until a rank ends. One is enough: each is one
 * short invocation, served in turn; two at once, or runs whose Maps together take more than the
 * pool, are carried by retries (the throttle retriers of Summarize and RecordFailure, Lambda's own
 * for the asynchronous initializer and status rule). More would idle what a new account can least
 * spare: one of 10 is a tenth of its ranks.
 */
export const CONCURRENCY_HEADROOM = 1;

/**
 * MaxConcurrency within what the account lets the inference function run (GetAccountSettings):
 * a new account may have 10, and ranks over it would be throttled and retried for half an hour.
 * From the shared pool the Map leaves CONCURRENCY_HEADROOM, never running fewer than one rank; a
 * reserved concurrency is the inference function's alone, and the Map may take all of it.
 */
async function clampConcurrency(context: InitializeContext): Promise<{ maxConcurrency: number; warnings: string[] }> {
  const configured = context.maxConcurrency;
  if (!context.availableConcurrency) return { maxConcurrency: configured, warnings: [] };
  let available: number;
  try {
    available = await context.availableConcurrency();
  } catch (error) {
    return {
      maxConcurrency: configured,
      warnings: [`could not read the account's Lambda concurrency (${describeError(error)}); MaxConcurrency ${configured} is used as set`],
    };
  }
  const headroom = context.reservedConcurrency ? 0 : CONCURRENCY_HEADROOM;
  if (available - headroom >= configured) return { maxConcurrency: configured, warnings: [] };
  const runs = Math.max(1, available - headroom);
  const pool = context.reservedConcurrency
    ? `the ${available} concurrent executions reserved for the inference function`
    : `the ${available} concurrent executions the inference function can have in this account (GetAccountSettings) less ${headroom} kept for the summarizer and the initializer`;
  const remedy = context.reservedConcurrency ? 'raise InferenceReservedConcurrency' : 'ask Service Quotas for more';
  const floor = runs > available - headroom ? ', the least there is, which leaves the summarizer no room of its own' : '';
  return {
    maxConcurrency: runs,
    warnings: [
      `MaxConcurrency ${configured} is more than ${pool}; the run uses ${runs} rank${runs === 1 ? '' : 's'} at once${floor} (${remedy})`,
    ],
  };
}

/**
 * The run's record, RUNNING, written before anything else is done, so that an invocation that dies
 * or times out later leaves a record and not only an event in the failed-events queue. False when
 * this event was delivered before and its run is past RUNNING: it starts nothing. While the run is
 * RUNNING, an earlier delivery may have died anywhere before starting it (Lambda retries a failed
 * asynchronous invocation twice; S3 delivers an event at least once): this one carries on, as every
 * step after this is keyed by the run id and StartExecution of the same name and input is
 * idempotent, so an execution already started is not started twice.
 */
async function claimRun(runId: string, object: PayloadObject, runs: RunStore): Promise<boolean> {
  if (await runs.create(claimRecord(runId, object))) return true;
  return (await runs.get(runId))?.status === 'RUNNING';
}

/** A refused run's record: FAILED, with why; a re-delivered event finds it there and starts nothing. */
async function recordRefusal(runId: string, refusal: Refusal, runs: RunStore): Promise<InitializeOutcome> {
  await runs.update(runId, {
    ...payloadFields(refusal.raw, refusal.payload),
    ...refusal.fields,
    status: 'FAILED',
    error: refusal.error,
    finishedAt: new Date().toISOString(),
  });
  return { runId, outcome: 'REJECTED', error: refusal.error };
}

/** What the record says of a validated run: its plan, its model and where its outputs will be. */
function planFields(runId: string, run: ValidRun): Partial<RunRecord> {
  const { payload, plan } = run;
  const keys = outputKeys(payload.result_path, runId);
  const uri = (key: string) => `s3://${payload.bucket}/${key}`;
  return {
    ...payloadFields(run.raw, payload),
    executionName: runId,
    warnings: [...run.warnings, ...plan.warnings],
    partitions: plan.partitions.length,
    ranks: plan.items.length,
    ...(run.model ? { model: run.model.record } : {}),
    ...(run.retry ? { retryOf: run.retry.earlier.runId } : {}),
    outputs: {
      prefix: uri(keys.prefix),
      manifest: uri(keys.manifest),
      rankResults: uri(keys.ranks),
      predictions: uri(keys.predictionsFolder),
      combined: uri(keys.combined),
      summary: uri(keys.summary),
    },
  };
}

/** A StartExecution that failed after the SDK's retries (functions/commons/aws/clients.ts): its error, and how long it was retried. */
function startFailure(error: unknown): string {
  const { attempts, totalRetryDelay } = (error as { $metadata?: { attempts?: number; totalRetryDelay?: number } }).$metadata ?? {};
  const retried = attempts && attempts > 1 ? ` (${attempts} attempts, ${((totalRetryDelay ?? 0) / 1000).toFixed(1)} s of backoff)` : '';
  return `StartExecution: ${describeError(error)}${retried}`;
}

/**
 * Writes the manifest the Map reads, records the plan and starts the execution (named by the run
 * id); a failure here, or the deadline, is recorded on the run.
 */
async function startExecution(
  runId: string,
  run: ValidRun,
  context: InitializeContext,
  signal: AbortSignal,
  outOfTime: () => string,
): Promise<InitializeOutcome> {
  const { payload, plan } = run;
  const keys = outputKeys(payload.result_path, runId);
  const planned = planFields(runId, run);
  let step = 'manifest';
  try {
    await context.s3
      .send(
        new PutObjectCommand({
          Bucket: payload.bucket,
          Key: keys.manifest,
          Body: JSON.stringify(plan.items),
          ContentType: 'application/json',
        }),
        { abortSignal: signal },
      )
      .catch((error: unknown) => {
        // "NoSuchBucket" alone does not say which: the payload's bucket.
        throw new CaiError(`cannot write s3://${payload.bucket}/${keys.manifest}: ${describeError(error)}`, { cause: error });
      });
    const input: ExecutionInput = {
      runId,
      manifest: { Bucket: payload.bucket, Key: keys.manifest },
      resultBucket: payload.bucket,
      resultPath: payload.result_path,
      maxConcurrency: run.maxConcurrency,
    };
    // Counted now, so this update and the StartExecution after it are added by the summary.
    await context.runs.update(runId, { ...planned, initializer: { ...context.invocation(), requests: context.requests() } });
    // The link both ways: `cai runs show` of the earlier run finds its retry, and a second retry of it is refused.
    if (run.retry) await context.runs.update(run.retry.earlier.runId, { retriedBy: runId });
    step = 'start';
    // Throttling, 5xx and network errors are retried by the client, with backoff, up to the deadline.
    const started = await context.sfn.send(
      new StartExecutionCommand({ stateMachineArn: context.stateMachineArn, name: runId, input: JSON.stringify(input) }),
      { abortSignal: signal },
    );
    return { runId, outcome: 'STARTED', executionArn: started.executionArn!, partitions: plan.partitions.length, ranks: plan.items.length };
  } catch (error) {
    if (error instanceof ExecutionAlreadyExists) return { runId, outcome: 'DUPLICATE' };
    const why = signal.aborted ? outOfTime() : step === 'start' ? startFailure(error) : describeError(error);
    const message = `could not start the run: ${why}`;
    await context.runs.update(runId, { ...planned, status: 'FAILED', error: message, finishedAt: new Date().toISOString() });
    return { runId, outcome: 'REJECTED', error: message };
  }
}

/**
 * A retry of a run whose every partition has its predictions but whose execution failed after them
 * (its summary failed): the earlier run is summarized again over its rank results and the Map's
 * outcomes (when its record names them), running no rank, and its record becomes what the summary
 * would have made it. The retry's own record says what it did.
 */
async function completeRun(runId: string, run: ReadPayload, context: InitializeContext): Promise<InitializeOutcome> {
  const { earlier, mapRun } = run.retry as Extract<RetryPlan, { kind: 'resummarize' }>;
  await context.runs.update(runId, { ...payloadFields(run.raw, run.payload), retryOf: earlier.runId });
  await context.runs.update(earlier.runId, { retriedBy: runId });
  let summary: RunRecord;
  try {
    if (!context.pricing) throw new CaiError('the initializer was given no region and architecture to bill a summary at');
    summary = await summarizeRun(
      { runId: earlier.runId, resultBucket: run.payload.bucket, resultPath: run.payload.result_path, mapRun },
      {
        s3: context.s3,
        runs: context.runs,
        ...context.pricing,
        invocation: context.invocation,
        inferenceMemoryMb: context.rankLimits.memoryMb,
      },
      { completion: true },
    );
  } catch (error) {
    const message = `could not summarize run ${earlier.runId} again: ${describeError(error)}`;
    await context.runs.update(runId, { status: 'FAILED', error: message, finishedAt: new Date().toISOString() });
    return { runId, outcome: 'REJECTED', error: message };
  }
  await context.runs.update(runId, {
    status: 'SUCCEEDED',
    finishedAt: new Date().toISOString(),
    partitions: 0,
    ranks: 0,
    samples: 0,
    predictions: 0,
    failedPartitions: 0,
    warnings: [
      `run ${earlier.runId} had every one of its ${summary.partitions} partitions' predictions: summarized again (${summary.status}), no rank run`,
    ],
    initializer: { ...context.invocation(), requests: context.requests() },
  });
  return { runId, outcome: 'COMPLETED', completed: earlier.runId, status: summary.status };
}

/** An abort signal that fires OUTCOME_RESERVE_MS before the deadline (never without one); clear it when done. */
function deadlineSignal(deadline: number | undefined): { signal: AbortSignal; clear: () => void } {
  const controller = new AbortController();
  if (deadline === undefined) return { signal: controller.signal, clear: () => {} };
  const timer = setTimeout(
    () => controller.abort(new CaiError('the deadline passed')),
    Math.max(0, deadline - OUTCOME_RESERVE_MS - Date.now()),
  );
  return { signal: controller.signal, clear: () => clearTimeout(timer) };
}

/**
 * The work's result, or the signal's abort, whichever comes first. Abandoned work runs on (Lambda
 * freezes it, and may thaw it in the next invocation) but writes nothing: validation makes no
 * writes (they follow it, on the awaited path), and the listing stops at its next page.
 */
function beforeDeadline<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  work.catch(() => {});
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    if (signal.aborted) return abort();
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

/**
 * Starts a run for an uploaded payload.json: record it RUNNING, then validate, list partitions,
 * plan ranks, write the manifest, start the state machine. Anything wrong with the input is recorded
 * on the run as FAILED, with nothing started, and so is a validation that would outlast the
 * invocation (context.deadline); a re-delivered event starts nothing twice.
 */
export async function initializeRun(object: PayloadObject, context: InitializeContext): Promise<InitializeOutcome> {
  const runId = runIdFor(object);
  if (!(await claimRun(runId, object, context.runs))) return { runId, outcome: 'DUPLICATE' };
  const startedAt = Date.now();
  const progress: Progress = { stage: 'reading the payload' };
  const outOfTime = () =>
    `the initializer ran out of time after ${((Date.now() - startedAt) / 1000).toFixed(1)} s ${progress.stage}; ` +
    "upload the payload again, or raise the InitializerFunction's Timeout in template.yaml";
  const { signal, clear } = deadlineSignal(context.deadline);
  try {
    let run: ValidRun | ReadPayload;
    try {
      run = await beforeDeadline(validateRun(runId, object, context, progress, signal), signal);
    } catch (error) {
      // Anything unforeseen (a bug, S3 refusing the payload's read) is recorded on the run as well, so
      // that an upload never ends with nothing in `cai runs`; only a failure to record it is thrown.
      const refusal =
        error instanceof Refusal
          ? error
          : new Refusal(
              `could not start the run: ${signal.aborted ? outOfTime() : describeError(error)}`,
              {},
              progress.raw,
              progress.payload,
            );
      return await recordRefusal(runId, refusal, context.runs);
    }
    if (!('plan' in run)) return await completeRun(runId, run, context);
    progress.stage = 'starting the execution';
    return await startExecution(runId, run, context, signal, outOfTime);
  } finally {
    clear();
  }
}
