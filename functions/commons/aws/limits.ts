/**
 * AWS's quotas that CAI plans within and the local stack enforces, each named for what it limits,
 * with the page that documents it.
 */

/** A state's input or output, a task's parameters, one Map item: 256 KiB (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html). */
export const STATE_PAYLOAD_LIMIT_BYTES = 256 * 1024;

/** A synchronous Lambda invocation's request (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html). */
export const INVOKE_REQUEST_LIMIT_BYTES = 6_291_456;

/** A synchronous invocation's response: Lambda's message names this bound, 100 bytes over the request's. */
export const INVOKE_RESPONSE_LIMIT_BYTES = 6_291_556;

/**
 * GetExecutionHistory's token bucket, per account and region: 400 calls, refilled at 20 a second; a call
 * with none left is refused with ThrottlingException (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html,
 * API action throttling).
 */
export const GET_EXECUTION_HISTORY_RATE = { bucket: 400, refillPerSecond: 20 } as const;
