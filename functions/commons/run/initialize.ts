import { createHash } from 'node:crypto';
import { GetObjectCommand, type GetObjectCommandOutput, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ExecutionAlreadyExists, StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import type { RequestCounts } from '../aws/clients';
import { CaiError, describeError } from '../errors';
import { checkSummarizable, folderOf, listPartitions, type ManifestPlan, PlanError, planRanks, type RankLimits } from './rank-plan';
import type { ExecutionInput, PartitionObject, Payload } from './contracts';
import { outputKeys } from './output-keys';
import {
  checkDataBucket,
  checkPayloadSize,
  checkResultBucket,
  PAYLOAD_JSON_LIMIT_BYTES,
  parsePayload,
  payloadJson,
  PayloadError,
} from './payload';
import type { RunRecord, RunStore } from './run-store';
import { ModelRefusal, resolveRunModel, type ModelLimits, type RunModel } from './run-model';

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
  /**
   * How many inference invocations the account lets run at once (the function's reserved
   * concurrency, or the account's unreserved pool); the Map's concurrency is clamped to it.
   */
  availableConcurrency?: () => Promise<number>;
  /** Billing of this invocation so far, kept on the run for its cost. */
  invocation: () => { durationMs: number; initMs: number; memoryMb: number };
  /** Requests this invocation has sent so far. */
  requests: () => RequestCounts;
}

export type InitializeOutcome =
  | { runId: string; outcome: 'STARTED'; executionArn: string; partitions: number; ranks: number }
  | { runId: string; outcome: 'DUPLICATE' }
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

function baseRecord(runId: string, object: PayloadObject, raw: unknown, payload?: Payload): RunRecord {
  return {
    runId,
    recordType: 'run',
    status: 'RUNNING',
    startedAt: new Date().toISOString(),
    payloadUri: `s3://${object.bucket}/${object.key}`,
    payload: raw,
    dataset: payload ? `${payload.data_bucket}/${folderOf(payload.data_prefix)}` : '-',
    warnings: [],
  };
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

/** A payload that passed validation, with the ranks planned for it. */
interface ValidRun {
  raw: unknown;
  payload: Payload;
  warnings: string[];
  plan: ManifestPlan;
  /** The payload's own model, checked; absent: the deployed one. */
  model?: RunModel;
  /** Ranks at once: MaxConcurrency, within what the account has free. */
  maxConcurrency: number;
}

/** The uploaded payload.json, read (the size first: one over the limit is neither read nor stored) and parsed. */
async function readPayload(object: PayloadObject, s3: S3Client): Promise<Omit<ValidRun, 'plan' | 'maxConcurrency'>> {
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
  try {
    checkPayloadSize(size);
    const text = (await body.Body?.transformToString()) ?? '';
    raw = text.length > 0 ? text : undefined;
    raw = payloadJson(text);
    return { raw, ...parsePayload(raw) };
  } catch (error) {
    if (size > PAYLOAD_JSON_LIMIT_BYTES) (body.Body as { destroy?: () => void } | undefined)?.destroy?.();
    throw new Refusal(describeError(error), error instanceof PayloadError ? { errors: error.errors } : {}, raw);
  }
}

/** Validates the payload against what the stack allows, lists its data and plans its ranks. */
async function validateRun(runId: string, object: PayloadObject, context: InitializeContext): Promise<ValidRun> {
  const { raw, payload, warnings } = await readPayload(object, context.s3);
  try {
    checkResultBucket(payload, context.writableBuckets);
    checkDataBucket(payload, context.readableDataBuckets, context.modelLimits.controlBucket);
  } catch (error) {
    const { errors, message } = error as PayloadError;
    throw new Refusal(message, { errors, warnings }, raw, payload);
  }
  const folder = `s3://${payload.data_bucket}/${folderOf(payload.data_prefix)}`;
  let available: PartitionObject[];
  try {
    available = await listPartitions(context.s3, payload.data_bucket, payload.data_prefix);
  } catch (error) {
    throw new Refusal(`cannot list ${folder}: ${describeError(error)}`, {}, raw, payload);
  }
  if (available.length === 0) throw new Refusal(`no partitions (*.pt) under ${folder}`, { warnings }, raw, payload);
  let model: RunModel | undefined;
  if (payload.model) {
    try {
      model = await resolveRunModel(payload.model, available[0], payload.data_bucket, context.s3, context.modelLimits);
    } catch (error) {
      if (!(error instanceof ModelRefusal)) throw error;
      throw new Refusal(error.message, { errors: [{ field: 'model', message: error.message }], warnings }, raw, payload);
    }
  }
  let plan: ManifestPlan;
  try {
    plan = planRanks(runId, payload, available, context.rankLimits, model?.object);
    if (context.summarizerMemoryMb) checkSummarizable(plan.items.length, context.summarizerMemoryMb);
  } catch (error) {
    if (!(error instanceof PlanError)) throw error;
    throw new Refusal(error.message, { errors: [{ field: error.field, message: error.message }], warnings }, raw, payload);
  }
  const concurrency = await clampConcurrency(context);
  return { raw, payload, warnings: [...warnings, ...concurrency.warnings], plan, maxConcurrency: concurrency.maxConcurrency, model };
}

/**
 * MaxConcurrency within what the account lets the inference function run (GetAccountSettings):
 * a new account may have 10, and ranks over it would be throttled and retried for half an hour.
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
  if (available >= configured) return { maxConcurrency: configured, warnings: [] };
  const runs = Math.max(1, available);
  return {
    maxConcurrency: runs,
    warnings: [
      `MaxConcurrency ${configured} is more than the ${available} concurrent executions the inference function can have in this account (GetAccountSettings); the run uses ${runs} ranks at once (ask Service Quotas for more)`,
    ],
  };
}

/** A refused run's record; a re-delivered event finds it there and starts nothing. */
async function recordRefusal(runId: string, object: PayloadObject, refusal: Refusal, runs: RunStore): Promise<InitializeOutcome> {
  const created = await runs.create({
    ...baseRecord(runId, object, refusal.raw, refusal.payload),
    ...refusal.fields,
    status: 'FAILED',
    error: refusal.error,
    finishedAt: new Date().toISOString(),
  });
  return created ? { runId, outcome: 'REJECTED', error: refusal.error } : { runId, outcome: 'DUPLICATE' };
}

/**
 * The run's record, RUNNING, with where its outputs will be. False when this event was delivered
 * before and its run is past RUNNING. A delivery that recorded the run may have died before starting
 * it (S3 retries a failed invocation): while the run is RUNNING, it carries on, and StartExecution of
 * the same name and input is idempotent, so an execution already started is not started twice.
 */
async function recordRun(runId: string, object: PayloadObject, run: ValidRun, runs: RunStore): Promise<boolean> {
  const { payload, plan } = run;
  const keys = outputKeys(payload.result_path, runId);
  const uri = (key: string) => `s3://${payload.bucket}/${key}`;
  const created = await runs.create({
    ...baseRecord(runId, object, run.raw, payload),
    executionName: runId,
    warnings: [...run.warnings, ...plan.warnings],
    partitions: plan.partitions.length,
    ranks: plan.items.length,
    ...(run.model
      ? { model: { uri: run.model.uri, etag: run.model.object.etag, name: run.model.card.name, version: run.model.card.version } }
      : {}),
    outputs: {
      prefix: uri(keys.prefix),
      manifest: uri(keys.manifest),
      rankResults: uri(keys.ranks),
      predictions: uri(keys.predictionsFolder),
      combined: uri(keys.combined),
      summary: uri(keys.summary),
    },
  });
  return created || (await runs.get(runId))?.status === 'RUNNING';
}

/** Writes the manifest the Map reads and starts the execution (named by the run id); a failure here is recorded on the run. */
async function startExecution(runId: string, run: ValidRun, context: InitializeContext): Promise<InitializeOutcome> {
  const { payload, plan } = run;
  const keys = outputKeys(payload.result_path, runId);
  try {
    await context.s3
      .send(
        new PutObjectCommand({
          Bucket: payload.bucket,
          Key: keys.manifest,
          Body: JSON.stringify(plan.items),
          ContentType: 'application/json',
        }),
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
    await context.runs.update(runId, { initializer: { ...context.invocation(), requests: context.requests() } });
    const started = await context.sfn.send(
      new StartExecutionCommand({ stateMachineArn: context.stateMachineArn, name: runId, input: JSON.stringify(input) }),
    );
    return { runId, outcome: 'STARTED', executionArn: started.executionArn!, partitions: plan.partitions.length, ranks: plan.items.length };
  } catch (error) {
    if (error instanceof ExecutionAlreadyExists) return { runId, outcome: 'DUPLICATE' };
    const message = `could not start the run: ${describeError(error)}`;
    await context.runs.update(runId, { status: 'FAILED', error: message, finishedAt: new Date().toISOString() });
    return { runId, outcome: 'REJECTED', error: message };
  }
}

/**
 * Starts a run for an uploaded payload.json: validate, list partitions, plan ranks, record the run,
 * write the manifest, start the state machine. Anything wrong with the input is recorded on the run
 * as FAILED, with nothing started; a re-delivered event starts nothing twice.
 */
export async function initializeRun(object: PayloadObject, context: InitializeContext): Promise<InitializeOutcome> {
  const runId = runIdFor(object);
  let run: ValidRun;
  try {
    run = await validateRun(runId, object, context);
  } catch (error) {
    // Anything unforeseen (a bug, S3 refusing the payload's read) is recorded on the run as well, so
    // that an upload never ends with nothing in `cai runs`; only a failure to record it is thrown.
    const refusal = error instanceof Refusal ? error : new Refusal(`could not start the run: ${describeError(error)}`, {}, undefined);
    return recordRefusal(runId, object, refusal, context.runs);
  }
  if (!(await recordRun(runId, object, run, context.runs))) return { runId, outcome: 'DUPLICATE' };
  return startExecution(runId, run, context);
}
