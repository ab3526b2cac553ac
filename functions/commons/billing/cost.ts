import type { LambdaInvocation } from '../aws/invocation';
import type { Architecture } from '../model/lambda-sizing';

/**
 * What a run costs on AWS, billed the way AWS bills it, and the prototype's own formula beside it.
 *
 * Lambda: configured memory (not memory used) × billed duration, where the billed duration is the
 * invocation's duration plus its INIT phase (billed for on-demand functions since 1 Aug 2025),
 * rounded up to the millisecond; plus a per-request charge; plus ephemeral storage configured above
 * 512 MB, per GB-second of the same billed duration. Step Functions (standard): per state
 * transition — the Distributed Map's child executions' states and every retry count. S3: per GET,
 * PUT and LIST request. DynamoDB on demand: per write and read request unit. KMS: per request, one
 * behind each GET and PUT of an SSE-KMS object.
 */

/** Lambda's architectures, each billed at its own price (their rates are planned in model/lambda-sizing.ts). */
export type { Architecture };

export interface PriceTable {
  /** USD per GB-second of configured memory. */
  lambdaGbSecond: Record<Architecture, number>;
  /** USD per GB-second of ephemeral storage configured above the 512 MB Lambda includes. */
  lambdaEphemeralGbSecond: Record<Architecture, number>;
  lambdaRequest: number;
  stepFunctionsTransition: number;
  s3Get: number;
  s3Put: number;
  s3List: number;
  dynamoWrite: number;
  dynamoRead: number;
  /** USD per KMS API request (https://aws.amazon.com/kms/pricing/). */
  kmsRequest: number;
}

/** Public on-demand list prices (first tier), as published in 2025–2026. One place for all of them. */
const US_PRICES: PriceTable = {
  lambdaGbSecond: { x86_64: 0.0000166667, arm64: 0.0000133334 },
  lambdaEphemeralGbSecond: { x86_64: 0.0000000309, arm64: 0.0000000309 },
  lambdaRequest: 0.2 / 1e6,
  stepFunctionsTransition: 0.025 / 1000,
  s3Get: 0.0004 / 1000,
  s3Put: 0.005 / 1000,
  s3List: 0.005 / 1000,
  dynamoWrite: 0.625 / 1e6,
  dynamoRead: 0.125 / 1e6,
  kmsRequest: 0.03 / 10_000,
};

export const PRICES: Record<string, PriceTable> = {
  'us-east-1': US_PRICES,
  'us-east-2': US_PRICES,
  'us-west-2': US_PRICES,
};

/** The region whose prices bill a region CAI has no table for. */
export const FALLBACK_PRICE_REGION = 'us-east-1';

export interface RegionPrices {
  prices: PriceTable;
  /** The region whose table was used. */
  priceRegion: string;
  /** Set when that is not the run's own region: a cost is still recorded, and says so. */
  warning?: string;
}

/** A region's prices; a region without a table is billed at us-east-1's, with a warning, never not at all. */
export function pricesFor(region: string): RegionPrices {
  if (PRICES[region]) return { prices: PRICES[region], priceRegion: region };
  return {
    prices: PRICES[FALLBACK_PRICE_REGION],
    priceRegion: FALLBACK_PRICE_REGION,
    warning: `no price table for region ${region} (known: ${Object.keys(PRICES).join(', ')}): the cost uses ${FALLBACK_PRICE_REGION} prices`,
  };
}

export interface LambdaBill {
  billedMs: number;
  gbSeconds: number;
  computeUsd: number;
  requestUsd: number;
  /** GB-seconds of ephemeral storage above the included 512 MB, over the same billed duration. */
  storageGbSeconds: number;
  storageUsd: number;
}

/** Ephemeral storage Lambda includes in its price (https://aws.amazon.com/lambda/pricing/). */
export const INCLUDED_EPHEMERAL_MB = 512;

export function billLambda(invocation: LambdaInvocation, architecture: Architecture, prices: PriceTable): LambdaBill {
  const billedMs = Math.ceil(invocation.durationMs + invocation.initMs);
  const gbSeconds = (invocation.memoryMb / 1024) * (billedMs / 1000);
  const extraMb = Math.max(0, (invocation.ephemeralStorageMb ?? INCLUDED_EPHEMERAL_MB) - INCLUDED_EPHEMERAL_MB);
  const storageGbSeconds = (extraMb / 1024) * (billedMs / 1000);
  return {
    billedMs,
    gbSeconds,
    computeUsd: gbSeconds * prices.lambdaGbSecond[architecture],
    requestUsd: prices.lambdaRequest,
    storageGbSeconds,
    storageUsd: storageGbSeconds * prices.lambdaEphemeralGbSecond[architecture],
  };
}

/** S3 requests of a run, by price class. */
export interface S3Requests {
  get: number;
  put: number;
  list: number;
}

export interface RunUsage {
  invocations: LambdaInvocation[];
  stateTransitions: number;
  s3: S3Requests;
  /** DynamoDB write and read request units (billing/dynamo-units.ts). */
  dynamo: { writes: number; reads: number };
  /** KMS requests behind S3 requests for SSE-KMS objects, and of them those under an S3 Bucket Key (an upper bound of what KMS saw). */
  kms?: { requests: number; bucketKey: number };
}

export interface CostBreakdown {
  region: string;
  /** Whose prices billed it: the region's own, or us-east-1's when CAI has no table for it (see warning). */
  priceRegion: string;
  warning?: string;
  architecture: Architecture;
  lambda: {
    invocations: number;
    gbSeconds: number;
    computeUsd: number;
    requestsUsd: number;
    /** Ephemeral storage above 512 MB: GB-seconds and their price. */
    storageGbSeconds: number;
    storageUsd: number;
  };
  stepFunctions: { transitions: number; usd: number };
  s3: S3Requests & { usd: number };
  dynamodb: { writes: number; reads: number; usd: number };
  /**
   * One KMS request per GET or PUT of an SSE-KMS object. Under an S3 Bucket Key KMS sees about one
   * per data key's lifetime instead: those are billed as counted, an upper bound (`bucketKey` of them).
   */
  kms: { requests: number; bucketKey: number; usd: number };
  totalUsd: number;
}

export function billRun(usage: RunUsage, region: string, architecture: Architecture): CostBreakdown {
  const { prices, priceRegion, warning } = pricesFor(region);
  const bills = usage.invocations.map((i) => billLambda(i, architecture, prices));
  const lambda = {
    invocations: bills.length,
    gbSeconds: bills.reduce((s, b) => s + b.gbSeconds, 0),
    computeUsd: bills.reduce((s, b) => s + b.computeUsd, 0),
    requestsUsd: bills.reduce((s, b) => s + b.requestUsd, 0),
    storageGbSeconds: bills.reduce((s, b) => s + b.storageGbSeconds, 0),
    storageUsd: bills.reduce((s, b) => s + b.storageUsd, 0),
  };
  const stepFunctions = { transitions: usage.stateTransitions, usd: usage.stateTransitions * prices.stepFunctionsTransition };
  const s3 = {
    ...usage.s3,
    usd: usage.s3.get * prices.s3Get + usage.s3.put * prices.s3Put + usage.s3.list * prices.s3List,
  };
  const dynamodb = {
    ...usage.dynamo,
    usd: usage.dynamo.writes * prices.dynamoWrite + usage.dynamo.reads * prices.dynamoRead,
  };
  const kmsRequests = usage.kms ?? { requests: 0, bucketKey: 0 };
  const kms = { ...kmsRequests, usd: kmsRequests.requests * prices.kmsRequest };
  return {
    region,
    priceRegion,
    ...(warning ? { warning } : {}),
    architecture,
    lambda,
    stepFunctions,
    s3,
    dynamodb,
    kms,
    totalUsd: lambda.computeUsd + lambda.requestsUsd + lambda.storageUsd + stepFunctions.usd + s3.usd + dynamodb.usd + kms.usd,
  };
}

/** The prototype's rate, USD per GB-second (seeds/001). */
export const PROTOTYPE_GB_SECOND = 0.00001667;

/**
 * The prototype's formula: requests × duration × memory used × $0.00001667 (its table in
 * seeds/001). It bills memory used rather than configured, and ignores every other charge.
 */
export function prototypeCost(requests: number, durationSeconds: number, memoryUsedGb: number): number {
  return requests * durationSeconds * memoryUsedGb * PROTOTYPE_GB_SECOND;
}
