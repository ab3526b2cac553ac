import { initializeRun } from '../../functions/commons/run/initialize';
import { fakeInitializer } from '../helpers/fake-aws';

/** The Map runs at most what the account lets the inference function run (GetAccountSettings), never more than MaxConcurrency. */
async function start(available: () => Promise<number>) {
  const objects = {
    'runs/q/payload.json': {
      body: JSON.stringify({ bucket: 'cai-control', data_bucket: 'cai-control', data_prefix: 'data/d', result_path: 'r' }),
    },
    'data/d/1.pt': { bytes: 1000 },
    'data/d/2.pt': { bytes: 1000 },
  };
  const fake = fakeInitializer(objects, { maxConcurrency: 100, availableConcurrency: available });
  const outcome = await initializeRun({ bucket: 'cai-control', key: 'runs/q/payload.json', sequencer: '1' }, fake.context);
  expect(outcome.outcome).toBe('STARTED');
  const record = [...fake.records.values()][0];
  return { maxConcurrency: JSON.parse(fake.started[0].input).maxConcurrency as number, warnings: record.warnings };
}

test("a new account's 10 free executions: the Map runs 10 ranks at once, and the run says why", async () => {
  expect(await start(async () => 10)).toEqual({
    maxConcurrency: 10,
    warnings: [
      'MaxConcurrency 100 is more than the 10 concurrent executions the inference function can have in this account (GetAccountSettings); the run uses 10 ranks at once (ask Service Quotas for more)',
    ],
  });
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
