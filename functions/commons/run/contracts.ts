import type { RequestCounts } from '../aws/clients';
import type { OutputStatistics } from '../model/task-statistics';

/**
 * The contracts that cross the state machine, in one place: what a user uploads (payload.json),
 * what the initializer hands the Map (manifest items, the execution input), what each rank writes
 * and returns, and what the summarizer is given. Everything here is JSON on the wire.
 */

export interface Payload {
  /** Control bucket: results are written under `result_path` here. */
  bucket: string;
  data_bucket: string;
  data_prefix: string;
  /** At most this many partitions, the first in natural order (1.pt, 2.pt, … 10.pt). */
  file_limit?: number;
  /** Absent: the inference worker's tuned batch size for its memory size (functions/commons/model/lambda-sizing.ts). */
  batch_size?: number;
  result_path: string;
  /** Ranks (inference invocations); default: one per partition. */
  world_size?: number;
  /** s3://bucket/key.onnx: the model this run uses, with its card beside it or in its metadata; absent: the deployed model. */
  model?: string;
}

/**
 * A retry's payload.json: only the run it retries; everything else (data, result_path, world_size,
 * batch_size, the model's version) is the earlier run's (functions/commons/run/retry.ts).
 */
export interface RetryPayload {
  retry_of: string;
}

/** One partition object in S3. */
/**
 * One partition of a run: a file, or a range of a large file's rows (the initializer plans ranges so
 * that nobody splits a 2.5 GB HDF5 file first). `bytes` is its share of the file.
 */
export interface PartitionObject {
  key: string;
  bytes: number;
  /** Rows [start, end) of the file; absent: all of it. */
  rows?: { start: number; end: number };
  /** Bytes its reader holds beside the rows asked for (rows decoded together: an HDF5 chunk, a Parquet row group). */
  decodeBytes?: number;
}

/** A model chosen per run, as the initializer found it: the object, its version (ETag) and size, and its card's place (absent: the model's metadata). */
export interface ModelObject {
  bucket: string;
  key: string;
  etag: string;
  bytes: number;
  /** The card beside it, pinned like the model by the ETag the initializer read it at. */
  card?: { bucket: string; key: string; etag: string };
}

/**
 * One item of the Distributed Map: everything one inference invocation (one rank) needs. The
 * manifest (manifest.json) is the array of these, which the Map's ItemReader reads from S3.
 */
export interface RankItem {
  runId: string;
  rank: number;
  worldSize: number;
  /** The payload's batch_size; absent: the worker's tuned batch size for its memory size. */
  batchSize?: number;
  dataBucket: string;
  partitions: PartitionObject[];
  resultBucket: string;
  resultPath: string;
  /** The run's own model; absent: the deployed one. */
  model?: ModelObject;
  /** The rank's peak memory as planned (model/rank-memory.ts), MB; absent where memory was not planned. */
  plannedMemoryMb?: number;
}

/**
 * What the state machine's InferRank task sends the inference function: the Map item, and how many
 * times the task ran for it before ($$.State.RetryCount of the Context object:
 * https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html). An attempt
 * numbered k > 0 had k before it, each a death or a refusal that may have left no record of itself.
 */
export interface RankInvocation {
  item: RankItem;
  /** 0 on the first attempt; counts every retry, Lambda's refusals (throttling) included. */
  attempt: number;
}

/** The state machine's input. */
export interface ExecutionInput {
  runId: string;
  manifest: { Bucket: string; Key: string };
  resultBucket: string;
  resultPath: string;
  /** Ranks running at once (the Map's MaxConcurrencyPath). */
  maxConcurrency: number;
}

/** EventBridge's event when an execution of the state machine ends (the rule passes FAILED, TIMED_OUT, ABORTED). */
export interface ExecutionStatusChange {
  source: 'aws.states';
  'detail-type': 'Step Functions Execution Status Change';
  detail: {
    executionArn: string;
    stateMachineArn: string;
    name: string;
    status: 'FAILED' | 'TIMED_OUT' | 'ABORTED' | 'SUCCEEDED' | 'RUNNING';
    /** The execution input (an ExecutionInput), as JSON text. */
    input: string;
    error?: string | null;
    cause?: string | null;
  };
}

/** What the Distributed Map returns with a ResultWriter: where the outcomes are, not the outcomes. */
export interface MapRunResult {
  MapRunArn: string;
  ResultWriterDetails: { Bucket: string; Key: string };
}

/** ResultWriter's manifest.json: the result files, by the child executions' status. */
export interface MapResultManifest {
  DestinationBucket: string;
  MapRunArn: string;
  ResultFiles: Record<'SUCCEEDED' | 'FAILED' | 'PENDING', { Key: string; Size: number }[]>;
}

/** One child execution in a ResultWriter result file; Input and Output are JSON text. */
export interface MapChildExecution {
  ExecutionArn: string;
  Name: string;
  Input: string;
  Output?: string;
  Status: string;
  Error?: string;
  Cause?: string;
  StartDate?: string;
  StopDate?: string;
}

/** What the Distributed Map returns for one rank: the handler's reply, or the caught error. */
export interface RankOutcome {
  rank: number;
  status: 'SUCCEEDED' | 'FAILED';
  error?: { Error?: string; Cause?: string };
  /** Retries the state machine made for this rank (when it knows). */
  attempts?: number;
}

export interface PartitionFailure {
  partition: string;
  rank?: number;
  error: string;
}

/**
 * One rank's result (ranks/<rank>.json). The first ten fields are the prototype's, so existing
 * notebooks keep working; their meaning in CAI is in the README. The rest are CAI's measurements.
 */
export interface RankResult {
  'total_cpu_time (seconds)': number;
  'total_cpu_memory (MB)': number;
  'execution_time (seconds/batch)': number;
  num_batches: number;
  batch_size: number;
  device: 'cpu';
  throughput_bps: number;
  sample_persec: number;
  result_path: string;
  data_path: string;
  run_id: string;
  rank: number;
  world_size: number;
  partitions: { key: string; bytes: number; samples: number }[];
  failures: PartitionFailure[];
  samples: number;
  bytes: number;
  /** Wall-clock seconds. Reading overlaps inference, so download + inference can exceed total. */
  /** Seconds by phase; `model_load` (a run's own model fetched and loaded in this invocation; `model_fetch` of it the download) is part of `total`. */
  wall_s: {
    total: number;
    download: number;
    open: number;
    inference: number;
    read_wait: number;
    upload: number;
    model_load?: number;
    model_fetch?: number;
    /** A cold start's pause before its first read (the rank's first GET), part of `total`; absent in older results. */
    first_read_wait?: number;
  };
  /** The model that ran: 'deployed', or s3://bucket/key#etag, with its card's name and version. */
  model?: { id: string; name?: string; version?: string };
  init_s: number;
  cold_start: boolean;
  peak_rss_mb: number;
  memory_configured_mb: number;
  /** Inference workers (ONNX sessions of one thread each) that ran the rank's batches. */
  inference_workers: number;
  /** The invocation's duration, as Lambda would bill it (INIT is billed separately: init_s). */
  duration_ms: number;
  requests: RequestCounts;
  predictions_key: string | null;
  /** Predictions that are NaN (the object had a non-finite input value); absent in older results. */
  non_finite_predictions?: number;
  /**
   * Each output's partial statistics (per task: accuracy sums, sketches and ẑ-vs-z cells, a confusion
   * matrix and class counts, a score sketch and the top objects), merged by the summarizer.
   */
  statistics: Record<string, OutputStatistics>;
  /** When the invocation began (ISO 8601): the report's timeline. */
  started_at?: string;
  /** The invocation that wrote it: its attempts/ start record is complete. */
  request_id?: string;
  /** The state machine's attempt number (RankInvocation.attempt): as many attempts ran before this one. Absent in older results. */
  attempt?: number;
}

/**
 * An inference invocation as it starts (attempts/<rank>-<request id>.json): every invocation whose
 * handler ran leaves one, so the summary can bill one whose runtime then died and never replied.
 */
export interface AttemptStart {
  rank: number;
  requestId: string;
  /** When the handler began (ISO 8601): Lambda bills from here, and the INIT before it on a cold start. */
  startedAt: string;
  memoryMb: number;
  /** INIT of the container when this was its first invocation, else 0. */
  initMs: number;
  /** When the function's timeout would end it (ISO 8601): Lambda bills no further. */
  deadline: string;
  /** The state machine's attempt number (RankInvocation.attempt). Absent in older records. */
  attempt?: number;
}

/** An inference invocation whose handler caught an error: its start record, completed with what it took. */
export interface FailedAttempt {
  rank: number;
  durationMs: number;
  initMs: number;
  memoryMb: number;
  error: string;
  requests: RequestCounts;
  /** Absent in records written before start records were. */
  requestId?: string;
  startedAt?: string;
  /** The state machine's attempt number (RankInvocation.attempt). Absent in older records. */
  attempt?: number;
}

/** What ended a crashed attempt's bill, earliest known first (docs/architecture.md, Cost). */
export type CrashBilledUntil = 'failure' | 'next attempt' | 'rank end' | 'timeout' | 'summary';

/** An invocation that started and never completed: its runtime died (out of memory, killed, timed out). */
export interface CrashedAttempt {
  rank: number;
  requestId: string;
  startedAt: string;
  memoryMb: number;
  initMs: number;
  /** Billed from startedAt up to billedUntil. */
  durationMs: number;
  billedUntil: CrashBilledUntil;
  /** The error the state machine saw for this attempt, or why it is not known. */
  error: string;
  /** Its start record's PUT is billed with every start record; these are the reads it may have made (its partitions, whole). */
  requests: RequestCounts;
}

export interface SummarizeInput {
  runId: string;
  resultBucket: string;
  resultPath: string;
  /** Where the Map wrote each rank's outcome; absent on the failure path and in hand-made events. */
  mapRun?: MapRunResult;
  /** Set on the failure path: why the run as a whole failed. */
  failure?: { Error?: string; Cause?: string };
}
