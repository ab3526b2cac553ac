import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { functionConfig } from '../../local/template';
import { ROOT } from '../../local/paths';

/** Properties of statemachine/cai.asl.json that AWS's behaviour at scale depends on. */
interface Retrier {
  ErrorEquals: string[];
  IntervalSeconds: number;
  MaxAttempts: number;
  BackoffRate: number;
  MaxDelaySeconds?: number;
  JitterStrategy?: string;
}
const definition = JSON.parse(readFileSync(join(ROOT, 'statemachine', 'cai.asl.json'), 'utf8'));
const inferRank = definition.States.Infer.ItemProcessor.States.InferRank;

/** Seconds of waiting a retrier allows in all, before jitter (full jitter waits half of it on average). */
function retrySpan(r: Retrier): number {
  let total = 0;
  for (let attempt = 0; attempt < r.MaxAttempts; attempt++) {
    total += Math.min(r.IntervalSeconds * r.BackoffRate ** attempt, r.MaxDelaySeconds ?? Infinity);
  }
  return total;
}

test("a throttled rank keeps retrying longer than a rank holds its slot (the inference function's timeout)", () => {
  const throttling = (inferRank.Retry as Retrier[]).find((r) => r.ErrorEquals.includes('Lambda.TooManyRequestsException'))!;
  const timeout = functionConfig(ROOT, 'InferenceFunction').timeoutS;
  expect(timeout).toBe(900);
  const expected = throttling.JitterStrategy === 'FULL' ? retrySpan(throttling) / 2 : retrySpan(throttling);
  expect(expected).toBeGreaterThan(timeout);
  // The rule itself can fail: the policy this replaced gave up after about a minute.
  expect(retrySpan({ ...throttling, IntervalSeconds: 1, MaxAttempts: 6, MaxDelaySeconds: 30 })).toBe(61);
});

test("the rank task's timeout exceeds the function's, so Lambda's own timeout is what a rank meets", () => {
  expect(inferRank.TimeoutSeconds).toBeGreaterThan(functionConfig(ROOT, 'InferenceFunction').timeoutS);
  expect(definition.States.Summarize.TimeoutSeconds).toBeGreaterThan(functionConfig(ROOT, 'SummarizerFunction').timeoutS);
});

const throttlingOf = (state: { Retry?: Retrier[] }) => state.Retry?.find((r) => r.ErrorEquals.includes('Lambda.TooManyRequestsException'));

test("the summary's two tasks wait out throttling as a rank does: another run's ranks may hold every slot for their whole timeout", () => {
  const timeout = functionConfig(ROOT, 'InferenceFunction').timeoutS;
  const rank = throttlingOf(inferRank)!;
  for (const name of ['Summarize', 'RecordFailure']) {
    const throttling = throttlingOf(definition.States[name]);
    expect([name, throttling]).toEqual([name, rank]);
    expect(retrySpan(throttling!) / 2).toBeGreaterThan(timeout);
  }
  // The rule fails the retrier Summarize had: 5 attempts from 1 s give up after ~15 s of throttling (31 s without jitter).
  const before: Retrier = { ...rank, IntervalSeconds: 1, MaxAttempts: 5, MaxDelaySeconds: undefined };
  expect(retrySpan(before)).toBe(31);
  expect(retrySpan(before) / 2).toBeLessThan(timeout);
});

/**
 * The States Language's rules for Retry and Catch: "States.ALL" stands alone in its ErrorEquals and
 * in the last retrier (or catcher); a retrier after it could never match.
 */
function errorHandlingProblems(states: Record<string, Record<string, unknown>>, where = ''): string[] {
  const problems: string[] = [];
  for (const [name, state] of Object.entries(states)) {
    for (const field of ['Retry', 'Catch'] as const) {
      const entries = (state[field] as { ErrorEquals: string[] }[] | undefined) ?? [];
      entries.forEach((entry, index) => {
        if (!entry.ErrorEquals.includes('States.ALL')) return;
        if (entry.ErrorEquals.length > 1) problems.push(`${where}${name}.${field}[${index}]: States.ALL is not alone`);
        if (index !== entries.length - 1) problems.push(`${where}${name}.${field}[${index}]: States.ALL is not last`);
      });
    }
    const processor = (state.ItemProcessor ?? state.Iterator) as { States: Record<string, Record<string, unknown>> } | undefined;
    if (processor) problems.push(...errorHandlingProblems(processor.States, `${where}${name}/`));
  }
  return problems;
}

test("every Retry and Catch follows the States Language's rule for States.ALL; RecordFailure still retries any error", () => {
  expect(errorHandlingProblems(definition.States)).toEqual([]);
  const recordFailure = definition.States.RecordFailure.Retry as Retrier[];
  expect(recordFailure.at(-1)).toMatchObject({ ErrorEquals: ['States.ALL'], MaxAttempts: 3 });
  // The control: the catch-all first, where it would take every throttle for its 3 attempts.
  const reordered = structuredClone(definition.States);
  reordered.RecordFailure.Retry.reverse();
  expect(errorHandlingProblems(reordered)).toEqual(['RecordFailure.Retry[0]: States.ALL is not last']);
});
