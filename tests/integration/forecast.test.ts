import { readFileSync } from 'node:fs';
import { ROOT } from '../../local/paths';
import { join } from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  AWS_SCALING_DEFAULTS,
  calibrate,
  DEFAULT_ASSUMPTIONS,
  fitOverhead,
  lastRankStartSeconds,
  nearestCheck,
  overheadSeconds,
  forecastRun,
  predictWallSeconds,
  type Plan,
} from '../../toolkit/forecast/forecast';
import { billRun } from '../../functions/commons/billing/cost';
import { RECORD_BYTES_ESTIMATE } from '../../toolkit/forecast/workload';
import { SEED_PUBLISHED_RUNS, SEED_RANK_SECONDS, SEED_TIMED_RUNS } from '../../toolkit/forecast/seed-runs';
import { ARM64_RATE_FACTOR } from '../../functions/commons/model/lambda-sizing';
import { startLocalS3 } from '../../local/s3-server';
import { cai } from '../helpers/cli';
import { tempFolder } from '../helpers/temp';

const MiB = 2 ** 20;

describe('the launch-overhead fit', () => {
  test('recovers a known power law', () => {
    const runs = [20, 50, 200, 800].map((ranks) => ({
      partitionMb: 25,
      dataGb: 0,
      ranks,
      wallS: SEED_RANK_SECONDS[25] + 3 * ranks ** 0.4,
    }));
    const fit = fitOverhead(runs, [25]);
    expect(fit.a).toBeCloseTo(3, 6);
    expect(fit.p).toBeCloseTo(0.4, 6);
  });

  test('is fitted on the 25 and 50 MB rows only, and its held-out error is measured on the others', () => {
    const { fit, heldOut, published } = calibrate();
    expect(fit.fittedOn).toEqual([25, 50]);
    // Refitting with the held-out rows moves the fit: they were not used.
    const all = fitOverhead(SEED_TIMED_RUNS, [25, 50, 75, 100]);
    expect(Math.abs(all.p - fit.p)).toBeGreaterThan(1e-3);
    // The error recomputed here, row by row, from the seed's table.
    const rows = SEED_TIMED_RUNS.filter((r) => r.partitionMb === 75 || r.partitionMb === 100);
    expect(rows).toHaveLength(42);
    const errors = rows.map((r) => {
      const predicted = Math.max(
        overheadSeconds(fit, r.ranks) + SEED_RANK_SECONDS[r.partitionMb],
        (r.ranks * SEED_RANK_SECONDS[r.partitionMb]) / 1000,
      );
      return Math.abs(predicted - r.wallS) / r.wallS;
    });
    expect(heldOut.meanAbsError).toBeCloseTo(errors.reduce((s, e) => s + e, 0) / errors.length, 10);
    expect(heldOut.measuredS).toHaveLength(42);
    expect(published.map((p) => p.ranks)).toEqual([1024, 10240]);
    for (const check of [heldOut, ...published]) {
      expect(Number.isFinite(check.meanAbsError)).toBe(true);
      // Regression bound, not a claim: a change that makes the plan much worse fails here.
      expect(check.meanAbsError).toBeLessThan(0.35);
    }
  });

  test("docs/planning.md's fit and errors are the ones computed here, to the digits it prints", () => {
    const doc = readFileSync(join(ROOT, 'docs', 'planning.md'), 'utf8');
    const { fit, heldOut, published } = calibrate();
    expect(doc).toContain(`The fit is a = ${fit.a.toFixed(2)} s, p = ${fit.p.toFixed(3)}.`);
    const percent = (e: number) => `${(100 * e).toFixed(1)}%`;
    const rows = doc
      .split('\n')
      .filter((line) => line.startsWith('| the 75 MB') || line.startsWith('| 1,024 ranks') || line.startsWith('| 10,240 ranks'));
    expect(rows).toHaveLength(3);
    [heldOut, ...published].forEach((check, i) => expect(rows[i]).toContain(`| ${percent(check.meanAbsError)} (`));
    // The 10,240-rank runs are a launch check; what their statistics count, and the floor's figures, as computed.
    expect(doc).not.toMatch(/^\| 1 TB/m);
    const [hundred, thousand] = published.map((p) => p.data!);
    const prose = doc.replace(/\s+/g, ' '); // as read, whatever the line breaks
    expect(prose).toContain(
      `count ${Math.round(thousand.countedGb)} GB, as much as the 1,024-rank runs' ${Math.round(hundred.countedGb)} GB: ${Math.round(thousand.share * 100)} % of`,
    );
    expect(prose).toContain(`the last of 10,240 starts at ${lastRankStartSeconds(10_240, 900, 1000).toFixed(1)} s at the earliest`);
    expect(prose).toContain(`ranks of 25 s have all started by ${lastRankStartSeconds(10_240, 25, 1000)} s`);
    expect(prose).toContain(`With the fitted overhead (${Math.round(overheadSeconds(fit, 10_240))} s at 10,240 ranks)`);
  });

  test('the concurrency quota bounds big runs', () => {
    const fit = { a: 1, p: 0.1, fittedOn: [25] };
    expect(predictWallSeconds(fit, 100, 10, AWS_SCALING_DEFAULTS)).toBeCloseTo(10 + 100 ** 0.1, 6);
    expect(predictWallSeconds(fit, 20_000, 10, AWS_SCALING_DEFAULTS)).toBeCloseTo(200, 6);
    expect(predictWallSeconds(fit, 20_000, 10, { concurrency: 3000, scalingPer10s: 1000 })).toBeCloseTo(20 + 200 / 3, 6);
  });

  test("Lambda's scaling rate floors the wall time: the last rank's earliest start + one rank, active at 10,240 ranks and not at 100", () => {
    const fit = { a: 1, p: 0.1, fittedOn: [25] }; // a launch overhead far below the ramp
    const raised = { concurrency: 20_000, scalingPer10s: 1000 }; // a quota that is not the bound
    // Ranks longer than the ramp free no environment before the last starts: the ramp to 10,240
    // takes (10,240 − 1,000) ÷ 1,000 × 10 = 92.4 s (refilled continuously; 100 s in whole 10 s steps).
    expect(lastRankStartSeconds(10_240, 200, 1000)).toBeCloseTo(92.4, 9);
    expect(predictWallSeconds(fit, 10_240, 200, raised)).toBeCloseTo(92.4 + 200, 9);
    // The control: without the floor, launch and quota say ~202 s, faster than Lambda can scale.
    const launch = overheadSeconds(fit, 10_240) + 200;
    const quota = 10 * (Math.ceil(10_240 / 1000) - 1) + (10_240 * 200) / 20_000;
    expect(Math.max(launch, quota)).toBeLessThan(92.4 + 200 - 80);
    // 100 ranks start at once (1,000 environments at once): no floor beyond one rank, the launch overhead decides.
    expect(lastRankStartSeconds(100, 200, 1000)).toBe(0);
    expect(predictWallSeconds(fit, 100, 200, raised)).toBeCloseTo(overheadSeconds(fit, 100) + 200, 9);
  });

  test("the floor's start times are the earliest a step-by-step scheduler finds: shorter ranks hand their environments on", () => {
    // Independent of the closed form: every dt, start what the environments allowed so far (S + S·t/10) leave free.
    const simulate = (ranks: number, d: number, s: number, dt = 0.001) => {
      const starts: number[] = [];
      for (let t = 0, done = 0; starts.length < ranks; t += dt) {
        while (done < starts.length && starts[done] + d <= t + 1e-9) done++;
        const free = Math.floor(s + (s * t) / 10 + 1e-9) - (starts.length - done);
        for (let i = 0; i < free && starts.length < ranks; i++) starts.push(t);
      }
      return starts.at(-1)!;
    };
    for (const [ranks, d] of [
      [10_240, 25],
      [10_240, 60],
      [10_240, 200],
      [2_500, 7],
      [1_001, 1],
    ]) {
      expect([ranks, d, lastRankStartSeconds(ranks, d, 1000)]).toEqual([ranks, d, expect.closeTo(simulate(ranks, d, 1000), 2)]);
    }
    // 25 s ranks: 10,240 have started by 50 s, not the 92.4 s a ramp to 10,240 at once would take.
    expect(lastRankStartSeconds(10_240, 25, 1000)).toBeCloseTo(50, 9);
  });

  test("the 10,240-rank runs' statistics count a tenth of their ranks' data: a launch check, not a 1 TB one", () => {
    const [hundred, thousand] = calibrate().published;
    expect(hundred.data).toMatchObject({ statedGb: 100, countedGb: expect.closeTo(102.3, 1), share: expect.closeTo(1, 2) });
    expect(thousand.data).toMatchObject({ statedGb: 1000, countedGb: expect.closeTo(104.2, 1), share: expect.closeTo(0.102, 3) });
    expect(SEED_PUBLISHED_RUNS.map((r) => r.label)).toEqual(['1,024 ranks of 100 MB', '10,240 ranks of 100 MB']);
  });

  test('each prediction quotes the check nearest in ranks', () => {
    const c = calibrate();
    expect(nearestCheck(c, 300)).toBe(c.heldOut);
    expect(nearestCheck(c, 1500)).toBe(c.published[0]);
    expect(nearestCheck(c, 40_000)).toBe(c.published[1]);
  });
});

describe('forecastRun', () => {
  const plan = forecastRun(2 ** 40, [25 * MiB, 100 * MiB, 500 * MiB], [128, 1769, 10240], DEFAULT_ASSUMPTIONS);

  test('one row per partition × memory, one cheapest and one fastest among those that can run', () => {
    expect(plan.rows).toHaveLength(9);
    expect(plan.rows.filter((r) => r.cheapest)).toHaveLength(1);
    expect(plan.rows.filter((r) => r.fastest)).toHaveLength(1);
    const feasible = plan.rows.filter((r) => !r.infeasible);
    const cheapest = plan.rows.find((r) => r.cheapest)!;
    expect(cheapest.infeasible).toBeUndefined();
    expect(Math.min(...feasible.map((r) => r.costUsd))).toBe(cheapest.costUsd);
    expect(Math.min(...feasible.map((r) => r.wallSeconds))).toBe(plan.rows.find((r) => r.fastest)!.wallSeconds);
    // 500 MiB at 128 MB is far over Lambda's 15 minutes.
    expect(plan.rows.find((r) => r.memoryMb === 128 && r.partitionBytes === 500 * MiB)!.infeasible).toMatch(/over Lambda's 900 s/);
  });

  test("the cost is AWS's prices times what the run it predicts asks of each service, counted here from the run's steps", () => {
    const row = plan.rows.find((r) => r.memoryMb === 1769 && r.partitionBytes === 100 * MiB)!;
    const ranks = Math.ceil(2 ** 40 / (100 * MiB)); // one rank per 100 MiB partition of 1 TiB
    expect(row.ranks).toBe(10486);
    expect(ranks).toBe(row.ranks);
    // AWS's us-east-1 list prices: https://aws.amazon.com/lambda/pricing/ (x86, first tier),
    // https://aws.amazon.com/step-functions/pricing/ (standard), https://aws.amazon.com/s3/pricing/
    // (S3 Standard requests), https://aws.amazon.com/dynamodb/pricing/on-demand/.
    const usd = {
      gbSecond: 0.0000166667,
      request: 0.2e-6,
      transition: 0.000025,
      get: 0.0000004,
      putOrList: 0.000005,
      write: 0.625e-6,
      read: 0.125e-6,
    };
    // Every rank one cold invocation: its predicted time (INIT included), rounded up to the millisecond, at 1,769 MB.
    const billedSeconds = Math.ceil(row.rankSeconds * 1000) / 1000;
    const lambdaUsd = ranks * ((1769 / 1024) * billedSeconds * usd.gbSecond + usd.request);
    // The main workflow's Map and Summarize, and each child execution's start and its task.
    const transitions = 2 + 2 * ranks;
    // A rank reads at most: 16 GETs to open its archive (HEAD included), one per 8 MiB part, one per 16 MiB chunk (docs/architecture.md).
    const rankGets = 16 + Math.ceil(100 / 8) + Math.ceil(100 / 16);
    const gets =
      1 /* payload */ +
      1 /* the Map's ItemReader: manifest */ +
      ranks * rankGets +
      1 /* summarizer: manifest */ +
      ranks /* rank results */ +
      2; /* the Map's result files */
    const puts =
      1 /* manifest */ +
      ranks * 3 /* attempt record, predictions, result */ +
      2 /* ResultWriter: results, manifest */ +
      3; /* combined data twice, summary */
    const lists = Math.ceil(ranks / 1000) /* the data, 1,000 keys a page */ + 1; /* the summarizer: failed attempts */
    // The run record: created and updated by the initializer, read and updated by the summarizer; each
    // write 1 unit a KB of the item (the forecast's estimate of it), for the table and its 2 indexes,
    // the initializer's update twice in byDataset (it sets the dataset: a delete and a put); the
    // read, eventually consistent, half a unit a 4 KB.
    const kb = Math.ceil(RECORD_BYTES_ESTIMATE / 1024);
    const [writes, reads] = [kb * 3 + kb * 4 + kb * 3, Math.ceil(RECORD_BYTES_ESTIMATE / 4096) / 2];
    // (A run of 2 ranks on the local stack, counted by its servers: 12 PUTs, 2 LISTs, 3 writes of 16 units in all (a 2.2 KB record), 1 read of half a unit,
    // 7 GETs beside the data and 15 to 18 a rank of it: these counts for 2 ranks, the data's within its bound.)
    expect({ gets, puts, lists, writes, reads, transitions }).toEqual({
      gets: row.cost.s3.get,
      puts: row.cost.s3.put,
      lists: row.cost.s3.list,
      writes: row.cost.dynamodb.writes,
      reads: row.cost.dynamodb.reads,
      transitions: row.cost.stepFunctions.transitions,
    });
    const total =
      lambdaUsd + transitions * usd.transition + gets * usd.get + (puts + lists) * usd.putOrList + writes * usd.write + reads * usd.read;
    expect(row.costUsd).toBeCloseTo(total, 9);
  });

  test('arm64 is billed at its own price, for ranks planned at its assumed rate', () => {
    const arm = forecastRun(2 ** 40, [100 * MiB], [1769], { ...DEFAULT_ASSUMPTIONS, architecture: 'arm64' });
    const x86 = plan.rows.find((r) => r.memoryMb === 1769 && r.partitionBytes === 100 * MiB)!;
    expect(arm.rows[0].rate.galaxiesPerSecond).toBeCloseTo(x86.rate.galaxiesPerSecond * ARM64_RATE_FACTOR, 9);
    const durationMs = (arm.rows[0].rankSeconds - DEFAULT_ASSUMPTIONS.initSeconds) * 1000;
    const direct = billRun(
      {
        invocations: Array.from({ length: arm.rows[0].ranks }, () => ({
          memoryMb: 1769,
          durationMs,
          initMs: DEFAULT_ASSUMPTIONS.initSeconds * 1000,
        })),
        stateTransitions: arm.rows[0].cost.stepFunctions.transitions,
        s3: { get: arm.rows[0].cost.s3.get, put: arm.rows[0].cost.s3.put, list: arm.rows[0].cost.s3.list },
        dynamo: { writes: arm.rows[0].cost.dynamodb.writes, reads: arm.rows[0].cost.dynamodb.reads },
      },
      'us-east-1',
      'arm64',
    );
    expect(arm.rows[0].costUsd).toBeCloseTo(direct.totalUsd, 9);
  });
});

describe('cai plan', () => {
  test('prints the table, the marks, the fit and its errors, and JSON', async () => {
    const result = await cai(['plan', '--data', '1TB', '--partition', '50MB,100MB', '--memory', '1769,3538', '--json']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines.filter((l) => /^\s*(50|100)\.0 MiB\s+(1769|3538)\s/.test(l))).toHaveLength(4);
    expect(result.stdout).toMatch(/\* cheapest/);
    expect(result.stdout).toMatch(/\^ fastest/);
    expect(result.stdout).toMatch(/held-out 75 and 100 MB rows \(42 runs\).*mean \|error\| \d+\.\d%/);
    expect(result.stdout).toMatch(
      /10,240 ranks of 100 MB \(called 1 TB, but its statistics count 104 GB, 10% of its ranks' data: a launch measurement whose data volume is not confirmed\): predicted \d+ s, measured 221–247 s/,
    );
    expect(result.stdout).toMatch(/the last rank's earliest start under Lambda's scaling rate \+ one rank/);
    expect(result.stdout).not.toMatch(/arm64/); // x86_64 by default: measured rates, no factor
    const plan = result.json<{ rows: { fastest?: boolean; check: { meanAbsError: number } }[] }>();
    expect(plan.rows).toHaveLength(4);
    for (const row of plan.rows) expect(row.check.meanAbsError).toBeGreaterThan(0);
  });

  test('with --arch arm64 it plans at the x86_64 rates × ARM64_RATE_FACTOR and says they are not measured', async () => {
    const args = ['plan', '--data', '1TB', '--partition', '100MB', '--memory', '1769', '--json'];
    const [x86, arm] = await Promise.all([cai(args), cai([...args, '--arch', 'arm64'])]);
    expect(arm.stdout).toContain(
      `arm64 rates are the x86_64 measurement × ${ARM64_RATE_FACTOR} (ARM64_RATE_FACTOR), an assumption: not measured on Graviton.`,
    );
    type Row = { rankSeconds: number; rate: { galaxiesPerSecond: number } };
    const [x, a] = [x86.json<{ rows: Row[] }>().rows[0], arm.json<{ rows: Row[] }>().rows[0]];
    expect(a.rate.galaxiesPerSecond).toBeCloseTo(x.rate.galaxiesPerSecond * ARM64_RATE_FACTOR, 9);
    expect(a.rankSeconds).toBeGreaterThan(x.rankSeconds); // slower ranks: the plan errs long
  });

  test("--concurrency sets the account's quota: the wall time is the ranks' seconds over it, and the cost is the same", async () => {
    const args = ['plan', '--data', '1TB', '--partition', '100MB', '--memory', '1769', '--json'];
    const [quota, plain] = await Promise.all([cai([...args, '--concurrency', '10']), cai(args)]);
    expect([quota.status, quota.stderr]).toEqual([0, '']);
    const ten = quota.json<Plan>();
    const [row] = ten.rows;
    const [base] = plain.json<Plan>().rows;
    expect(ten.assumptions.limits.concurrency).toBe(10);
    expect(quota.stdout).toMatch(/concurrency quota 10, scaling/);
    // 10,486 ranks ten at a time, all ten started in the first 10 s: their seconds over ten, far past one rank and the launch.
    expect(row.ranks).toBe(base.ranks);
    expect(row.wallSeconds).toBeCloseTo((row.ranks * row.rankSeconds) / 10, 6);
    expect(row.wallSeconds).toBeGreaterThan(50 * base.wallSeconds);
    expect(row.costUsd).toBe(base.costUsd);
  });

  test.each([
    [['--data', '1TB', '--concurrency', '0'], /^cai: --concurrency "0" is not a positive integer/],
    [['--data', 'lots'], /^cai: --data "lots" is not a size like 100MB/],
    [['--data', '1TB', '--partition', '0MB'], /^cai: --partition "0MB" is out of range/],
    [['--data', '1TB', '--arch', 'sparc'], /^cai: --arch "sparc" is not x86_64 or arm64/],
    [['--data', '1TB', '--precision', 'fp16'], /^cai: --precision "fp16" is not fp32 or int8/],
    [['--data', '1TB', '--memory', '20000'], /^cai: --memory 20000 is outside Lambda's 128–10,240 MB/],
    [['--data', '1TB', '--memory', 'big'], /^cai: --memory "big" is not a positive integer/],
    [['--data', '1TB', '--init', '-1'], /^cai: --init "-1" is not a number of seconds/],
    [['--data', 's3://'], /^cai: --data "s3:\/\/" is not an S3 location like s3:\/\/bucket\/key/],
  ])('%j is a usage error', async (args, message) => {
    const result = await cai(['plan', ...args]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('an s3:// prefix is listed on the local stack to size the data', async () => {
    const dir = tempFolder('cai-plan-');
    const s3server = await startLocalS3(join(dir, 's3'), ['plan-data']);
    const s3 = new S3Client({
      endpoint: s3server.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    });
    await s3.send(new CreateBucketCommand({ Bucket: 'plan-data' })).catch(() => undefined);
    for (const [key, size] of [
      ['set/1.pt', 3 * MiB],
      ['set/2.pt', 2 * MiB],
      ['set/notes.txt', 5 * MiB],
    ] as const) {
      await s3.send(new PutObjectCommand({ Bucket: 'plan-data', Key: key, Body: Buffer.alloc(size) }));
    }
    s3.destroy();
    await s3server.close();
    const result = await cai(['plan', '--data', 's3://plan-data/set', '--partition', '1MB', '--memory', '1769', '--dir', dir, '--json']);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/plan for 5\.0 MiB \(2 partitions under s3:\/\/plan-data\/set on the local stack/);
    expect(result.json<{ totalBytes: number; rows: { ranks: number }[] }>()).toMatchObject({ totalBytes: 5 * MiB, rows: [{ ranks: 5 }] });

    const empty = await cai(['plan', '--data', 's3://plan-data/none', '--dir', dir]);
    expect(empty.status).toBe(2);
    expect(empty.stderr).toBe('cai: no data files (.pt, .h5/.hdf5, .fits, .parquet, .npy or .npz) under s3://plan-data/none\n');
    const missing = await cai(['plan', '--data', 's3://no-such-bucket/x', '--dir', dir]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^cai: cannot list s3:\/\/no-such-bucket\/x: .+\n$/);
  });
});
