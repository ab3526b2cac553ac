import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assignRanks, MAX_RANK_ITEM_BYTES, naturalCompare, PlanError, planRanks } from '../../functions/commons/run/rank-plan';
import { checkDataBucket, PayloadError, parsePayload, parsePayloadJson, parseRetryPayload } from '../../functions/commons/run/payload';
import { STATE_PAYLOAD_LIMIT_BYTES } from '../../functions/commons/aws/limits';
import { ARM64_RATE_FACTOR, galaxiesPerSecond } from '../../functions/commons/model/lambda-sizing';
import { rankMemory } from '../../functions/commons/model/rank-memory';
import { BYTES_PER_GALAXY } from '../../functions/commons/partitions/galaxy';
import { ROOT } from '../../local/paths';

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
      "payload field S3_object_name is the Python prototype's and is ignored by CAI (a run names its own ONNX model with `model`)",
      "payload field script is the Python prototype's and is ignored by CAI (a run names its own ONNX model with `model`)",
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
    expect(errorsOf([1, 2])).toEqual([{ field: '(payload)', message: 'must be a JSON object, not an array' }]);
    expect(() => parsePayloadJson('{"bucket": ')).toThrow(/payload\.json: \(payload\): is not valid JSON/);
  });

  test('model: an ONNX object in S3, or absent for the deployed model; the plan puts it in every item and warns of its speed', () => {
    const model = 's3://team-models/v2/morphology.onnx';
    expect(parsePayload({ ...demo, model }).payload.model).toBe(model);
    for (const bad of ['morphology.onnx', 's3://team-models/', 's3://team-models/weights.pt', 's3:///x.onnx', 42]) {
      expect(errorsOf({ ...demo, model: bad })).toEqual([
        {
          field: 'model',
          message: typeof bad === 'string' ? 'must be s3://bucket/key.onnx: an ONNX model in S3' : 'must be s3://bucket/key.onnx',
        },
      ]);
    }
    const object = { bucket: 'team-models', key: 'v2/morphology.onnx', etag: '"abc"', bytes: 1234 };
    const plan = planRanks('r', { ...parsePayload(demo).payload, model }, [{ key: '100MB/1.pt', bytes: 1 }], undefined, object);
    expect(plan.items[0].model).toEqual(object);
    expect(plan.warnings).toContain(`ranks are planned at the deployed model's rate; if ${model} is slower, set world_size higher`);
  });

  test("model: a key with a . or .. segment is refused (IAM's models/* would match models/../runs/x.onnx)", () => {
    for (const bad of ['s3://cai-control/models/../runs/x.onnx', 's3://cai-control/models/./m.onnx', 's3://team-models/a\\..\\b.onnx']) {
      expect(errorsOf({ ...demo, model: bad })).toEqual([
        { field: 'model', message: 'must be s3://bucket/key.onnx without . or .. segments in its key' },
      ]);
    }
    // The control: dots inside a name are no segment.
    expect(parsePayload({ ...demo, model: 's3://cai-control/models/v1..2/m.v2.onnx' }).payload.model).toBe(
      's3://cai-control/models/v1..2/m.v2.onnx',
    );
  });

  test('data in the control bucket: only under data/, the one folder of it the inference function may read', () => {
    const refusal = (data_prefix: string) => {
      try {
        checkDataBucket({ ...parsePayload(demo).payload, data_bucket: 'cai-control', data_prefix }, ['cai-control'], 'cai-control');
        return 'accepted';
      } catch (error) {
        expect(error).toBeInstanceOf(PayloadError);
        return (error as PayloadError).message;
      }
    };
    expect(refusal('runs/x')).toBe(
      'payload.json: data_prefix: in the control bucket, partitions go under data/ (the inference function reads only there); got "runs/x"',
    );
    expect(refusal('')).toMatch(/partitions go under data\/ .*; got ""$/);
    expect(refusal('database')).toMatch(/partitions go under data\//);
    // The controls: data/ and below; and any prefix of a DataBucketName bucket.
    expect([refusal('data'), refusal('data/survey'), refusal('data/survey/')]).toEqual(['accepted', 'accepted', 'accepted']);
    expect(() => checkDataBucket({ ...parsePayload(demo).payload, data_prefix: 'runs/x' }, ['cosmicai-data'], 'cai-control')).not.toThrow();
  });

  test('batch_size may be left to the worker, which tunes it to its memory size', () => {
    const { batch_size: _omitted, ...rest } = demo;
    const { payload } = parsePayload(rest);
    expect(payload.batch_size).toBeUndefined();
    expect(planRanks('r', payload, [{ key: '100MB/1.pt', bytes: 1 }]).items[0].batchSize).toBeUndefined();
  });

  test("a retry's payload names the run it retries and nothing else; any other payload is not a retry", () => {
    expect(parseRetryPayload({ retry_of: 'survey-1-0123456789ab' })).toBe('survey-1-0123456789ab');
    expect(parseRetryPayload(demo)).toBeUndefined();
    expect(parseRetryPayload([])).toBeUndefined();
    const errors = (raw: unknown) => {
      try {
        parseRetryPayload(raw);
      } catch (error) {
        return (error as PayloadError).errors;
      }
      return [];
    };
    expect(errors({ retry_of: '../other' })).toEqual([
      { field: 'retry_of', message: 'must be the id of an earlier run (cai runs lists them)' },
    ]);
    expect(errors({ retry_of: 7 })).toEqual([{ field: 'retry_of', message: 'must be the id of an earlier run (cai runs lists them)' }]);
    expect(errors({ ...demo, retry_of: 'r-1' }).map((e) => e.field)).toEqual(Object.keys(demo));
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
    const plan = planRanks('run-1', payload, parts(130));
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
    const { warnings, items } = planRanks('r', { ...parsePayload(demo).payload, file_limit: 50, world_size: 40 }, partitions);
    expect(items).toHaveLength(23);
    expect(warnings).toEqual([
      'file_limit 50 exceeds the 23 partitions found; running all of them',
      'world_size 40 exceeds the 23 partitions; using 23 ranks',
    ]);
  });
});

describe('ranks are planned within the inference function (1,769 MB, 900 s)', () => {
  const limits = { memoryMb: 1769, timeoutS: 900 };
  const MiB = 2 ** 20;
  const base = { bucket: 'cai-control', data_bucket: 'survey', data_prefix: 'big', result_path: 'out' };
  const sized = (count: number, bytes: number, key = (i: number) => `big/${i + 1}.pt`) =>
    Array.from({ length: count }, (_, i) => ({ key: key(i), bytes }));
  // The committed rate of a 1,769 MB function (lambda-sizing.ts, from npm run bench): the numbers below follow from it.
  const rate = galaxiesPerSecond(1769);
  const secondsOf = (bytes: number) => bytes / BYTES_PER_GALAXY / rate;
  const budget = 0.6 * 900;

  test('a world_size whose ranks would run past the budget is refused, naming the smallest that fits', () => {
    const partitions = sized(100, 100 * MiB);
    const perRank = Math.floor(budget / secondsOf(100 * MiB)); // partitions one rank can take within the budget
    const smallest = Math.ceil(100 / perRank);
    expect(() => planRanks('r', { ...base, world_size: 1 }, partitions, limits)).toThrow(
      `world_size 1 plans ~${Math.round(100 * secondsOf(100 * MiB))} s for its slowest rank at ${Math.round(rate)} galaxies/s at 1769 MB, ` +
        `over the 540 s budget (60 % of the inference function's 900 s timeout); the smallest world_size that fits is ${smallest}`,
    );
    expect(() => planRanks('r', { ...base, world_size: smallest - 1 }, partitions, limits)).toThrow(PlanError);
    const plan = planRanks('r', { ...base, world_size: smallest }, partitions, limits);
    expect(plan.items).toHaveLength(smallest);
    expect(Math.max(...plan.items.map((i) => i.partitions.length))).toBeLessThanOrEqual(perRank);
    expect(planRanks('r', base, partitions, limits).items).toHaveLength(100); // one per partition fits
  });

  test("under arm64 a rank is planned at x86_64's rate × ARM64_RATE_FACTOR: proportionally fewer objects per rank", () => {
    const partitions = sized(2000, MiB);
    // Partitions one rank takes within the budget, at the architecture's rate.
    const perRank = (architecture: 'x86_64' | 'arm64') =>
      Math.floor((budget * (architecture === 'arm64' ? ARM64_RATE_FACTOR : 1)) / secondsOf(MiB));
    expect(perRank('arm64') / perRank('x86_64')).toBeCloseTo(ARM64_RATE_FACTOR, 2);
    for (const architecture of ['x86_64', 'arm64'] as const) {
      const limits = { memoryMb: 1769, timeoutS: 900, architecture };
      const smallest = Math.ceil(2000 / perRank(architecture));
      const plan = planRanks('r', { ...base, world_size: smallest }, partitions, limits);
      expect(plan.items.reduce((most, i) => Math.max(most, i.partitions.length), 0)).toBeLessThanOrEqual(perRank(architecture));
      expect(() => planRanks('r', { ...base, world_size: smallest - 1 }, partitions, limits)).toThrow(
        `the smallest world_size that fits is ${smallest}`,
      );
    }
    // 2 ranks of 1,000 MiB fit x86_64's budget and not arm64's, which says why.
    expect(planRanks('r', { ...base, world_size: 2 }, partitions, { ...limits, architecture: 'x86_64' }).items).toHaveLength(2);
    expect(() => planRanks('r', { ...base, world_size: 2 }, partitions, { ...limits, architecture: 'arm64' })).toThrow(
      `world_size 2 plans ~${Math.round((1000 * secondsOf(MiB)) / ARM64_RATE_FACTOR)} s for its slowest rank at ` +
        `${Math.round(rate * ARM64_RATE_FACTOR)} galaxies/s at 1769 MB on arm64 (x86_64's rate × ${ARM64_RATE_FACTOR}, assumed), over the 540 s budget`,
    );
  });

  test('a partition too big for any rank is refused with what to do about it', () => {
    expect(() => planRanks('r', base, sized(1, 10 * 1024 * MiB), limits)).toThrow(
      `partition big/1.pt alone would take ~${Math.round(secondsOf(10 * 1024 * MiB))} s at ${Math.round(rate)} galaxies/s at 1769 MB, over the 540 s budget ` +
        "(60 % of the inference function's 900 s timeout): split the data into smaller partitions (cai split --size) or give the inference function more memory",
    );
    // With 6 vCPUs (10,240 MB) the same partition still does not fit, but a 2 GiB one does.
    expect(() => planRanks('r', base, sized(1, 2 * 1024 * MiB), { memoryMb: 10240, timeoutS: 900 })).not.toThrow();
  });

  test("rank items stay under Step Functions' 256 KiB", () => {
    const partitions = sized(20_000, 1024, (i) => `a/rather/long/prefix/for/the/partitions/of/this/survey/part-${i + 1}.pt`);
    expect(() => planRanks('r', { ...base, world_size: 2 }, partitions, limits)).toThrow(
      /^world_size 2 plans rank items over Step Functions' 256 KiB; the smallest world_size that fits is (\d+)$/,
    );
    let message = '';
    try {
      planRanks('r', { ...base, world_size: 2 }, partitions, limits);
    } catch (error) {
      message = (error as Error).message;
    }
    const smallest = Number(/fits is (\d+)/.exec(message)![1]);
    const plan = planRanks('r', { ...base, world_size: smallest }, partitions, limits);
    // Room is left for the task's parameters around the item (the function's ARN, the attempt number).
    expect(Math.max(...plan.items.map((i) => Buffer.byteLength(JSON.stringify(i))))).toBeLessThanOrEqual(MAX_RANK_ITEM_BYTES);
    expect(MAX_RANK_ITEM_BYTES).toBeLessThan(STATE_PAYLOAD_LIMIT_BYTES);
    expect(() => planRanks('r', { ...base, world_size: smallest - 1 }, partitions, limits)).toThrow(PlanError);
  });
});

describe("ranks are planned within the inference function's memory", () => {
  const MiB = 2 ** 20;
  const base = { bucket: 'cai-control', data_bucket: 'survey', data_prefix: 'big', result_path: 'out' };
  // The full-size AstroMAE (60.3 MiB), one worker per vCPU share, the default batch of 16.
  const inference = { modelBytes: 63_204_746, workers: 0, batchSize: 16 };
  const limits = (memoryMb: number, workers = 0) => ({ memoryMb, timeoutS: 900, inference: { ...inference, workers } });
  const partitions = [
    { key: 'big/1.pt', bytes: 8 * MiB },
    { key: 'big/2.pt', bytes: 64 * MiB },
  ];

  test('each rank carries its planned peak, from its largest partition', () => {
    const { items, warnings } = planRanks('r', base, partitions, limits(1769));
    const peak = (bytes: number) => rankMemory({ ...inference, workers: 1, partitionBytes: bytes }).totalMb;
    expect(items.map((i) => i.plannedMemoryMb)).toEqual([peak(8 * MiB), peak(64 * MiB)]);
    expect(warnings).toEqual([]);
    expect(planRanks('r', { ...base, world_size: 1 }, partitions, limits(1769)).items[0].plannedMemoryMb).toBe(peak(64 * MiB));
  });

  test('a rank that cannot fit is refused at validation, naming its partition and the smallest memory size that fits', () => {
    const payload = { ...base, batch_size: 2048 };
    let message = '';
    try {
      planRanks('r', payload, partitions, limits(1769));
    } catch (error) {
      expect(error).toBeInstanceOf(PlanError);
      expect((error as PlanError).field).toBe('batch_size');
      message = (error as Error).message;
    }
    const need = rankMemory({ ...inference, workers: 1, batchSize: 2048, partitionBytes: 64 * MiB });
    const fits = Number(/at least (\d+), or lower batch_size$/.exec(message)?.[1]);
    expect(message).toBe(
      `partition big/2.pt needs ~${need.totalMb.toLocaleString('en-US')} MB in a rank (1 worker's sessions ${Math.round(need.sessionsMb)} MB, ` +
        `batches of 2048 ${Math.round(need.batchesMb).toLocaleString('en-US')} MB, read-ahead ${Math.round(need.readAheadMb)} MB, runtime 135 MB), ` +
        `over the inference function's 1,769 MB: set InferenceMemorySize to at least ${fits}, or lower batch_size`,
    );
    // The size named is the smallest that fits, its workers following the memory size as the function's do.
    expect(() => planRanks('r', payload, partitions, limits(fits))).not.toThrow();
    expect(() => planRanks('r', payload, partitions, limits(fits - 1))).toThrow(PlanError);
    expect(fits).toBeGreaterThan(need.totalMb); // more memory, more workers, more batches at once
  });

  test('with InferenceWorkers fixed and no memory size that fits, it says what to lower; close to the limit, it warns', () => {
    expect(() => planRanks('r', { ...base, batch_size: 16384 }, [{ key: 'big/3.pt', bytes: 400 * MiB }], limits(10240, 6))).toThrow(
      /^partition big\/3\.pt needs ~[\d,]+ MB in a rank \(6 workers' sessions .*: no memory size up to 10240 MB fits it: lower batch_size or InferenceWorkers$/,
    );
    const tight = rankMemory({ ...inference, workers: 1, partitionBytes: 64 * MiB }).totalMb;
    expect(planRanks('r', base, partitions, limits(Math.ceil(tight / 0.95))).warnings).toEqual([
      `rank 1 is planned at ~${tight} MB of the inference function's ${Math.ceil(tight / 0.95).toLocaleString('en-US')} MB: close enough to be killed for memory if the estimate is low`,
    ]);
  });
});
