import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cai } from '../helpers/cli';
import { ROOT } from '../../local/paths';
import { tempFolder } from '../helpers/temp';

/**
 * The user's three habits against a served local stack, with the real AWS CLI (PyPI awscli, which
 * `npm test` installs into .venv-awscli): `aws s3 cp` of partitions and of payload.json starts a
 * run, `aws dynamodb query` / `get-item` read the runs table, `aws s3 cp` fetches summary.json;
 * `cai runs` and `cai invoke` work alongside, and `cai stack down` stops it.
 */
const work = tempFolder('cai-served-');
const dir = join(work, 'stack');
let server: ChildProcess;
let serverLog = '';

/** What `cai stack env` exports for the served stack, as a user would `eval` it. */
async function stackEnv(): Promise<{ status: number | null; stdout: string; env: Record<string, string> }> {
  const printed = await cai(['stack', 'env', '--dir', dir]);
  const env = Object.fromEntries([...printed.stdout.matchAll(/^export (\w+)='([^']*)'$/gm)].map(([, k, v]) => [k, v]));
  return { status: printed.status, stdout: printed.stdout, env };
}

/** The AWS CLI with the served stack's exports and nothing else of AWS's: the suite's own settings (tests/setup-env.ts) under them. */
async function aws(...args: string[]): Promise<string> {
  const { env } = await stackEnv();
  const { stdout } = await promisify(execFile)(join(ROOT, '.venv-awscli', 'bin', 'aws'), args, {
    cwd: work,
    env: { ...process.env, ...env, AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' },
  });
  return stdout;
}

/** The processes of a process group still alive (a zombie has exited), from /proc/<pid>/stat: state is field 3, the group field 5. */
function groupMembers(group: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        const [state, , pgrp] = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').pop()!.split(' ');
        return Number(pgrp) === group && state !== 'Z';
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

beforeAll(async () => {
  // In a process group of its own (led by the server), so that everything it starts can be found and stopped.
  server = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'cai.js'), 'stack', 'up', '--dir', dir, '--workers', '2'], {
    cwd: ROOT,
    detached: true,
  });
  server.stderr!.on('data', (d) => (serverLog += d));
  let printed = '';
  server.stdout!.on('data', (d) => (printed += d));
  const deadline = Date.now() + 60_000;
  while (!printed.includes('export CAI_RUNS_TABLE=')) {
    if (Date.now() > deadline || server.exitCode !== null) throw new Error(`cai stack up did not start:\n${serverLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});
afterAll(async () => {
  // A test that failed before `cai stack down` leaves the server and its containers: the whole group goes.
  if (server && groupMembers(server.pid!).length > 0) process.kill(-server.pid!, 'SIGKILL');
});

test('cai stack env prints export lines for the AWS CLI and SDKs', async () => {
  const printed = await stackEnv();
  expect(printed.status).toBe(0);
  expect(printed.env).toMatchObject({
    AWS_ENDPOINT_URL_S3: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
    AWS_ENDPOINT_URL_DYNAMODB: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
    AWS_REGION: 'us-east-1',
    CAI_CONTROL_BUCKET: 'cai-control',
    CAI_RUNS_TABLE: 'cai-runs',
  });
  expect(
    printed.stdout
      .trim()
      .split('\n')
      .every((line) => line.startsWith('export ')),
  ).toBe(true);
});

test('aws s3 cp of partitions and payload.json runs them; aws dynamodb and aws s3 read the results', async () => {
  const synth = await cai(['synth', '--samples', '240', '--size', '2MB', '--out', join(work, 'parts')]);
  expect(synth.status).toBe(0);
  await aws('s3', 'cp', '--recursive', '--only-show-errors', 'parts/', 's3://cai-data/survey/');
  expect(await aws('s3', 'ls', 's3://cai-data/survey/')).toMatch(/1\.pt[\s\S]*2\.pt/);
  writeFileSync(
    join(work, 'payload.json'),
    JSON.stringify({ bucket: 'cai-control', data_bucket: 'cai-data', data_prefix: 'survey', result_path: 'results/cli' }),
  );
  await aws('s3', 'cp', '--only-show-errors', 'payload.json', 's3://cai-control/runs/cli/payload.json');

  // The README's query, until the run has left RUNNING.
  let run: { runId: { S: string }; status: { S: string } } | undefined;
  const deadline = Date.now() + 120_000;
  while (!run || run.status.S === 'RUNNING') {
    if (Date.now() > deadline) throw new Error(`the run did not finish:\n${serverLog}`);
    await new Promise((r) => setTimeout(r, 500));
    const listed = JSON.parse(
      await aws(
        'dynamodb',
        'query',
        '--table-name',
        'cai-runs',
        '--index-name',
        'byStartedAt',
        '--key-condition-expression',
        'recordType = :r',
        '--expression-attribute-values',
        '{":r":{"S":"run"}}',
        '--no-scan-index-forward',
        '--max-items',
        '10',
      ),
    ) as { Items: { runId: { S: string }; status: { S: string }; payloadUri: { S: string } }[] };
    run = listed.Items.find((item) => item.payloadUri.S === 's3://cai-control/runs/cli/payload.json');
  }
  expect(run.status.S).toBe('SUCCEEDED');

  const item = JSON.parse(
    await aws('dynamodb', 'get-item', '--table-name', 'cai-runs', '--key', JSON.stringify({ runId: { S: run.runId.S } })),
  );
  expect(item.Item).toMatchObject({ status: { S: 'SUCCEEDED' }, samples: { N: '240' }, predictions: { N: '240' } });

  await aws('s3', 'cp', '--only-show-errors', `s3://cai-control/results/cli/${run.runId.S}/summary.json`, 'summary.json');
  const summary = JSON.parse(readFileSync(join(work, 'summary.json'), 'utf8'));
  expect(summary).toMatchObject({ runId: run.runId.S, status: 'SUCCEEDED', samples: 240, failedPartitions: 0 });
  expect(summary.accuracy.mae).toBeLessThan(0.1);
  expect(await aws('s3', 'ls', `s3://cai-control/results/cli/${run.runId.S}/`)).toMatch(/combined_data\.json[\s\S]*summary\.json/);
  expect(serverLog).toMatch(new RegExp(`stack: ${run.runId.S} SUCCEEDED: 240 predictions`));

  // cai runs alongside the server: it asks the served database, which stays the server's.
  const runs = await cai(['runs', '--dir', dir, '--json']);
  expect(runs.status).toBe(0);
  expect(runs.json<{ runs: { runId: string }[] }>().runs.map((r) => r.runId)).toContain(run.runId.S);

  // The Docker-less invoke runs its container against the served stack.
  writeFileSync(
    join(work, 'summarize.json'),
    JSON.stringify({ runId: run.runId.S, resultBucket: 'cai-control', resultPath: 'results/cli', ranks: [] }),
  );
  const invoked = await cai(['invoke', 'SummarizerFunction', '-e', join(work, 'summarize.json'), '--dir', dir]);
  expect(invoked.status).toBe(0);
  expect(invoked.json()).toEqual({ runId: run.runId.S, status: 'SUCCEEDED' });
});

test('npm start on a served folder says so in one line instead of opening its database twice', async () => {
  const start = await promisify(execFile)(process.execPath, [join(ROOT, 'dist', 'cli', 'cai.js'), 'start', '--dir', dir]).catch((e) => e);
  expect(start.code).toBe(2);
  expect(start.stderr.trim()).toMatch(new RegExp(`^cai: ${dir} is served by process \\d+ \\(since [^)]+\\): point the AWS CLI at it`));
});

test('cai stack down stops the server and withdraws its endpoints', async () => {
  const down = await cai(['stack', 'down', '--dir', dir]);
  expect(down.status).toBe(0);
  expect(server.exitCode ?? (await new Promise((r) => server.once('exit', r)))).toBe(0);
  // Nothing it started outlives it: no emulator, no runtime, no worker.
  expect(groupMembers(server.pid!)).toEqual([]);
  expect(existsSync(join(dir, 'stack.json'))).toBe(false);
  const env = await cai(['stack', 'env', '--dir', dir]);
  expect(env.status).toBe(2);
  expect(env.stderr.trim()).toBe(`cai: no stack serves ${dir}: start one with npx cai stack up`);
});
