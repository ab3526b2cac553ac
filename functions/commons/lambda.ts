import { Logger } from '@aws-lambda-powertools/logger';
import type { LambdaInvocation } from './cost';

/**
 * What every handler shares: the structured logger, and the clock that says what Lambda bills
 * for an invocation (its duration, plus INIT on a container's first invocation).
 */
export const logger = new Logger({ serviceName: 'cai' });

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
  const init = initMs!;
  initMs = 0;
  const started = performance.now();
  return {
    initSeconds: init / 1000,
    bill: () => ({ memoryMb, durationMs: performance.now() - started, initMs: init }),
  };
}
