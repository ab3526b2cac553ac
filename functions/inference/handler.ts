import { PutObjectCommand } from '@aws-sdk/client-s3';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { countsSince, requestCounts, s3Client } from '../commons/clients';
import { readConfig, required } from '../commons/config';
import { describeError } from '../commons/errors';
import { loadRedshiftModel } from '../commons/inference';
import { logger, markInitDone, startInvocation } from '../commons/lambda';
import type { RankItem } from '../commons/manifest';
import { outputKeys, runRank } from '../commons/rank';
import { workerSettings } from '../commons/tuning';
import type { FailedAttempt, RankOutcome } from '../commons/summary';

// INIT: configuration and the ONNX session, once per container.
const config = readConfig();
// Threads and batch size for this memory size, as `npm run bench` measured them; the environment's
// INTRA_OP_THREADS and the payload's batch_size win when given.
const tuned = workerSettings(config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
const threads = config.INTRA_OP_THREADS ?? tuned.threads;
const model = await loadRedshiftModel(required(config, 'MODEL_PATH'), { intraOpThreads: threads });
markInitDone();

/** One Distributed Map item: one rank's partitions through the model. */
export const handler = middy(async (item: RankItem, context?: Context): Promise<RankOutcome> => {
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
    logger.info('rank done', { runId: item.runId, rank: item.rank, samples: result.samples, failures: result.failures.length });
    return { rank: item.rank, status: 'SUCCEEDED' };
  } catch (error) {
    // This attempt is billed even though it wrote no result: leave a record for the summary.
    const bill = clock.bill();
    const requests = countsSince(requestsBefore);
    requests.s3Put += 1; // this record's own PUT
    const attempt: FailedAttempt = {
      rank: item.rank,
      durationMs: bill.durationMs,
      initMs: bill.initMs,
      memoryMb: bill.memoryMb,
      error: describeError(error),
      requests,
    };
    const id = context?.awsRequestId ?? `${Date.now()}`;
    await s3Client()
      .send(
        new PutObjectCommand({
          Bucket: item.resultBucket,
          Key: outputKeys(item.resultPath).attempt(item.rank, id),
          Body: JSON.stringify(attempt),
        }),
      )
      .catch((e) => logger.warn('could not record the failed attempt', { error: describeError(e) }));
    logger.error('rank failed', { runId: item.runId, rank: item.rank, error: describeError(error) });
    throw error;
  }
});
