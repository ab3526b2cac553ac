import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { countsSince, requestCounts, s3Client } from '../commons/aws/clients';
import { checkArtifactArchitecture, readConfig, requireSettings } from '../commons/aws/config';
import { lambdaHandler, logger, markInitDone, metrics, startInvocation } from '../commons/aws/invocation';
import { describeError } from '../commons/errors';
import { WORKER_BATCH_SIZE, workersFor } from '../commons/model/lambda-sizing';
import { startInferencePool } from '../commons/model/worker-pool';
import type { RankItem, RankOutcome } from '../commons/run/contracts';
import { firstReadJitterMs, recordFailedAttempt, runRank } from '../commons/run/rank';

// INIT: configuration and the inference workers, once per container: one ONNX session of one
// thread per vCPU the memory size buys (INFERENCE_WORKERS overrides), loaded in parallel.
// The build records the architecture of the ONNX Runtime binary it packed (scripts/build.mjs).
checkArtifactArchitecture(JSON.parse(readFileSync(new URL('./architecture.json', import.meta.url), 'utf8')).architecture);
const config = readConfig();
const { MODEL_PATH } = requireSettings(config, 'MODEL_PATH');
const workers = config.INFERENCE_WORKERS || workersFor(config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
const model = await startInferencePool({
  modelPath: MODEL_PATH,
  workers,
  // The worker's bundle, beside this one in the artifact (scripts/build.mjs).
  workerScript: fileURLToPath(new URL('./worker.mjs', import.meta.url)),
});
logger.info('inference workers ready', { workers, initMs: Math.round(model.initMs) });
markInitDone();

/** One Distributed Map item: one rank's partitions through the model. */
export const handler = lambdaHandler(async (item: RankItem, context): Promise<RankOutcome> => {
  const clock = startInvocation(config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
  const requestsBefore = requestCounts();
  // Ranks that start together start cold: only a cold start waits before its first read.
  if (clock.initSeconds) await sleep(Math.random() * firstReadJitterMs(item.worldSize));
  try {
    const result = await runRank(item, {
      s3: s3Client(),
      model,
      memoryMb: config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      workers,
      batchSize: WORKER_BATCH_SIZE,
      initSeconds: clock.initSeconds,
    });
    metrics.addMetric('Samples', MetricUnit.Count, result.samples);
    metrics.addMetric('PartitionFailures', MetricUnit.Count, result.failures.length);
    logger.info('rank done', { runId: item.runId, rank: item.rank, samples: result.samples, failures: result.failures.length });
    return { rank: item.rank, status: 'SUCCEEDED' };
  } catch (error) {
    const { durationMs, initMs, memoryMb } = clock.bill();
    const attempt = { durationMs, initMs, memoryMb, error: describeError(error), requests: countsSince(requestsBefore) };
    const unrecorded = await recordFailedAttempt(s3Client(), item, attempt, context.awsRequestId);
    if (unrecorded) logger.warn('could not record the failed attempt', { error: unrecorded });
    metrics.addMetric('RankErrors', MetricUnit.Count, 1);
    logger.error('rank failed', { runId: item.runId, rank: item.rank, error: attempt.error });
    throw error;
  }
});
