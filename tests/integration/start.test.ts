import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PRICES } from '../../functions/commons/billing/cost';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { cai, caiStart } from '../helpers/cli';
import { ROOT } from '../../local/paths';
import { tempFolder } from '../helpers/temp';

const work = tempFolder('cai-start-');
const state = join(work, '.cai');

const start = (args: string[], dir = state) => caiStart(dir, args);

test('npm start with no arguments runs ~2,000 synthetic galaxies end to end', async () => {
  const run = await start([]);
  expect(run.stderr).toMatch(/start: uploaded s3:\/\/cai-control\/runs\/demo-\d+\/payload\.json/);
  expect(run.status).toBe(0);
  expect(run.last).toMatchObject({ status: 'SUCCEEDED', samples: 2000, predictions: 2000, partitions: 8 });
  expect(Object.keys(run.last)).toEqual([
    'runId',
    'status',
    'partitions',
    'samples',
    'predictions',
    'outputs',
    'report',
    'wall_s',
    'cost_usd',
  ]);
  expect(run.stdout).toContain(`  report      ${run.last.report}\n`);
  // The progress is cai runs watch's view; its last line agrees with the record.
  const view = run.stderr.split('\n').filter((line) => line.startsWith(`run ${run.last.runId}: `));
  expect(view.at(-1)).toMatch(
    /^run \S+: \[#{20}\] SUCCEEDED {2}ranks (\d+)\/\1 \(0 pending, 0 running, \1 succeeded, 0 failed\) {2}2000 objects .* {2}partitions 8\/8, 0 failed {2}ETA 0m00s {2}\$\S+ so far$/,
  );
  expect(existsSync(run.last.report as string)).toBe(true);
  expect(run.last.cost_usd).toBeGreaterThan(0);
  expect(run.stdout).toMatch(/accuracy over 2000 labelled objects/);
  const outputs = run.last.outputs as string;
  for (const output of ['manifest.json', 'ranks', 'predictions', 'combined_data.json', 'summary.json']) {
    expect(existsSync(join(outputs, output))).toBe(true);
  }
  expect(readdirSync(join(outputs, 'predictions'))).toHaveLength(8);
  expect(readdirSync(join(outputs, 'ranks'))).toHaveLength(8);
  expect(JSON.parse(readFileSync(join(outputs, 'combined_data.json'), 'utf8'))).toHaveLength(8);
  const summary = JSON.parse(readFileSync(join(outputs, 'summary.json'), 'utf8'));
  expect(summary).toMatchObject({ status: 'SUCCEEDED', samples: 2000 });
  await expectBilledFromReportLines(run, state);
});

/**
 * What `npm start` says Lambda billed, against the stack's own log of it: each function's INIT REPORT
 * lines, and each REPORT line's Billed Duration at its Memory Size (the emulator's lines, as
 * CloudWatch would hold them), priced at Lambda's rates; the rest of the bill is the run record's.
 */
async function expectBilledFromReportLines(run: Awaited<ReturnType<typeof start>>, dir: string) {
  const logs = Object.fromEntries(
    ['initializer', 'inference', 'summarizer'].map((name) => [name, readFileSync(join(dir, 'logs', `${name}.log`), 'utf8')]),
  );
  const inits = Object.entries(logs).map(([name, log]) => {
    const ms = [...log.matchAll(/INIT REPORT\(durationMs: ([\d.]+)\)/g)].map((m) => Math.round(Number(m[1])));
    return [name, ms.sort((a, b) => a - b)] as const;
  });
  const reports = Object.values(logs).flatMap((log) =>
    [...log.matchAll(/^REPORT RequestId: \S+\t.*Billed Duration: (\d+) ms\tMemory Size: (\d+) MB/gm)].map((m) => ({
      billedMs: Number(m[1]),
      memoryMb: Number(m[2]),
    })),
  );
  const lambda = run.stdout.match(/^ {2}Lambda {6}(\d+) invocations on the Runtime Interface Emulator; INIT ms: (.*)$/m)!;
  expect(lambda).not.toBeNull();
  expect(Number(lambda[1])).toBe(reports.length);
  const printed = lambda[2].split(', ').map((entry) => {
    const [name, ms] = entry.split(' ');
    return [
      name,
      ms === '-'
        ? []
        : ms
            .split('/')
            .map(Number)
            .sort((a, b) => a - b),
    ] as const;
  });
  expect(printed).toEqual(inits);
  expect(inits.every(([, ms]) => ms.length > 0)).toBe(true); // every function started cold once

  const shown = await cai(['runs', 'show', String(run.last.runId), '--dir', dir, '--json']);
  expect(shown.status).toBe(0);
  const { cost } = shown.json<RunRecord>() as Required<RunRecord>;
  const prices = PRICES[cost.region];
  const gbSeconds = reports.reduce((s, r) => s + (r.memoryMb / 1024) * (r.billedMs / 1000), 0);
  const lambdaUsd = gbSeconds * prices.lambdaGbSecond[cost.architecture] + reports.length * prices.lambdaRequest;
  const billed = lambdaUsd + cost.stepFunctions.usd + cost.s3.usd + cost.dynamodb.usd;
  // cai rounds each invocation's duration plus INIT up to the millisecond, the REPORT line its sum: a millisecond apart at most.
  const rounding = reports.reduce((s, r) => s + (r.memoryMb / 1024) * 0.001, 0) * prices.lambdaGbSecond[cost.architecture];
  expect(Math.abs((run.last.cost_usd as number) - billed)).toBeLessThanOrEqual(rounding);
  expect(run.stdout).toContain(
    `  billed      $${(run.last.cost_usd as number).toExponential(3)} with Lambda from the REPORT lines (the run record's self-measured $${cost.totalUsd.toExponential(3)})\n`,
  );
}

test("npm start with the user's partitions and payload; a re-run that fails never shows the first; cai runs lists both, newest first", async () => {
  // A state folder of its own: this test runs alone as well as after the others.
  const own = join(work, 'user', '.cai');
  const parts = join(work, 'parts');
  expect((await cai(['synth', '--samples', '600', '--size', '2MB', '--out', parts, '--seed', '9'])).status).toBe(0);
  const payload = join(work, 'mine.json');
  const mine = {
    bucket: 'my-results',
    data_bucket: 'my-data',
    data_prefix: 'survey/v1',
    batch_size: 64,
    result_path: 'out/v1',
    world_size: 2,
  };
  writeFileSync(payload, JSON.stringify(mine));
  const overrides = ['--parameter-overrides', 'ResultBucketNames=my-results DataBucketName=my-data'];
  const run = await start(['--partitions', parts, '--payload', payload, ...overrides], own);
  expect(run.status).toBe(0);
  expect(run.last).toMatchObject({ status: 'SUCCEEDED', samples: 600, partitions: 6 });
  const show = await cai(['runs', 'show', String(run.last.runId), '--dir', own]);
  expect(show.stdout).toMatch(/partitions {2}6 in 2 ranks; 600 objects, 600 predictions, 0 failed partitions/);
  expect(show.stdout).toMatch(/cost {8}\$.* Lambda .* Step Functions .* S3 .* DynamoDB/);
  expect(show.stdout).toMatch(/the prototype's formula/);

  // The same result_path again, with a run model that is not a model: it fails on its own, with nothing of the first run.
  const notModel = join(work, 'not-a-model.onnx');
  writeFileSync(notModel, 'not a model');
  const again = join(work, 'again.json');
  writeFileSync(again, JSON.stringify({ ...mine, model: 's3://cai-control/models/not-a-model.onnx' }));
  const rerun = await start(['--partitions', parts, '--payload', again, '--run-model', notModel, ...overrides], own);
  expect(rerun.status).toBe(1);
  expect(rerun.last).toMatchObject({ status: 'FAILED', samples: 0, predictions: 0 });
  expect(rerun.stdout).toMatch(/ {2}error {7}model s3:\/\/cai-control\/models\/not-a-model\.onnx: not an ONNX model: /);
  expect(rerun.stdout).not.toMatch(/600 predictions/);

  const list = await cai(['runs', '--dir', own, '--json']);
  expect(list.status).toBe(0);
  const { runs } = list.json<{ runs: { runId: string; status: string; startedAt: string }[] }>();
  expect(runs.map((r) => [r.runId, r.status])).toEqual([
    [rerun.last.runId, 'FAILED'],
    [run.last.runId, 'SUCCEEDED'],
  ]);
  expect(runs[0].startedAt > runs[1].startedAt).toBe(true);
  const byDataset = await cai(['runs', '--dir', own, '--dataset', 'my-data/survey/v1', '--json']);
  expect(byDataset.json<{ runs: { runId: string }[] }>().runs).toHaveLength(2);
  // --limit: the newest runs only, of all and of one dataset.
  for (const filter of [[], ['--dataset', 'my-data/survey/v1']]) {
    const newest = await cai(['runs', '--dir', own, ...filter, '--limit', '1', '--json']);
    expect(newest.json<{ runs: { runId: string }[] }>().runs.map((r) => r.runId)).toEqual([rerun.last.runId]);
    expect(newest.stdout.split('\n').filter((line) => line.includes(String(run.last.runId)))).toEqual([]);
  }
  const noMatch = await cai(['runs', '--dir', own, '--dataset', 'my-data/survey/v2']);
  expect([noMatch.status, noMatch.stdout]).toEqual([
    0,
    'no runs of dataset my-data/survey/v2 (cai runs lists every run with its dataset)\n',
  ]);

  // A folder with fewer partitions than the prefix already holds would run the others too: refused.
  const fewer = join(work, 'fewer');
  mkdirSync(fewer);
  copyFileSync(join(parts, '1.pt'), join(fewer, '1.pt'));
  const refused = await start(['--partitions', fewer, '--payload', payload, ...overrides], own);
  expect([refused.status, refused.stderr.trim().split('\n').pop()]).toEqual([
    2,
    `cai: s3://my-data/survey/v1/ already holds 5 partitions that ${fewer} does not (2.pt, 3.pt, 4.pt, …), which the run would take too: give the payload another data_prefix`,
  ]);
});

test('npm start refuses half its options with a reason', async () => {
  const run = await start(['--partitions', work]);
  expect(run.status).toBe(2);
  expect(run.stderr.trim()).toBe('cai: --partitions and --payload go together');
});

test('a payload whose bucket the functions may not write is refused before the stack starts or anything is uploaded', async () => {
  const fresh = join(work, 'fresh', '.cai');
  const payload = join(work, 'elsewhere.json');
  writeFileSync(payload, JSON.stringify({ bucket: 'cosmicai-data', data_bucket: 'cai-data', data_prefix: 'p', result_path: 'r' }));
  const run = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
    const child = spawn(
      process.execPath,
      [join(ROOT, 'dist', 'cli', 'cai.js'), 'start', '--dir', fresh, '--partitions', work, '--payload', payload],
      {
        cwd: ROOT,
      },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stderr }));
  });
  expect([run.status, run.stderr]).toEqual([
    2,
    `cai: ${payload}: bucket: the functions may write only to cai-control; add cosmicai-data to the template's ResultBucketNames (samconfig.toml parameter_overrides) to write there\n`,
  ]);
  expect(existsSync(fresh)).toBe(false); // no stack was started: nothing was uploaded anywhere
});

test('several starts in one state folder each end with their run, exit 0, and leave the log whole', async () => {
  const own = join(work, 'repeated', '.cai');
  const parts = join(work, 'repeated-parts');
  expect((await cai(['synth', '--samples', '200', '--size', '1MB', '--out', parts, '--seed', '4'])).status).toBe(0);
  const payload = join(work, 'repeated.json');
  writeFileSync(payload, JSON.stringify({ bucket: 'cai-control', data_bucket: 'cai-data', data_prefix: 'repeated', result_path: 'out/r' }));
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await start(['--partitions', parts, '--payload', payload], own));
  for (const run of runs) {
    expect(run.stderr).not.toMatch(/ERR_STREAM_WRITE_AFTER_END|write after end/);
    expect([run.status, run.last.status, run.last.samples]).toEqual([0, 'SUCCEEDED', 200]);
  }
  expect(new Set(runs.map((r) => r.last.runId)).size).toBe(3);
  // Every container's last lines reached the log before it closed: each start's three emulators said they shut down.
  const log = readFileSync(join(own, 'logs', 'inference.log'), 'utf8');
  expect(log.match(/Shutting down\.\.\./g)!.length).toBeGreaterThanOrEqual(3);
});

test("a --model the build refuses ends the command with the build's reason in one line, and stops the servers it had started", async () => {
  const notModel = join(work, 'deployed-not-a-model.onnx');
  writeFileSync(notModel, 'not a model');
  const fresh = join(work, 'bad-model', '.cai');
  const run = await new Promise<{ status: number | null; stderr: string; killed: boolean }>((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'cai.js'), 'start', '--dir', fresh, '--model', notModel], {
      cwd: ROOT,
    });
    let stderr = '';
    let killed = false;
    // Generous: the command needs a few seconds; one that never exits is what this test is for.
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, 90_000);
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stderr, killed });
    });
  });
  expect(run.killed).toBe(false);
  expect([run.status, run.stderr]).toEqual([
    1,
    `cai: cannot build the inference function: ${notModel}: not an ONNX model: wire type 6 at byte 1\n`,
  ]);
});
