import { UsageError } from '../../functions/commons/errors';
import { CONCURRENCY_HEADROOM, initializeRun } from '../../functions/commons/run/initialize';
import { checkReservedConcurrency } from '../../local/lambda-api';
import { ROOT } from '../../local/paths';
import { functionConfig } from '../../local/template';
import { fakeInitializer } from '../helpers/fake-aws';

/**
 * The Map runs at most what the account lets the inference function run (GetAccountSettings) less
 * what the summarizer and initializer need from the same pool, never more than MaxConcurrency.
 */
async function start(available: () => Promise<number>, options: { maxConcurrency?: number; reservedConcurrency?: boolean } = {}) {
  const objects = {
    'runs/q/payload.json': {
      body: JSON.stringify({ bucket: 'cai-control', data_bucket: 'cai-control', data_prefix: 'data/d', result_path: 'r' }),
    },
    'data/d/1.pt': { bytes: 1000 },
    'data/d/2.pt': { bytes: 1000 },
  };
  const fake = fakeInitializer(objects, { maxConcurrency: 100, availableConcurrency: available, ...options });
  const outcome = await initializeRun({ bucket: 'cai-control', key: 'runs/q/payload.json', sequencer: '1' }, fake.context);
  expect(outcome.outcome).toBe('STARTED');
  const record = [...fake.records.values()][0];
  return { maxConcurrency: JSON.parse(fake.started[0].input).maxConcurrency as number, warnings: record.warnings };
}

test("a new account's 10 executions: the Map runs 9 ranks at once, one left for the summary, and the run says why", async () => {
  expect(CONCURRENCY_HEADROOM).toBe(1);
  expect(await start(async () => 10)).toEqual({
    maxConcurrency: 9,
    warnings: [
      'MaxConcurrency 100 is more than the 10 concurrent executions the inference function can have in this account (GetAccountSettings) less 1 kept for the summarizer and the initializer; the run uses 9 ranks at once (ask Service Quotas for more)',
    ],
  });
});

test('MaxConcurrency equal to the pool leaves the headroom too; one more than it fits as set', async () => {
  expect(await start(async () => 10, { maxConcurrency: 10 })).toMatchObject({ maxConcurrency: 9, warnings: [expect.any(String)] });
  expect(await start(async () => 11, { maxConcurrency: 10 })).toEqual({ maxConcurrency: 10, warnings: [] });
});

test('a pool of one: the Map still runs one rank, and the warning says the summarizer has no room of its own', async () => {
  expect(await start(async () => 1)).toEqual({
    maxConcurrency: 1,
    warnings: [
      'MaxConcurrency 100 is more than the 1 concurrent executions the inference function can have in this account (GetAccountSettings) less 1 kept for the summarizer and the initializer; the run uses 1 rank at once, the least there is, which leaves the summarizer no room of its own (ask Service Quotas for more)',
    ],
  });
});

test("a reserved concurrency is the inference function's alone: the Map takes all of it", async () => {
  expect(await start(async () => 10, { reservedConcurrency: true })).toEqual({
    maxConcurrency: 10,
    warnings: [
      'MaxConcurrency 100 is more than the 10 concurrent executions reserved for the inference function; the run uses 10 ranks at once (raise InferenceReservedConcurrency)',
    ],
  });
  expect(await start(async () => 100, { reservedConcurrency: true })).toEqual({ maxConcurrency: 100, warnings: [] });
});

test('an account with room runs MaxConcurrency as set; an unreadable quota is said, not fatal', async () => {
  expect(await start(async () => 900)).toEqual({ maxConcurrency: 100, warnings: [] });
  const denied = Object.assign(new Error('User is not authorized to perform: lambda:GetAccountSettings'), {
    name: 'AccessDeniedException',
  });
  expect(
    await start(async () => {
      throw denied;
    }),
  ).toEqual({
    maxConcurrency: 100,
    warnings: [
      "could not read the account's Lambda concurrency (AccessDeniedException: User is not authorized to perform: lambda:GetAccountSettings); MaxConcurrency 100 is used as set",
    ],
  });
});

describe('a concurrency reserved for the inference function (InferenceReservedConcurrency)', () => {
  const reserved = (id: string, overrides: Record<string, string> = {}) => functionConfig(ROOT, id, { overrides }).reservedConcurrency;

  test('the template reserves it for the inference function alone, and reserves none at 0 (a reservation of 0 would stop it)', () => {
    expect(reserved('InferenceFunction')).toBeUndefined();
    expect(reserved('InferenceFunction', { InferenceReservedConcurrency: '0' })).toBeUndefined();
    expect(reserved('InferenceFunction', { InferenceReservedConcurrency: '50' })).toBe(50);
    expect(reserved('InitializerFunction', { InferenceReservedConcurrency: '50' })).toBeUndefined();
    expect(reserved('SummarizerFunction', { InferenceReservedConcurrency: '50' })).toBeUndefined();
  });

  test("must leave 100 of the account's concurrency unreserved, as Lambda refuses it otherwise", () => {
    expect(() => checkReservedConcurrency(900, 1000)).not.toThrow();
    expect(() => checkReservedConcurrency(undefined, 10)).not.toThrow();
    expect(() => checkReservedConcurrency(901, 1000)).toThrow(UsageError);
    expect(() => checkReservedConcurrency(901, 1000)).toThrow(
      `InferenceReservedConcurrency 901 would leave 99 of the account's 1000 unreserved, and Lambda refuses it as a deploy would ("Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [100]."): reserve at most 900`,
    );
    // A new account's 10: no reservation at all.
    expect(() => checkReservedConcurrency(1, 10)).toThrow(/would leave 9 of the account's 10 unreserved, .*: reserve at most 0$/);
  });
});
