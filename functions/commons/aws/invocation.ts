import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';

/**
 * What every handler shares: the structured logger, CloudWatch metrics (embedded metric format in
 * the function's log), the middy wrapper that attaches both, and the clock that says what Lambda
 * bills for an invocation (its duration, plus INIT on a container's first invocation).
 */
export const logger = new Logger({ serviceName: 'cai' });
export const metrics = new Metrics({ namespace: 'CAI', serviceName: 'cai' });

/** A domain function as a Lambda handler: request id and cold start in every log line, metrics flushed. */
export function lambdaHandler<Event, Result>(handle: (event: Event, context: Context) => Promise<Result>) {
  return middy(handle)
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(logMetrics(metrics, { captureColdStartMetric: true }));
}

/** What one Lambda invocation took, as Lambda bills it. */
export interface LambdaInvocation {
  memoryMb: number;
  durationMs: number;
  /** INIT phase of a cold start; 0 for a warm invocation. */
  initMs: number;
  /** The function's configured ephemeral storage (/tmp, MB); absent: Lambda's 512 MB, which is not billed. */
  ephemeralStorageMb?: number;
}

export interface InvocationClock {
  /** Seconds of INIT to bill on this invocation: the container's INIT once, then 0. */
  initSeconds: number;
  /** Billing of this invocation so far. */
  bill(): LambdaInvocation;
}

let initMs: number | undefined;

/** Call at the end of module initialisation: everything until now was the INIT phase. */
export function markInitDone(): void {
  initMs ??= process.uptime() * 1000;
}

export function startInvocation(memoryMb: number): InvocationClock {
  markInitDone();
  const init = initMs as number;
  initMs = 0;
  const started = performance.now();
  return {
    initSeconds: init / 1000,
    bill: () => ({ memoryMb, durationMs: performance.now() - started, initMs: init }),
  };
}
