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
