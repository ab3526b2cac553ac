import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { s3Client } from '../commons/aws/clients';
import { readConfig, requireSettings } from '../commons/aws/config';
import { lambdaHandler, logger, markInitDone, metrics, startInvocation } from '../commons/aws/invocation';
import { describeError } from '../commons/errors';
import { WORKER_BATCH_SIZE, workersFor } from '../commons/model/lambda-sizing';
import { ModelSource } from '../commons/run/model-source';
import type { RankInvocation, RankOutcome } from '../commons/run/contracts';
import { recordedAttempt } from '../commons/run/attempts';
import { firstReadWaitMs, runRank } from '../commons/run/rank';

// INIT: configuration and the deployed model's inference workers, once per container: one ONNX
// session of one thread per vCPU the memory size buys (INFERENCE_WORKERS overrides), loaded in
// parallel. A run that names its own model has it fetched on its first rank in a container. An
// artifact without ONNX Runtime's binary for this CPU has failed already, in one line, as
// onnxruntime-node loaded (functions/commons/model/onnxruntime.ts).
const config = readConfig();
const { MODEL_PATH } = requireSettings(config, 'MODEL_PATH');
const workers = config.INFERENCE_WORKERS || workersFor(config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
const models = new ModelSource({
  s3: s3Client(),
  workers,
  // The worker's bundle, beside this one in the artifact (scripts/build.mjs).
  workerScript: fileURLToPath(new URL('./worker.mjs', import.meta.url)),
  deployed: { path: MODEL_PATH, cardPath: MODEL_PATH.replace(/\.onnx$/, '.card.json') },
  directory: config.MODEL_DIRECTORY,
});
const deployed = await models.loadDeployed();
logger.info('inference workers ready', { workers, initMs: Math.round(deployed.pool.initMs) });
markInitDone();

/** One Distributed Map item: one rank's partitions through the model, its attempt (numbered by the state machine) recorded. */
export const handler = lambdaHandler(async ({ item, attempt: number }: RankInvocation, context): Promise<RankOutcome> => {
  const memoryMb = config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE;
  const clock = startInvocation(memoryMb);
  const requestId = context.awsRequestId;
  const attempt = {
    number,
    requestId,
    memoryMb,
    initMs: clock.initSeconds * 1000,
    remainingMs: context.getRemainingTimeInMillis(),
    bill: clock.bill,
  };
  const s3 = s3Client();
  try {
    const unrecorded = (why: string) => logger.warn('could not record the failed attempt', { error: why });
    const result = await recordedAttempt(
      s3,
      item,
      attempt,
      async () => {
        // Ranks that start together start cold: only a cold start waits before its first read (a run's model, its partitions).
        const waitMs = firstReadWaitMs(clock.initSeconds, item.worldSize);
        if (waitMs > 0) await sleep(waitMs);
        // A run's own model is fetched inside the attempt: a failed fetch is a failed, billed attempt.
        const model = await models.forItem(item.model);
        if (model.replacedBroken)
          logger.warn('the inference pool broke in an earlier rank; this rank runs on a new one', { reason: model.replacedBroken });
        return runRank(item, {
          s3,
          model: model.pool,
          card: model.card,
          signature: model.signature,
          modelId: model.id,
          modelLoadSeconds: model.loadSeconds,
          modelFetchSeconds: model.fetchSeconds,
          firstReadWaitSeconds: waitMs / 1000,
          memoryMb,
          workers,
          batchSize: model.card.batchSize ?? WORKER_BATCH_SIZE,
          initSeconds: clock.initSeconds,
          requestId,
          attempt: number,
          invocationMs: () => clock.bill().durationMs,
        });
      },
      unrecorded,
    );
    metrics.addMetric('Samples', MetricUnit.Count, result.samples);
    metrics.addMetric('PartitionFailures', MetricUnit.Count, result.failures.length);
    logger.info('rank done', { runId: item.runId, rank: item.rank, samples: result.samples, failures: result.failures.length });
    return { rank: item.rank, status: 'SUCCEEDED' };
  } catch (error) {
    metrics.addMetric('RankErrors', MetricUnit.Count, 1);
    logger.error('rank failed', { runId: item.runId, rank: item.rank, error: describeError(error) });
    throw error;
  }
});
