import { initializeRun, OUTCOME_RESERVE_MS } from '../../functions/commons/run/initialize';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { fakeInitializer } from '../helpers/fake-aws';

/**
 * The initializer records the run before it validates anything, so an invocation that dies or runs
 * out of time leaves a record; it records FAILED itself before its deadline; an event delivered again
 * carries a RUNNING run on and leaves a finished one alone.
 */
const payload = { bucket: 'cai-control', data_bucket: 'cai-control', data_prefix: 'data/d', result_path: 'r' };
const objects = {
  'runs/x/payload.json': { body: JSON.stringify(payload) },
  'data/d/1.pt': { bytes: 1000 },
  'data/d/2.pt': { bytes: 1000 },
};
const event = { bucket: 'cai-control', key: 'runs/x/payload.json', sequencer: '1' };

test('the run is recorded RUNNING before the payload is read, then completed with its plan', async () => {
  const fake = fakeInitializer(objects);
  const send = fake.context.s3.send.bind(fake.context.s3);
  const seenAtFirstRead: RunRecord[] = [];
  fake.context.s3.send = (async (command: never) => {
    if (seenAtFirstRead.length === 0) seenAtFirstRead.push(...structuredClone([...fake.records.values()]));
    return send(command);
  }) as never;
  const outcome = await initializeRun(event, fake.context);
  expect(outcome.outcome).toBe('STARTED');
  expect(seenAtFirstRead).toEqual([
    expect.objectContaining({ runId: outcome.runId, status: 'RUNNING', payloadUri: 's3://cai-control/runs/x/payload.json', dataset: '-' }),
  ]);
  expect(fake.records.get(outcome.runId)).toMatchObject({
    status: 'RUNNING',
    payload,
    dataset: 'cai-control/data/d/',
    executionName: outcome.runId,
    partitions: 2,
    ranks: 2,
  });
});

test('a listing that would outlast the invocation: FAILED before the deadline, saying where it was, and nothing starts', async () => {
  const fake = fakeInitializer(objects, { deadline: Date.now() + OUTCOME_RESERVE_MS + 200 });
  const send = fake.context.s3.send.bind(fake.context.s3);
  // S3 never answers the listing: only the deadline ends it.
  fake.context.s3.send = (async (command: { constructor: { name: string } }) =>
    command.constructor.name === 'ListObjectsV2Command' ? new Promise(() => {}) : send(command as never)) as never;
  const outcome = await initializeRun(event, fake.context);
  const error = expect.stringMatching(
    /^could not start the run: the initializer ran out of time after \d+\.\d s listing s3:\/\/cai-control\/data\/d\/ \(0 pages so far\); upload the payload again, or raise the InitializerFunction's Timeout in template\.yaml$/,
  );
  expect(outcome).toEqual({ runId: expect.any(String), outcome: 'REJECTED', error });
  expect(fake.records.get(outcome.runId)).toMatchObject({ status: 'FAILED', error, payload, dataset: 'cai-control/data/d/' });
  expect(fake.started).toEqual([]);
  expect(fake.written).toEqual({});
});

test('an event delivered again: a RUNNING run is carried on (its first delivery died), a finished one is left alone', async () => {
  const fake = fakeInitializer(objects);
  const { runId } = await initializeRun(event, fake.context);
  // As a first delivery leaves it when it died after writing the record: RUNNING, nothing of its plan, nothing started.
  fake.records.set(runId, { ...fake.records.get(runId)!, executionName: undefined, partitions: undefined, ranks: undefined });
  fake.started.length = 0;
  const resumed = await initializeRun(event, fake.context);
  expect(resumed).toMatchObject({ runId, outcome: 'STARTED' });
  expect(fake.started).toHaveLength(1);
  expect(fake.records.get(runId)).toMatchObject({ status: 'RUNNING', executionName: runId });

  fake.records.set(runId, { ...fake.records.get(runId)!, status: 'FAILED', error: 'refused' });
  fake.started.length = 0;
  expect(await initializeRun(event, fake.context)).toEqual({ runId, outcome: 'DUPLICATE' });
  expect(fake.started).toEqual([]);
  expect(fake.records.get(runId)).toMatchObject({ status: 'FAILED', error: 'refused' });
});
