import { initializeRun } from '../../functions/commons/run/initialize';
import { PlanError, planRanks, summarizableRanks } from '../../functions/commons/run/rank-plan';
import type { RankItem } from '../../functions/commons/run/contracts';
import { fakeInitializer } from '../helpers/fake-aws';

/**
 * 200,000 partitions, past where a spread of one array into a call's arguments overflows the stack
 * (120,000–130,000 on Node 20): the real planner, and the initializer over a listing of 200 pages.
 */
const COUNT = 200_000;
const partitions = Array.from({ length: COUNT }, (_, i) => ({ key: `data/sky/${i + 1}.pt`, bytes: 1_000_000 + (i % 7) * 1000 }));
const payload = { bucket: 'cai-control', data_bucket: 'cai-control', data_prefix: 'data/sky', result_path: 'results/sky' };
const limits = { memoryMb: 1769, timeoutS: 900 };

test('the planner spreads 200,000 partitions over 2,000 ranks, and over one rank each by default', () => {
  const plan = planRanks('sky-1', { ...payload, world_size: 2000 }, partitions, limits);
  expect(plan.items).toHaveLength(2000);
  expect(plan.items.reduce((n, item) => n + item.partitions.length, 0)).toBe(COUNT);
  expect(planRanks('sky-1', payload, partitions, limits).items).toHaveLength(COUNT);
});

test('a world_size too small for 200,000 partitions is refused with the smallest that fits', () => {
  const refused = (() => {
    try {
      planRanks('sky-1', { ...payload, world_size: 20 }, partitions, limits);
    } catch (error) {
      return error;
    }
  })();
  expect(refused).toBeInstanceOf(PlanError);
  expect((refused as PlanError).message).toMatch(/the smallest world_size that fits is \d+/);
});

test('the initializer starts a run of 200,000 partitions listed in 200 pages', async () => {
  const objects: Record<string, { body?: string; bytes?: number }> = {
    'runs/sky/payload.json': { body: JSON.stringify({ ...payload, world_size: 2000 }) },
  };
  for (const p of partitions) objects[p.key] = { bytes: p.bytes };
  const { context, written, started } = fakeInitializer(objects);
  const outcome = await initializeRun({ bucket: 'cai-control', key: 'runs/sky/payload.json', sequencer: '1' }, context);
  expect(outcome).toEqual({
    runId: expect.any(String),
    executionArn: expect.any(String),
    outcome: 'STARTED',
    partitions: COUNT,
    ranks: 2000,
  });
  expect(started).toHaveLength(1);
  const manifest = JSON.parse(Object.values(written)[0]) as RankItem[];
  expect(manifest.reduce((n, item) => n + item.partitions.length, 0)).toBe(COUNT);
});

test('one object more than 200 pages of listing: refused at validation, naming data_prefix, before anything is planned', async () => {
  const objects: Record<string, { body?: string; bytes?: number }> = {
    'runs/sky/payload.json': { body: JSON.stringify({ ...payload, world_size: 2000 }) },
    'data/sky/0.pt': { bytes: 1_000_000 },
  };
  for (const p of partitions) objects[p.key] = { bytes: p.bytes };
  const { context, records, started } = fakeInitializer(objects);
  const outcome = await initializeRun({ bucket: 'cai-control', key: 'runs/sky/payload.json', sequencer: '1' }, context);
  const message =
    "s3://cai-control/data/sky/ holds more than 200,000 objects (200 pages of S3's listing), more than one run lists: split its partitions into folders of at most 200,000";
  expect(outcome).toMatchObject({ outcome: 'REJECTED', error: message });
  expect([...records.values()]).toEqual([
    expect.objectContaining({ status: 'FAILED', error: message, errors: [{ field: 'data_prefix', message }] }),
  ]);
  expect(started).toHaveLength(0);
});

test('an unforeseen error in the initializer is recorded on the run, FAILED with the error, rather than lost', async () => {
  const { context, records } = fakeInitializer({ 'runs/x/payload.json': { body: JSON.stringify(payload) } });
  context.s3.send = (async () => {
    throw new RangeError('Maximum call stack size exceeded');
  }) as never;
  const outcome = await initializeRun({ bucket: 'cai-control', key: 'runs/x/payload.json', sequencer: '1' }, context);
  expect(outcome).toMatchObject({ outcome: 'REJECTED', error: 'could not start the run: RangeError: Maximum call stack size exceeded' });
  expect([...records.values()]).toEqual([
    expect.objectContaining({ status: 'FAILED', error: 'could not start the run: RangeError: Maximum call stack size exceeded' }),
  ]);
});

test("more ranks than the summarizer's memory holds are refused at validation, naming SummarizerMemorySize", async () => {
  expect(summarizableRanks(1024)).toBe(35_617); // 80 % of 1,024 MB at 23 KB a rank (236 MB measured at 10,240)
  const objects: Record<string, { body?: string; bytes?: number }> = {
    'runs/sky/payload.json': { body: JSON.stringify(payload) }, // one rank per partition: 200,000
  };
  for (const p of partitions) objects[p.key] = { bytes: p.bytes };
  const refused = fakeInitializer(objects, { summarizerMemoryMb: 1024 });
  const outcome = await initializeRun({ bucket: 'cai-control', key: 'runs/sky/payload.json', sequencer: '1' }, refused.context);
  expect(outcome).toMatchObject({
    outcome: 'REJECTED',
    error:
      "200000 ranks are more than the summarizer summarizes in its 1024 MB (at most 35617, 23 KB a rank): set world_size to at most 35617, or raise the template's SummarizerMemorySize",
  });
  expect(refused.started).toHaveLength(0);
  // The control: with the memory for them, the same payload starts.
  const roomy = fakeInitializer(objects, { summarizerMemoryMb: 10240 });
  expect(await initializeRun({ bucket: 'cai-control', key: 'runs/sky/payload.json', sequencer: '1' }, roomy.context)).toMatchObject({
    outcome: 'STARTED',
    ranks: COUNT,
  });
}, 60_000);
