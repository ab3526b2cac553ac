import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Accuracy } from '../model/accuracy';
import type { OutputMetrics } from '../model/task-statistics';
import type { CostBreakdown } from '../billing/cost';
import type { RequestCounts } from '../aws/clients';
import type { PartitionFailure } from './contracts';
import type { FieldError } from './payload';

/**
 * The runs table: one item per run. Access patterns: by run id (the key); newest runs first (index
 * `byStartedAt`: recordType = "run", sorted by startedAt); the runs of one dataset (index
 * `byDataset`: "data_bucket/data_prefix", sorted by startedAt).
 */
export type RunStatus = 'RUNNING' | 'SUCCEEDED' | 'PARTIAL' | 'FAILED';

/** The indexes the queries below use, with their keys: template.yaml's RunsTable declares them (tests hold the two together). */
export const RUNS_INDEXES = {
  newestFirst: { IndexName: 'byStartedAt', hash: 'recordType', range: 'startedAt' },
  byDataset: { IndexName: 'byDataset', hash: 'dataset', range: 'startedAt' },
} as const;

export interface RunOutputs {
  prefix: string;
  manifest: string;
  rankResults: string;
  predictions: string;
  combined: string;
  summary: string;
  /** The Map's ResultWriter output (control bucket, map-results/<map run id>/), known once the Map ended. */
  mapResults?: string;
}

export interface RunRecord {
  runId: string;
  recordType: 'run';
  status: RunStatus;
  startedAt: string;
  finishedAt?: string;
  /** Where the payload came from: s3://bucket/key. */
  payloadUri: string;
  /** The payload as uploaded (JSON), valid or not. */
  payload: unknown;
  /** data_bucket/data_prefix, for the by-dataset index ("-" when the payload did not say). */
  dataset: string;
  executionName?: string;
  warnings: string[];
  /** Why the run failed as a whole: payload field errors, or a message. */
  errors?: FieldError[];
  error?: string;
  partitions?: number;
  ranks?: number;
  samples?: number;
  predictions?: number;
  /** Predictions that are NaN: objects with a non-finite input value, left out of the accuracy. */
  nonFinitePredictions?: number;
  failedPartitions?: number;
  failures?: PartitionFailure[];
  /**
   * Inference attempts that failed (their handler caught an error) and that crashed (their runtime died, billed all the same);
   * summary.json lists each. Where the summary could not read some ranks' execution histories (its deadline, a failed read):
   * how many, and how many attempts of theirs, known only by number, are not in the cost (attempts.ts, CrashBill).
   */
  attempts?: { failed: number; crashed: number; historiesNotRead?: number; notBilled?: number };
  timings?: Record<string, number>;
  throughput?: Record<string, number>;
  accuracy?: Accuracy | null;
  /** Each output's metrics, by task (regression: accuracy; classification: per-class and overall; score: the top objects). */
  metrics?: Record<string, OutputMetrics>;
  cost?: CostBreakdown;
  prototypeFormulaUsd?: number;
  outputs?: RunOutputs;
  /** The run's own model (the payload's `model`), as checked when it started; absent: the deployed one. */
  model?: { uri: string; etag: string; name?: string; version?: string };
  /** The run this one retries (its payload's retry_of): it ran only what that one left unfinished. */
  retryOf?: string;
  /** The run that retried this one, set when that retry started. */
  retriedBy?: string;
  /** The initializer's own invocation and the requests it sent, for the run's cost. */
  initializer?: { durationMs: number; initMs: number; memoryMb: number; requests?: RequestCounts };
}

/** A run's dataset until its payload has been read (the record's first write): the byDataset index's key changes from it. */
export const UNREAD_DATASET = '-';

/** How many failures the item keeps (an item is at most 400 KB); summary.json has them all. */
export const MAX_STORED_FAILURES = 500;
/** Bytes of JSON the stored failures may take, and the longest text of one message kept. */
const FAILURES_BUDGET = 200_000;
const MAX_MESSAGE = 1_000;
const MAX_WARNINGS = 50;

const clip = (text: string | undefined) =>
  text && text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE)}… (${text.length} characters in all; summary.json has it whole)` : text;

/**
 * What is stored of a record's fields: what JSON would write (DynamoDB holds no NaN or undefined),
 * with every field of unbounded size bounded, so no run's item can reach DynamoDB's 400 KB
 * (the payload is bounded at upload: PAYLOAD_JSON_LIMIT_BYTES). summary.json keeps everything.
 */
export function storable<T extends Partial<RunRecord>>(fields: T): T {
  const bounded: Partial<RunRecord> = { ...fields };
  if (fields.error !== undefined) bounded.error = clip(fields.error);
  if (fields.warnings) bounded.warnings = fields.warnings.slice(0, MAX_WARNINGS).map((w) => clip(w)!);
  if (fields.failures) {
    let bytes = 0;
    bounded.failures = [];
    for (const f of fields.failures.slice(0, MAX_STORED_FAILURES)) {
      const kept = { ...f, partition: clip(f.partition)!, error: clip(f.error)! };
      bytes += JSON.stringify(kept).length;
      if (bytes > FAILURES_BUDGET) break;
      bounded.failures.push(kept);
    }
  }
  return JSON.parse(JSON.stringify(bounded));
}

/**
 * Every request asks what it consumed (the table's and the indexes' units), so the request counter
 * bills write units by the item's size, times the table and its two indexes (aws/clients.ts).
 */
export class RunStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    readonly table: string,
  ) {}

  /** Puts a new run; false when the run id exists already (an event delivered twice). */
  async create(record: RunRecord): Promise<boolean> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: storable(record),
          ConditionExpression: 'attribute_not_exists(runId)',
          ReturnConsumedCapacity: 'INDEXES',
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException || (error as Error).name === 'ConditionalCheckFailedException') {
        return false;
      }
      throw error;
    }
  }

  /** Sets fields of an existing run, and removes `remove` (a summary that no longer stands by an earlier error). */
  async update(runId: string, fields: Partial<RunRecord>, remove: (keyof RunRecord)[] = []): Promise<void> {
    const entries = Object.entries(storable(fields)).filter(([key]) => key !== 'runId');
    if (entries.length === 0 && remove.length === 0) return;
    const set = entries.length ? `SET ${entries.map((_, i) => `#f${i} = :v${i}`).join(', ')}` : '';
    const removed = remove.length ? ` REMOVE ${remove.map((_, i) => `#r${i}`).join(', ')}` : '';
    await this.db.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { runId },
        UpdateExpression: `${set}${removed}`.trim(),
        ExpressionAttributeNames: {
          ...Object.fromEntries(entries.map(([k], i) => [`#f${i}`, k])),
          ...Object.fromEntries(remove.map((k, i) => [`#r${i}`, k])),
        },
        ...(entries.length ? { ExpressionAttributeValues: Object.fromEntries(entries.map(([, v], i) => [`:v${i}`, v])) } : {}),
        ConditionExpression: 'attribute_exists(runId)',
        ReturnConsumedCapacity: 'INDEXES',
      }),
    );
  }

  async get(runId: string): Promise<RunRecord | undefined> {
    const { Item } = await this.db.send(new GetCommand({ TableName: this.table, Key: { runId }, ReturnConsumedCapacity: 'TOTAL' }));
    return Item as RunRecord | undefined;
  }

  /** Newest first. */
  async list(limit = 50): Promise<RunRecord[]> {
    const { Items } = await this.db.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: RUNS_INDEXES.newestFirst.IndexName,
        KeyConditionExpression: `${RUNS_INDEXES.newestFirst.hash} = :run`,
        ExpressionAttributeValues: { ':run': 'run' },
        ScanIndexForward: false,
        Limit: limit,
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    return (Items ?? []) as RunRecord[];
  }

  /** The runs of one dataset ("data_bucket/data_prefix"), newest first. */
  async listByDataset(dataset: string, limit = 50): Promise<RunRecord[]> {
    const { Items } = await this.db.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: RUNS_INDEXES.byDataset.IndexName,
        KeyConditionExpression: `${RUNS_INDEXES.byDataset.hash} = :d`,
        ExpressionAttributeValues: { ':d': dataset },
        ScanIndexForward: false,
        Limit: limit,
        ReturnConsumedCapacity: 'TOTAL',
      }),
    );
    return (Items ?? []) as RunRecord[];
  }
}
