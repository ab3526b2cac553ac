import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../functions/commons/errors';
import { startLocalDynamo } from '../local/dynamo-server';
import { startLocalS3 } from '../local/s3-server';
import { servedStack, stackEnvironment } from '../local/served-stack';

export interface ServiceOptions {
  aws?: boolean;
  dir: string;
  table?: string;
}

/**
 * Where a command finds runs and data: on AWS (--aws), on the stack another process serves from
 * --dir, or in the local stack's files under --dir, whose servers start for the command and stop
 * after it. `use` gets the environment that points the AWS SDK there, and the runs table's name.
 */
export async function withServices<T>(
  options: ServiceOptions,
  needs: { s3?: boolean; dynamodb?: boolean },
  use: (env: NodeJS.ProcessEnv, table: string) => Promise<T>,
): Promise<T> {
  const table = options.table ?? '';
  if (options.aws) return use(process.env, table);
  const directory = resolve(options.dir);
  const served = servedStack(directory);
  if (served) return use({ ...process.env, ...stackEnvironment(served) }, served.table);
  if (needs.dynamodb && !existsSync(join(directory, 'dynamodb')))
    throw new UsageError(`no local runs under ${directory} yet: npm start makes one`);
  const s3 = needs.s3 ? await startLocalS3(join(directory, 's3')) : undefined;
  const dynamo = needs.dynamodb
    ? await startLocalDynamo(join(directory, 'dynamodb')).catch(async (error: unknown) => {
        await s3?.close();
        throw error;
      })
    : undefined;
  try {
    return await use(
      {
        ...process.env,
        AWS_REGION: 'us-east-1',
        ...(s3 ? { CAI_S3_ENDPOINT: s3.endpoint } : {}),
        ...(dynamo ? { CAI_DYNAMODB_ENDPOINT: dynamo.endpoint } : {}),
      },
      table,
    );
  } catch (error) {
    // A folder whose stack never got as far as its table, or another --table.
    if ((error as Error).name !== 'ResourceNotFoundException' || !dynamo) throw error;
    throw new UsageError(`no runs table ${table} under ${directory}: npm start makes one`, { cause: error });
  } finally {
    await Promise.all([s3?.close(), dynamo?.close()]);
  }
}
