import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assignRanks, naturalCompare, planRun } from '../functions/commons/run/plan';
import { PayloadError, parsePayload, parsePayloadJson } from '../functions/commons/run/payload';
import { ROOT } from './helpers/python';

const demo = JSON.parse(readFileSync(join(ROOT, 'tests', 'fixtures', 'demo-input.json'), 'utf8'));

describe('payload.json', () => {
  test("the prototype's payload is accepted as it is, its Python-only fields ignored with a warning", () => {
    const { payload, warnings } = parsePayload(demo);
    expect(payload).toEqual({
      bucket: 'cosmicai-data',
      data_bucket: 'cosmicai-data',
      data_prefix: '100MB',
      file_limit: 11,
      batch_size: 512,
      result_path: 'result-partition-100MB/1GB/1',
    });
    expect(warnings).toEqual([
      "payload field object_type is the Python prototype's and is ignored by CAI",
      "payload field S3_object_name is the Python prototype's and is ignored by CAI",
      "payload field script is the Python prototype's and is ignored by CAI",
    ]);
  });

  const errorsOf = (raw: unknown) => {
    try {
      parsePayload(raw);
    } catch (error) {
      expect(error).toBeInstanceOf(PayloadError);
      return (error as PayloadError).errors;
    }
    throw new Error('accepted');
  };

  test('each bad field is named', () => {
    expect(errorsOf({ ...demo, file_limit: -3, world_size: '0', batch_size: 1e9, colour: 'red' })).toEqual([
      { field: 'file_limit', message: 'must be a whole number from 1 to 100000 (got -3)' },
      { field: 'batch_size', message: 'must be a whole number from 1 to 16384 (got 1000000000)' },
      { field: 'world_size', message: 'must be a whole number from 1 to 10000 (got "0")' },
      { field: 'colour', message: 'is not a payload field' },
    ]);
    expect(errorsOf({ bucket: 'cosmicai-data' }).map((e) => `${e.field} ${e.message}`)).toEqual([
      'data_bucket is required',
      'data_prefix is required',
      'result_path is required',
    ]);
    expect(errorsOf({ ...demo, data_bucket: 'Not_A_Bucket', result_path: '/abs' }).map((e) => e.field)).toEqual([
      'data_bucket',
      'result_path',
    ]);
    expect(errorsOf([1, 2])).toEqual([{ field: '(payload)', message: 'must be a JSON object' }]);
    expect(() => parsePayloadJson('{"bucket": ')).toThrow(/payload\.json: \(payload\): is not valid JSON/);
  });

  test('batch_size may be left to the worker, which tunes it to its memory size', () => {
    const { batch_size: _omitted, ...rest } = demo;
    const { payload } = parsePayload(rest);
    expect(payload.batch_size).toBeUndefined();
    expect(planRun('r', payload, [{ key: '100MB/1.pt', bytes: 1 }]).items[0].batchSize).toBeUndefined();
  });

  test('numeric strings count as numbers, as in the prototype', () => {
    expect(parsePayload({ ...demo, file_limit: '22', world_size: 4, batch_size: '256' }).payload).toMatchObject({
      file_limit: 22,
      world_size: 4,
      batch_size: 256,
    });
  });
});

describe('partitions and ranks', () => {
  const parts = (n: number, bytes = (i: number) => 100 + (i % 3)) =>
    Array.from({ length: n }, (_, i) => ({ key: `100MB/${i + 1}.pt`, bytes: bytes(i) }));

  test('natural order: 2.pt before 10.pt', () => {
    const keys = ['p/10.pt', 'p/2.pt', 'p/1.pt', 'p/100.pt', 'p/11.pt', 'p/02.pt', 'p/a.pt'];
    expect([...keys].sort(naturalCompare)).toEqual(['p/1.pt', 'p/2.pt', 'p/02.pt', 'p/10.pt', 'p/11.pt', 'p/100.pt', 'p/a.pt']);
  });

  test('file_limit takes the first partitions; one rank per partition by default', () => {
    const { payload } = parsePayload(demo);
    const plan = planRun('run-1', payload, parts(130));
    expect(plan.partitions.map((p) => p.key)).toEqual(parts(11).map((p) => p.key));
    expect(plan.items).toHaveLength(11);
    expect(plan.items[3]).toEqual({
      runId: 'run-1',
      rank: 3,
      worldSize: 11,
      batchSize: 512,
      dataBucket: 'cosmicai-data',
      partitions: [{ key: '100MB/4.pt', bytes: 100 }],
      resultBucket: 'cosmicai-data',
      resultPath: 'result-partition-100MB/1GB/1',
    });
  });

  test('fewer ranks than partitions: every partition once, loads balanced, natural order within a rank', () => {
    const partitions = parts(23, (i) => 50 + ((i * 37) % 60));
    const ranks = assignRanks(partitions, 4);
    expect(ranks).toHaveLength(4);
    expect(
      ranks
        .flat()
        .map((p) => p.key)
        .sort(),
    ).toEqual(partitions.map((p) => p.key).sort());
    const loads = ranks.map((r) => r.reduce((s, p) => s + p.bytes, 0));
    expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(Math.max(...partitions.map((p) => p.bytes)));
    for (const rank of ranks) expect(rank.map((p) => p.key)).toEqual([...rank.map((p) => p.key)].sort(naturalCompare));
    const { warnings, items } = planRun('r', { ...parsePayload(demo).payload, file_limit: 50, world_size: 40 }, partitions);
    expect(items).toHaveLength(23);
    expect(warnings).toEqual([
      'file_limit 50 exceeds the 23 partitions found; running all of them',
      'world_size 40 exceeds the 23 partitions; using 23 ranks',
    ]);
  });
});
