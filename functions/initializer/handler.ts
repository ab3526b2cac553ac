import middy from '@middy/core';
import type { S3Event } from 'aws-lambda';
import { countsSince, dynamoClient, requestCounts, s3Client, sfnClient } from '../commons/clients';
import { readConfig, required } from '../commons/config';
import { initializeRun, type InitializeOutcome } from '../commons/initialize';
import { logger, markInitDone, startInvocation } from '../commons/lambda';
import { RunStore } from '../commons/run-store';

const config = readConfig();
const runs = new RunStore(dynamoClient(), config.RUNS_TABLE);
const stateMachineArn = required(config, 'STATE_MACHINE_ARN');
markInitDone();

/** S3 ObjectCreated (suffix payload.json) → one run per uploaded payload. */
export const handler = middy(async (event: S3Event): Promise<InitializeOutcome[]> => {
  const clock = startInvocation(config.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
  const before = requestCounts();
  const outcomes: InitializeOutcome[] = [];
  for (const record of event.Records ?? []) {
    const key = decodeURIComponent(record.s3.object.key.replace(/\+/g, ' '));
    if (!key.endsWith('payload.json')) continue;
    const outcome = await initializeRun(
      { bucket: record.s3.bucket.name, key, sequencer: record.s3.object.sequencer, etag: record.s3.object.eTag },
      { s3: s3Client(), sfn: sfnClient(), runs, stateMachineArn, maxConcurrency: config.MAX_CONCURRENCY, invocation: clock.bill, requests: () => countsSince(before) },
    );
    logger.info('payload handled', { key, ...outcome });
    outcomes.push(outcome);
  }
  return outcomes;
});
