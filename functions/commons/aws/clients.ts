import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/**
 * The AWS clients every part of CAI uses, one of each per process (per Lambda container).
 * `CAI_S3_ENDPOINT`, `CAI_DYNAMODB_ENDPOINT` and `CAI_SFN_ENDPOINT` point them at the local stack;
 * otherwise they are the plain AWS clients with the usual credential and region chain.
 *
 * Every request is counted by kind, so runs can bill S3 and DynamoDB requests as AWS does: a DynamoDB
 * request that asked for its consumed capacity counts the units DynamoDB answered (indexes included).
 */
export interface RequestCounts {
  s3Get: number;
  s3Put: number;
  s3List: number;
  /** DynamoDB write request units (one per request that did not ask for its consumed capacity). */
  dynamoWrite: number;
  /** DynamoDB read request units, likewise. */
  dynamoRead: number;
  /**
   * GETs and PUTs of SSE-KMS objects: each asks KMS to decrypt or make a data key, billed per
   * request; absent in counts made before they were kept.
   */
  kms?: number;
  /** Of those, the ones under an S3 Bucket Key: KMS saw far fewer (one per bucket key's lifetime), so these bound them. */
  kmsBucketKey?: number;
}

const counts: Required<RequestCounts> = { s3Get: 0, s3Put: 0, s3List: 0, dynamoWrite: 0, dynamoRead: 0, kms: 0, kmsBucketKey: 0 };

/** The S3 requests that make S3 call KMS for an SSE-KMS object (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html). */
const KMS_ON: ReadonlySet<string> = new Set(['GetObjectCommand', 'PutObjectCommand', 'CopyObjectCommand', 'CreateMultipartUploadCommand']);

const KIND: Record<string, keyof RequestCounts> = {
  GetObjectCommand: 's3Get',
  HeadObjectCommand: 's3Get',
  PutObjectCommand: 's3Put',
  CopyObjectCommand: 's3Put',
  ListObjectsV2Command: 's3List',
  PutItemCommand: 'dynamoWrite',
  UpdateItemCommand: 'dynamoWrite',
  DeleteItemCommand: 'dynamoWrite',
  PutCommand: 'dynamoWrite',
  UpdateCommand: 'dynamoWrite',
  GetItemCommand: 'dynamoRead',
  GetCommand: 'dynamoRead',
  QueryCommand: 'dynamoRead',
};

/** Requests this process has sent so far; take the difference around a piece of work. */
export function requestCounts(): RequestCounts {
  return { ...counts };
}

export function countsSince(before: RequestCounts): RequestCounts {
  const now = requestCounts();
  return Object.fromEntries(
    Object.entries(now).map(([k, v]) => [k, v - (before[k as keyof RequestCounts] ?? 0)]),
  ) as unknown as RequestCounts;
}

/**
 * What DynamoDB says a request consumed (ReturnConsumedCapacity: the table's and its indexes' units,
 * https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html);
 * undefined when it was not asked, and the request counts as one.
 */
function consumedUnits(consumed: unknown): number | undefined {
  const units = (consumed as { CapacityUnits?: unknown } | undefined)?.CapacityUnits;
  return typeof units === 'number' && Number.isFinite(units) ? units : undefined;
}

type Counted = { middlewareStack: { add: (...args: never[]) => void } };
function counted<T extends Counted>(client: T): T {
  (client.middlewareStack.add as (m: unknown, o: unknown) => void)(
    (next: (a: unknown) => Promise<unknown>, context: { commandName?: string }) => async (args: unknown) => {
      const kind = context.commandName && KIND[context.commandName];
      let result: { output?: { ServerSideEncryption?: string; BucketKeyEnabled?: boolean; ConsumedCapacity?: unknown } };
      try {
        result = (await next(args)) as typeof result;
      } catch (error) {
        // A refused request (a failed condition, a throttle) says nothing of capacity: counted as one, as before.
        if (kind) counts[kind]++;
        throw error;
      }
      if (kind) counts[kind] += consumedUnits(result.output?.ConsumedCapacity) ?? 1;
      // S3 says in its answer how the object is encrypted: SSE-KMS means a KMS request behind this one.
      if (KMS_ON.has(context.commandName ?? '') && result.output?.ServerSideEncryption?.startsWith('aws:kms')) {
        counts.kms++;
        if (result.output.BucketKeyEnabled) counts.kmsBucketKey++;
      }
      return result;
    },
    // Once per attempt: a retried request is billed again.
    { step: 'finalizeRequest', name: 'caiRequestCounter' },
  );
  return client;
}

const region = (env: NodeJS.ProcessEnv) => env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
const localCredentials = (env: NodeJS.ProcessEnv, fallback: string) => ({
  accessKeyId: env.AWS_ACCESS_KEY_ID ?? fallback,
  secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? fallback,
});

/**
 * S3 answers a burst over its per-prefix request rate with 503 SlowDown while it scales, and now and
 * then with a 500 or a reset: retried with backoff, adaptive mode also slowing this client's own
 * requests after a throttle. Ten attempts ride out tens of seconds of it; then the rank fails and
 * the state machine retries it. (AWS SDKs and Tools reference guide, "Retry behavior".)
 */
export const S3_RETRY = { retryMode: 'adaptive', maxAttempts: 10 } as const;

export function createS3Client(env: NodeJS.ProcessEnv = process.env): S3Client {
  const config: S3ClientConfig = { region: region(env), ...S3_RETRY };
  if (env.CAI_S3_ENDPOINT) {
    // The embedded server needs path-style addressing and no request checksums.
    Object.assign(config, {
      endpoint: env.CAI_S3_ENDPOINT,
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      credentials: localCredentials(env, 'S3RVER'),
    } satisfies S3ClientConfig);
  }
  return counted(new S3Client(config));
}

export function createDynamoClient(env: NodeJS.ProcessEnv = process.env): DynamoDBDocumentClient {
  const base = new DynamoDBClient(
    env.CAI_DYNAMODB_ENDPOINT
      ? { region: region(env), endpoint: env.CAI_DYNAMODB_ENDPOINT, credentials: localCredentials(env, 'local') }
      : { region: region(env) },
  );
  return counted(DynamoDBDocumentClient.from(base, { marshallOptions: { removeUndefinedValues: true } }));
}

/**
 * Step Functions throttles StartExecution past the account's rate (a token bucket, per region) and
 * now and then answers 500 InternalFailure or 503 ServiceUnavailable: the SDK retries these and
 * network errors, with exponential backoff and full jitter (on a throttle from 1 s: 1, 2, 4, 8 s …),
 * six attempts in all, about 15 s of waiting on average and at most 31 s, inside the initializer's
 * time (it also stops at its deadline). Retrying is safe: StartExecution of the same name and input is
 * idempotent while the execution runs. Standard mode: adaptive mode's client-side rate limiter helps
 * a client that sends many requests, and each initializer sends one StartExecution; the jitter is
 * what spreads the retries of many initializers at once. (AWS SDKs and Tools reference guide,
 * "Retry behavior"; Step Functions API reference, StartExecution and common errors.)
 */
export const SFN_START_RETRY = { retryMode: 'standard', maxAttempts: 6 } as const;

/**
 * Step Functions refuses a call past its API's token bucket with ThrottlingException (the summary's
 * GetExecutionHistory reads: limits.ts): retried with backoff as S3's are, adaptive mode slowing this
 * client's own calls to the bucket's refill, rather than giving up after the default three attempts.
 */
export const SFN_READ_RETRY = { retryMode: 'adaptive', maxAttempts: 10 } as const;

/** How a Step Functions client retries: the initializer's one StartExecution, or the summarizer's many reads. */
export type SfnRetry = typeof SFN_START_RETRY | typeof SFN_READ_RETRY;

export function createSfnClient(env: NodeJS.ProcessEnv = process.env, retry: SfnRetry = SFN_READ_RETRY): SFNClient {
  return new SFNClient(
    env.CAI_SFN_ENDPOINT
      ? { region: region(env), endpoint: env.CAI_SFN_ENDPOINT, credentials: localCredentials(env, 'local'), ...retry }
      : { region: region(env), ...retry },
  );
}

/** Lambda's API, for the account's settings (`CAI_LAMBDA_ENDPOINT`: the local stack's stand-in). */
export function createLambdaClient(env: NodeJS.ProcessEnv = process.env): LambdaClient {
  return new LambdaClient(
    env.CAI_LAMBDA_ENDPOINT
      ? { region: region(env), endpoint: env.CAI_LAMBDA_ENDPOINT, credentials: localCredentials(env, 'local') }
      : { region: region(env) },
  );
}

let s3: S3Client | undefined;
let dynamo: DynamoDBDocumentClient | undefined;
let sfn: SFNClient | undefined;

export const s3Client = (): S3Client => (s3 ??= createS3Client());
export const dynamoClient = (): DynamoDBDocumentClient => (dynamo ??= createDynamoClient());
/** This Lambda's Step Functions client: the initializer asks for SFN_START_RETRY, the summarizer reads with the default. */
export const sfnClient = (retry: SfnRetry = SFN_READ_RETRY): SFNClient => (sfn ??= createSfnClient(process.env, retry));
