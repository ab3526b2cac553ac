import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cai, type CliResult } from '../helpers/cli';
import type { RunRecord } from '../../functions/commons/run/run-store';
import { tempFolder } from '../helpers/temp';
import { awsCli, groupMembers, serveStack } from '../helpers/served';
import type { ProgressJsonLine } from '../../toolkit/run-progress';

/**
 * Watching a run on a served stack (`cai stack up`): `cai runs watch` of a run of four ranks, one
 * of whose partitions is corrupt, from its start to its end, against the record the summarizer
 * wrote; and the AWS CLI's `aws stepfunctions` against the same stack, as on AWS.
 */
const work = tempFolder('cai-watch-');
const dir = join(work, 'stack');
let server: ChildProcess;
let serverLog: () => string;
let runId = '';

const aws = (...args: string[]) => awsCli(dir, work, args);

async function awsJson<T>(...args: string[]): Promise<T> {
  const { code, stdout, stderr } = await aws(...args);
  if (code !== 0) throw new Error(`aws ${args.join(' ')} exited ${code}: ${stderr}`);
  return JSON.parse(stdout) as T;
}

type WatchLine = ProgressJsonLine;

beforeAll(async () => {
  // One inference container: the ranks run one after another, so the watch sees the run part-way.
  ({ server, log: serverLog } = await serveStack(dir, ['--workers', '1']));
});
afterAll(async () => {
  if (server.exitCode === null) await cai(['stack', 'down', '--dir', dir]);
  // Whatever outlived it (a test that failed half-way): the whole group goes.
  if (groupMembers(server.pid!).length > 0) process.kill(-server.pid!, 'SIGKILL');
});

test('cai runs watch shows a run of four ranks with a corrupt partition as it runs, and ends with the record’s figures', async () => {
  // Eight partitions of 200: the four ranks, one after another, keep the run RUNNING for seconds, so a watch
  // started after the run was recorded still finds it RUNNING on a loaded machine.
  const synth = await cai(['synth', '--samples', '1600', '--size', '4MB', '--out', join(work, 'parts')]);
  expect(synth.status).toBe(0);
  // A truncated partition, as tests/integration/pipeline.test.ts makes one: its rank records it and goes on.
  const bad = join(work, 'parts', '3.pt');
  const bytes = readFileSync(bad);
  writeFileSync(bad, bytes.subarray(0, bytes.length - 200));
  expect((await aws('s3', 'cp', '--recursive', '--only-show-errors', 'parts/', 's3://cai-data/watched/')).code).toBe(0);
  writeFileSync(
    join(work, 'payload.json'),
    JSON.stringify({
      bucket: 'cai-control',
      data_bucket: 'cai-data',
      data_prefix: 'watched',
      result_path: 'results/watched',
      world_size: 4,
    }),
  );
  expect((await aws('s3', 'cp', '--only-show-errors', 'payload.json', 's3://cai-control/runs/watched/payload.json')).code).toBe(0);

  // The run exists (RUNNING) once the initializer has recorded it; watch without an id finds it.
  const deadline = Date.now() + 60_000;
  while (!runId) {
    if (Date.now() > deadline) throw new Error(`no run was recorded:\n${serverLog()}`);
    const runs = await cai(['runs', '--dir', dir, '--json']);
    runId = runs.json<{ runs: { runId: string; status: string }[] }>().runs.find((r) => r.status === 'RUNNING')?.runId ?? '';
  }
  const [json, lines] = await Promise.all([
    cai(['runs', 'watch', '--json', '--interval', '0.1', '--dir', dir]),
    cai(['runs', 'watch', runId, '--interval', '0.5', '--dir', dir]),
  ]);
  const shown = await cai(['runs', 'show', runId, '--json', '--dir', dir]);
  const record = shown.json<RunRecord>();
  expect(record).toMatchObject({ status: 'PARTIAL', ranks: 4, partitions: 8, failedPartitions: 1 });

  // As cai start's: 0 only when the run SUCCEEDED.
  expect(json.status).toBe(1);
  expect(json.stderr).toBe('');
  const watched = json.stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as WatchLine);
  const last = watched.at(-1)!;
  expect(last).toMatchObject({
    runId,
    status: record.status,
    objects: record.samples,
    partitions: { done: record.partitions, failed: record.failedPartitions, total: record.partitions },
    ranks: { total: record.ranks, pending: 0, running: 0 },
  });
  expect(last.ranks.succeeded + last.ranks.failed).toBe(record.ranks);
  expect(last.failures.map((f) => f.partition)).toEqual(record.failures!.map((f) => f.partition));
  expect(last.cost_usd).toBeGreaterThan(0);
  expect(last.cost_usd).toBeLessThanOrEqual(record.cost!.totalUsd);

  // Part-way: some ranks ended, others not, and the objects so far fewer than at the end.
  const partWay = watched.filter((w) => w.status === 'RUNNING' && w.ranks.succeeded + w.ranks.failed > 0 && w.objects < last.objects);
  expect(partWay.length).toBeGreaterThan(0);
  for (const w of watched) {
    expect(w.ranks.pending + w.ranks.running + w.ranks.succeeded + w.ranks.failed).toBe(record.ranks);
  }
  for (const [i, w] of watched.entries()) if (i > 0) expect(w.objects).toBeGreaterThanOrEqual(watched[i - 1].objects);

  // Piped: plain lines, the corrupt partition named once with its error, the last line the run's end.
  expect(lines.status).toBe(1);
  const text = lines.stdout.trim().split('\n');
  expect(text.filter((line) => line.includes('failed watched/3.pt'))).toEqual([
    expect.stringMatching(/^ {2}failed watched\/3\.pt \(rank \d\): .*truncated/),
  ]);
  expect(text.at(-1)).toMatch(
    new RegExp(
      `^run ${runId}: PARTIAL  ranks 4/4 \\(0 pending, 0 running, 4 succeeded, 0 failed\\)  ${record.samples} objects .*partitions 8/8, 1 failed`,
    ),
  );
});

test('aws stepfunctions lists the state machine, its executions and the run’s Map Run with its counts', async () => {
  expect(runId).not.toBe('');
  const machines = await awsJson<{ stateMachines: { stateMachineArn: string; name: string; type: string }[] }>(
    'stepfunctions',
    'list-state-machines',
  );
  expect(machines.stateMachines).toEqual([expect.objectContaining({ name: 'cai-local', type: 'STANDARD' })]);
  const machineArn = machines.stateMachines[0].stateMachineArn;
  const machine = await awsJson<{ status: string; definition: string }>(
    'stepfunctions',
    'describe-state-machine',
    '--state-machine-arn',
    machineArn,
  );
  expect(machine.status).toBe('ACTIVE');
  expect(JSON.parse(machine.definition).States.Infer.ItemProcessor.ProcessorConfig.Mode).toBe('DISTRIBUTED');

  const executions = await awsJson<{ executions: { executionArn: string; name: string; status: string }[] }>(
    'stepfunctions',
    'list-executions',
    '--state-machine-arn',
    machineArn,
  );
  const execution = executions.executions.find((e) => e.name === runId)!;
  expect(execution).toMatchObject({ status: 'SUCCEEDED', executionArn: `${machineArn.replace(':stateMachine:', ':execution:')}:${runId}` });
  const running = await awsJson<{ executions: unknown[] }>(
    'stepfunctions',
    'list-executions',
    '--state-machine-arn',
    machineArn,
    '--status-filter',
    'RUNNING',
  );
  expect(running.executions).toEqual([]);

  const mapRuns = await awsJson<{ mapRuns: { mapRunArn: string; executionArn: string }[] }>(
    'stepfunctions',
    'list-map-runs',
    '--execution-arn',
    execution.executionArn,
  );
  expect(mapRuns.mapRuns).toHaveLength(1);
  const mapRunArn = mapRuns.mapRuns[0].mapRunArn;
  expect(mapRunArn).toMatch(/^arn:aws:states:us-east-1:000000000000:mapRun:cai-local\/Infer:[0-9a-f-]{36}$/);
  expect(mapRuns.mapRuns[0].executionArn).toBe(execution.executionArn);

  const described = await awsJson<Record<string, unknown>>('stepfunctions', 'describe-map-run', '--map-run-arn', mapRunArn);
  // Every rank's child execution succeeded (CAI's Map catches a rank's error inside it), and each result was written.
  const counts = { pending: 0, running: 0, succeeded: 4, failed: 0, timedOut: 0, aborted: 0, total: 4, resultsWritten: 4 };
  expect(described).toMatchObject({
    mapRunArn,
    executionArn: execution.executionArn,
    status: 'SUCCEEDED',
    toleratedFailurePercentage: 100,
    itemCounts: counts,
    executionCounts: counts,
  });
  expect(described.maxConcurrency).toEqual(expect.any(Number));
  // The ResultWriter wrote under the same Map Run's id.
  const id = mapRunArn.split(':').pop();
  const manifest = await aws('s3', 'ls', `s3://cai-control/map-results/${id}/`);
  expect(manifest.stdout).toMatch(/manifest\.json/);
});

test('unknown ARNs answer as AWS answers them: ExecutionDoesNotExist, ResourceNotFound, StateMachineDoesNotExist', async () => {
  const machine = 'arn:aws:states:us-east-1:000000000000:stateMachine:cai-local';
  const unknownExecution = `${machine.replace(':stateMachine:', ':execution:')}:no-such-run`;
  const listed = await aws('stepfunctions', 'list-map-runs', '--execution-arn', unknownExecution);
  expect(listed.code).not.toBe(0);
  expect(listed.stderr).toMatch(/\(ExecutionDoesNotExist\) when calling the ListMapRuns operation/);
  const described = await aws(
    'stepfunctions',
    'describe-map-run',
    '--map-run-arn',
    `${machine.replace(':stateMachine:', ':mapRun:')}/Infer:nothing`,
  );
  expect(described.code).not.toBe(0);
  expect(described.stderr).toMatch(/\(ResourceNotFound\) when calling the DescribeMapRun operation/);
  const execution = await aws('stepfunctions', 'describe-execution', '--execution-arn', unknownExecution);
  expect(execution.stderr).toMatch(/\(ExecutionDoesNotExist\) when calling the DescribeExecution operation/);
  const executions = await aws('stepfunctions', 'list-executions', '--state-machine-arn', `${machine}-other`);
  expect(executions.stderr).toMatch(/\(StateMachineDoesNotExist\) when calling the ListExecutions operation/);
});

test('watch of a run that does not exist, or with no run RUNNING: one line, exit 2', async () => {
  const missing: CliResult = await cai(['runs', 'watch', 'no-such-run', '--dir', dir]);
  expect(missing.status).toBe(2);
  expect(missing.stdout).toBe('');
  expect(missing.stderr).toBe('cai: no run no-such-run in table cai-runs\n');
  const none = await cai(['runs', 'watch', '--dir', dir]);
  expect(none.status).toBe(2);
  expect(none.stderr).toBe('cai: no run is RUNNING in table cai-runs: give a run id (cai runs lists them)\n');
});
