import { mkdtempSync, readFileSync } from 'node:fs';
import { ROOT } from '../../local/paths';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  AWS_SCALING_DEFAULTS,
  calibrate,
  DEFAULT_ASSUMPTIONS,
  fitOverhead,
  nearestCheck,
  overheadSeconds,
  forecastRun,
  predictWallSeconds,
  type Plan,
} from '../../toolkit/forecast/forecast';
import { billRun } from '../../functions/commons/billing/cost';
import { SEED_RANK_SECONDS, SEED_TIMED_RUNS } from '../../toolkit/forecast/seed-runs';
import { startLocalS3 } from '../../local/s3-server';
import { cai } from '../helpers/cli';

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
      .filter((line) => line.startsWith('| the 75 MB') || line.startsWith('| 100 GB') || line.startsWith('| 1 TB'));
    expect(rows).toHaveLength(3);
    [heldOut, ...published].forEach((check, i) => expect(rows[i]).toContain(`| ${percent(check.meanAbsError)} (`));
  });

  test('the concurrency quota bounds big runs', () => {
    const fit = { a: 1, p: 0.1, fittedOn: [25] };
    expect(predictWallSeconds(fit, 100, 10, AWS_SCALING_DEFAULTS)).toBeCloseTo(10 + 100 ** 0.1, 6);
    expect(predictWallSeconds(fit, 20_000, 10, AWS_SCALING_DEFAULTS)).toBeCloseTo(200, 6);
    expect(predictWallSeconds(fit, 20_000, 10, { concurrency: 3000, scalingPer10s: 1000 })).toBeCloseTo(20 + 200 / 3, 6);
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

  test('the cost is billRun of the run it predicts', () => {
    const row = plan.rows.find((r) => r.memoryMb === 1769 && r.partitionBytes === 100 * MiB)!;
    expect(row.ranks).toBe(10486);
    expect(row.cost.lambda.invocations).toBe(row.ranks);
    const durationMs = (row.rankSeconds - DEFAULT_ASSUMPTIONS.initSeconds) * 1000;
    const direct = billRun(
      {
        invocations: Array.from({ length: row.ranks }, () => ({
          memoryMb: 1769,
          durationMs,
          initMs: DEFAULT_ASSUMPTIONS.initSeconds * 1000,
        })),
        stateTransitions: row.cost.stepFunctions.transitions,
        s3: { get: row.cost.s3.get, put: row.cost.s3.put, list: row.cost.s3.list },
        dynamo: { writes: row.cost.dynamodb.writes, reads: row.cost.dynamodb.reads },
      },
      'us-east-1',
      'x86_64',
    );
    expect(row.costUsd).toBeCloseTo(direct.totalUsd, 9);
  });

  test('arm64 is billed at its own price', () => {
    const arm = forecastRun(2 ** 40, [100 * MiB], [1769], { ...DEFAULT_ASSUMPTIONS, architecture: 'arm64' });
    expect(arm.rows[0].costUsd).toBeLessThan(plan.rows.find((r) => r.memoryMb === 1769 && r.partitionBytes === 100 * MiB)!.costUsd);
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
    expect(result.stdout).toMatch(/1 TB \/ 10,240 ranks: predicted \d+ s, measured 221–247 s/);
    const plan = result.json<{ rows: { fastest?: boolean; check: { meanAbsError: number } }[] }>();
    expect(plan.rows).toHaveLength(4);
    for (const row of plan.rows) expect(row.check.meanAbsError).toBeGreaterThan(0);
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
    const dir = mkdtempSync(join(tmpdir(), 'cai-plan-'));
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
    expect(empty.stderr).toBe('cai: no .pt partitions under s3://plan-data/none\n');
    const missing = await cai(['plan', '--data', 's3://no-such-bucket/x', '--dir', dir]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/^cai: cannot list s3:\/\/no-such-bucket\/x: .+\n$/);
  });
});
