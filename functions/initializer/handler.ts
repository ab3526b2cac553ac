import { MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context, S3Event } from 'aws-lambda';
import { GetAccountSettingsCommand } from '@aws-sdk/client-lambda';
import { countsSince, createLambdaClient, dynamoClient, requestCounts, s3Client, SFN_START_RETRY, sfnClient } from '../commons/aws/clients';
import { readConfig, readInferenceModel, requireSettings } from '../commons/aws/config';
import { lambdaHandler, logger, markInitDone, metrics, startInvocation } from '../commons/aws/invocation';
import { WORKER_BATCH_SIZE } from '../commons/model/lambda-sizing';
import { initializeRun, type InitializeOutcome } from '../commons/run/initialize';
import { modelStorageBytes } from '../commons/run/run-model';
import { RunStore } from '../commons/run/run-store';

const config = readConfig();
const settings = requireSettings(
  config,
  'STATE_MACHINE_ARN',
  'CONTROL_BUCKET',
  'DATA_BUCKET',
  'INFERENCE_MEMORY_MB',
  'INFERENCE_TIMEOUT_S',
);
const runs = new RunStore(dynamoClient(), config.RUNS_TABLE);
// What a rank may take: the inference function's timeout, and its memory and architecture (its
// speed) with what it runs (model, workers, batch).
const rankLimits = {
  memoryMb: settings.INFERENCE_MEMORY_MB,
  timeoutS: settings.INFERENCE_TIMEOUT_S,
  architecture: config.ARCHITECTURE,
  inference: {
    modelBytes: readInferenceModel(config.LAMBDA_TASK_ROOT).bytes,
    workers: config.INFERENCE_WORKERS,
    batchSize: WORKER_BATCH_SIZE,
  },
};
const writableBuckets = [settings.CONTROL_BUCKET, ...config.RESULT_BUCKETS];
const modelLimits = {
  controlBucket: settings.CONTROL_BUCKET,
  buckets: config.MODEL_BUCKETS,
  storageBytes: modelStorageBytes(config.INFERENCE_EPHEMERAL_MB),
};
const lambda = createLambdaClient();
// A reserved concurrency is the inference function's own; without one it shares the account's unreserved pool.
const availableConcurrency = async () =>
  config.INFERENCE_RESERVED_CONCURRENCY ||
  ((await lambda.send(new GetAccountSettingsCommand({}))).AccountLimit?.UnreservedConcurrentExecutions ?? config.MAX_CONCURRENCY);
markInitDone();

/** S3 event keys are URL-encoded, with + for spaces; a malformed escape (a hand-made event) is taken as written. */
function eventKey(encoded: string): string {
  try {
    return decodeURIComponent(encoded.replace(/\+/g, ' '));
  } catch {
    return encoded;
  }
}

const OUTCOME_METRIC = {
  STARTED: 'RunsStarted',
  REJECTED: 'RunsRejected',
  DUPLICATE: 'DuplicateEvents',
  COMPLETED: 'RunsCompleted',
} as const;

/** S3 ObjectCreated (suffix payload.json) → one run per uploaded payload. */
export const handler = lambdaHandler(async (event: S3Event, context: Context): Promise<InitializeOutcome[]> => {
  // When Lambda ends this invocation: the run's outcome is recorded before it.
  const deadline = Date.now() + context.getRemainingTimeInMillis();
  const clock = startInvocation(config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
  const before = requestCounts();
  const outcomes: InitializeOutcome[] = [];
  for (const record of event.Records ?? []) {
    const key = eventKey(record.s3.object.key);
    if (!key.endsWith('payload.json')) continue;
    const outcome = await initializeRun(
      { bucket: record.s3.bucket.name, key, sequencer: record.s3.object.sequencer, etag: record.s3.object.eTag },
      {
        s3: s3Client(),
        sfn: sfnClient(SFN_START_RETRY),
        runs,
        stateMachineArn: settings.STATE_MACHINE_ARN,
        maxConcurrency: config.MAX_CONCURRENCY,
        writableBuckets,
        readableDataBuckets: [settings.DATA_BUCKET],
        rankLimits,
        modelLimits,
        summarizerMemoryMb: config.SUMMARIZER_MEMORY_MB,
        ...(config.ROW_RANGE_MB ? { rowRangeBytes: config.ROW_RANGE_MB * 1024 * 1024 } : {}),
        availableConcurrency,
        reservedConcurrency: config.INFERENCE_RESERVED_CONCURRENCY > 0,
        invocation: clock.bill,
        requests: () => countsSince(before),
        deadline,
        pricing: { region: config.AWS_REGION, architecture: config.ARCHITECTURE },
      },
    );
    metrics.addMetric(OUTCOME_METRIC[outcome.outcome], MetricUnit.Count, 1);
    logger.info('payload handled', { key, ...outcome });
    outcomes.push(outcome);
  }
  return outcomes;
});
