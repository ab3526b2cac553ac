import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { countsSince, requestCounts, s3Client } from '../commons/aws/clients';
import { readConfig, requireSettings } from '../commons/aws/config';
import { lambdaHandler, logger, markInitDone, metrics, startInvocation } from '../commons/aws/invocation';
import { describeError } from '../commons/errors';
import { loadRedshiftModel } from '../commons/model/session';
import { workerSettings } from '../commons/model/lambda-sizing';
import type { RankItem, RankOutcome } from '../commons/run/contracts';
import { recordFailedAttempt, runRank } from '../commons/run/rank';

// INIT: configuration and the ONNX session, once per container. Threads and batch size follow the
// memory size (as `npm run bench` measured them); INTRA_OP_THREADS and the payload's batch_size win.
const config = readConfig();
const tuned = workerSettings(config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
const threads = config.INTRA_OP_THREADS ?? tuned.threads;
const model = await loadRedshiftModel(requireSettings(config, 'MODEL_PATH').MODEL_PATH, { intraOpThreads: threads });
markInitDone();

/** One Distributed Map item: one rank's partitions through the model. */
export const handler = lambdaHandler(async (item: RankItem, context): Promise<RankOutcome> => {
  const clock = startInvocation(config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
  const requestsBefore = requestCounts();
  try {
    const result = await runRank(item, {
      s3: s3Client(),
      model,
      memoryMb: config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      threads,
      batchSize: tuned.batchSize,
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
