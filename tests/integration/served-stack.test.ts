import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { createS3Client } from '../../functions/commons/aws/clients';
import { cai } from '../helpers/cli';
import { ROOT } from '../../local/paths';
import { tempFolder } from '../helpers/temp';
import { awsCli, groupMembers, serveStack, stackEnv as servedEnv } from '../helpers/served';

/**
 * The user's three habits against a served local stack, with the real AWS CLI (PyPI awscli, which
 * `npm test` installs into .venv-awscli): `aws s3 cp` of partitions and of payload.json starts a
 * run, `aws dynamodb query` / `get-item` read the runs table, `aws s3 cp` fetches summary.json;
 * `cai runs` and `cai invoke` work alongside, and `cai stack down` stops it.
 */
const work = tempFolder('cai-served-');
const dir = join(work, 'stack');
let server: ChildProcess;
let serverLog: () => string;
/** The run the AWS CLI started on the served stack. */
let servedRun: string;

const stackEnv = () => servedEnv(dir);

async function aws(...args: string[]): Promise<string> {
  const { code, stdout, stderr } = await awsCli(dir, work, args);
  if (code !== 0) throw new Error(`aws ${args.join(' ')} exited ${code}: ${stderr}`);
  return stdout;
}

beforeAll(async () => {
  ({ server, log: serverLog } = await serveStack(dir, ['--workers', '2']));
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
    if (Date.now() > deadline) throw new Error(`the run did not finish:\n${serverLog()}`);
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

  servedRun = run.runId.S;
  const item = JSON.parse(
    await aws('dynamodb', 'get-item', '--table-name', 'cai-runs', '--key', JSON.stringify({ runId: { S: run.runId.S } })),
  );
  expect(item.Item).toMatchObject({ status: { S: 'SUCCEEDED' }, samples: { N: '240' }, predictions: { N: '240' } });

  await aws('s3', 'cp', '--only-show-errors', `s3://cai-control/results/cli/${run.runId.S}/summary.json`, 'summary.json');
  const summary = JSON.parse(readFileSync(join(work, 'summary.json'), 'utf8'));
  expect(summary).toMatchObject({ runId: run.runId.S, status: 'SUCCEEDED', samples: 240, failedPartitions: 0 });
  expect(summary.accuracy.mae).toBeLessThan(0.1);
  expect(await aws('s3', 'ls', `s3://cai-control/results/cli/${run.runId.S}/`)).toMatch(/combined_data\.json[\s\S]*summary\.json/);
  expect(serverLog()).toMatch(new RegExp(`stack: ${run.runId.S} SUCCEEDED: 240 predictions`));

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

test('cai runs, runs show and report with --aws find the run through the AWS settings alone, as they would on AWS', async () => {
  // Only what points the AWS SDK at the stack (endpoints, region, keys), none of cai's own CAI_* settings, and a
  // --dir that no stack serves and that holds nothing: what they find, they found through the AWS settings.
  const { env } = await stackEnv();
  const awsOnly = Object.fromEntries(Object.entries(env).filter(([name]) => name.startsWith('AWS_')));
  expect(Object.keys(awsOnly)).toContain('AWS_ENDPOINT_URL_DYNAMODB');
  const nowhere = join(work, 'not-a-stack');
  const flags = ['--aws', '--table', 'cai-runs', '--dir', nowhere];
  const listed = await cai(['runs', ...flags, '--json'], awsOnly);
  expect([listed.status, listed.stderr]).toEqual([0, '']);
  expect(listed.json<{ runs: { runId: string; predictions: number }[] }>().runs).toEqual([
    expect.objectContaining({ runId: servedRun, predictions: 240 }),
  ]);
  const shown = await cai(['runs', 'show', servedRun, ...flags, '--json'], awsOnly);
  expect([shown.status, shown.stderr]).toEqual([0, '']);
  expect(shown.stdout).toMatch(/240 objects, 240 predictions, 0 failed partitions/);
  expect(shown.json()).toMatchObject({ runId: servedRun, status: 'SUCCEEDED', samples: 240 });
  // The same run's report from the served stack's own folder (cai's route to it) is the same page.
  const viaAws = await cai(['report', servedRun, ...flags, '--out', join(work, 'aws-report.html')], awsOnly);
  const viaDir = await cai(['report', servedRun, '--dir', dir, '--out', join(work, 'dir-report.html')]);
  expect([viaAws.status, viaAws.stderr, viaAws.stdout]).toEqual([0, '', `report ${join(work, 'aws-report.html')}\n`]);
  expect(viaDir.status).toBe(0);
  const page = readFileSync(join(work, 'aws-report.html'), 'utf8');
  expect(page).toContain(servedRun);
  expect(page).toBe(readFileSync(join(work, 'dir-report.html'), 'utf8'));
  expect(existsSync(nowhere)).toBe(false);
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

test('npm start -- --serve serves the stack as cai stack up does: its endpoints, uploads that start runs, cai stack down', async () => {
  const own = join(work, 'start-serve');
  const started = spawn(process.execPath, [join(ROOT, 'dist', 'cli', 'cai.js'), 'start', '--serve', '--dir', own, '--workers', '1'], {
    cwd: ROOT,
  });
  let log = '';
  let printed = '';
  started.stderr!.on('data', (d) => (log += d));
  started.stdout!.on('data', (d) => (printed += d));
  try {
    const deadline = Date.now() + 60_000;
    while (!printed.includes('export CAI_RUNS_TABLE=')) {
      if (Date.now() > deadline || started.exitCode !== null) throw new Error(`cai start --serve did not serve:\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(log).toMatch(new RegExp(`^stack: serving ${own} \\(pid ${started.pid}\\)`));
    // Its export lines are the ones cai stack env prints for the folder.
    const env = await cai(['stack', 'env', '--dir', own]);
    expect([env.status, env.stdout]).toEqual([0, printed]);
    const exported = Object.fromEntries([...printed.matchAll(/^export (\w+)='([^']*)'$/gm)].map(([, k, v]) => [k, v]));
    // An upload of payload.json fires the initializer: this one is refused, and recorded FAILED.
    const s3 = createS3Client({ ...process.env, ...exported });
    await s3.send(new PutObjectCommand({ Bucket: 'cai-control', Key: 'runs/bad/payload.json', Body: '{"bucket": "cai-control"}' }));
    while (!/stack: \S+ REJECTED: /.test(log)) {
      if (Date.now() > deadline + 60_000) throw new Error(`no run was started or refused:\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const runs = await cai(['runs', '--dir', own, '--json']);
    expect(runs.json<{ runs: { status: string; dataset: string }[] }>().runs).toEqual([expect.objectContaining({ status: 'FAILED' })]);
    const down = await cai(['stack', 'down', '--dir', own]);
    expect(down.status).toBe(0);
    expect(started.exitCode ?? (await new Promise((r) => started.once('exit', r)))).toBe(0);
    expect(existsSync(join(own, 'stack.json'))).toBe(false);
  } finally {
    if (started.exitCode === null) started.kill('SIGKILL');
  }
});
