import { resolve } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Command } from 'commander';
import { createDynamoClient, createS3Client } from '../../functions/commons/aws/clients';
import { parseS3Uri } from '../../functions/commons/aws/s3-uri';
import { UsageError } from '../../functions/commons/errors';
import type { RetryPayload } from '../../functions/commons/run/contracts';
import { planRetry, RetryRefusal } from '../../functions/commons/run/retry';
import { RunStore } from '../../functions/commons/run/run-store';
import { servedStack } from '../../local/served-stack';
import { withServices, type ServiceOptions } from '../services';

/**
 * `cai runs retry <runId>`: uploads `{"retry_of": "<runId>"}` as a user's payload would be, to the
 * control bucket the earlier run's payload came from, so the initializer runs the retry on AWS as
 * locally (functions/commons/run/retry.ts). What it would do is worked out first, by the same
 * code, so a retry with nothing to do or of no such run is one line and nothing is uploaded.
 */
export function addRunsRetryCommand(runs: Command): void {
  runs
    .command('retry')
    .description(
      "run again only what a run did not finish (its failed partitions, its ranks without a result), with its payload and model's version",
    )
    .argument('<runId>')
    .action(async (runId: string, _options: unknown, command: Command) => {
      // --aws, --table and --dir belong to `runs`; they may be given after `retry`.
      const options = command.optsWithGlobals<ServiceOptions & { table: string }>();
      if (!options.aws && !servedStack(resolve(options.dir)))
        throw new UsageError(
          `no stack serves ${resolve(options.dir)}: a retry is a payload its initializer runs; start one with npx cai stack up, or give --aws`,
        );
      const line = await withServices(options, { s3: true, dynamodb: true }, async (env, table) => {
        const s3 = createS3Client(env);
        const plan = await planRetry(runId, new RunStore(createDynamoClient(env), table), s3).catch((error: unknown) => {
          throw error instanceof RetryRefusal ? new UsageError(error.message, { cause: error }) : error;
        });
        // The payload goes where the earlier one was uploaded: the stack's control bucket, under runs/.
        const { bucket } = parseS3Uri(plan.earlier.payloadUri);
        const key = `runs/retry-${runId}/payload.json`;
        const payload: RetryPayload = { retry_of: runId };
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify(payload), ContentType: 'application/json' }));
        const what =
          plan.kind === 'rerun'
            ? `${plan.partitions.length} of its ${plan.earlier.partitions ?? 0} partitions to run again`
            : `every partition has its predictions: it is summarized again, no rank run`;
        return `retry of ${runId} (${plan.earlier.status}): ${what}; uploaded s3://${bucket}/${key} (cai runs shows the retry)`;
      });
      process.stdout.write(`${line}\n`);
    });
}
