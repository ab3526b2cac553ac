import { resolve } from 'node:path';
import type { Command } from 'commander';
import { createS3Client } from '../../functions/commons/aws/clients';
import { UsageError } from '../../functions/commons/errors';
import type { InitializeOutcome } from '../../functions/commons/run/initialize';
import {
  alive,
  announceServedStack,
  exportLines,
  servedStack,
  stackEnvironment,
  withdrawServedStack,
  type ServedStack,
} from '../../local/served-stack';
import { CONTROL_BUCKET, DATA_BUCKET, ensureBucket, LocalStack } from '../../local/stack';
import { parseParameterOverrides } from '../../local/template';
import { type StackOptions, withOptions, workersOption } from '../options';

/** One line for a folder some process already serves. */
export function refuseIfServed(directory: string): void {
  const served = servedStack(directory);
  if (served) {
    throw new UsageError(
      `${directory} is served by process ${served.pid} (since ${served.startedAt}): ` +
        'point the AWS CLI at it (eval "$(npx cai stack env)"), or stop it with npx cai stack down',
    );
  }
}

/**
 * `cai stack up` (and `cai start --serve`, the same): the local stack, kept running until Ctrl-C or
 * `cai stack down`. Prints the endpoints once, as export lines; uploads of runs/…/payload.json start runs
 * as on AWS, and each run's end is reported on stderr.
 */
export async function serveStack(options: StackOptions): Promise<void> {
  const directory = resolve(options.dir);
  refuseIfServed(directory);
  const stack = await new LocalStack({
    directory,
    modelPath: resolve(options.model),
    workers: options.workers ? workersOption(options.workers) : undefined,
    parameterOverrides: parseParameterOverrides(options.parameterOverrides ?? ''),
  }).start();
  const s3 = createS3Client({ ...process.env, ...stack.env });
  for (const bucket of [CONTROL_BUCKET, DATA_BUCKET]) await ensureBucket(s3, bucket);
  const served: ServedStack = {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    region: stack.env.AWS_REGION,
    s3: stack.s3.endpoint,
    dynamodb: stack.dynamo.endpoint,
    stepfunctions: stack.sfn.endpoint,
    controlBucket: CONTROL_BUCKET,
    dataBucket: DATA_BUCKET,
    table: stack.runs.table,
    accessKeyId: stack.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: stack.env.AWS_SECRET_ACCESS_KEY,
  };
  announceServedStack(directory, served);
  stack.onInitialized((outcomes: InitializeOutcome[]) => {
    for (const outcome of outcomes) {
      process.stderr.write(`stack: ${outcome.runId} ${outcome.outcome}${outcome.outcome === 'REJECTED' ? `: ${outcome.error}` : ''}\n`);
      if (outcome.outcome === 'STARTED') void reportWhenDone(stack, outcome.runId);
    }
  });
  process.stderr.write(
    `stack: serving ${directory} (pid ${process.pid}); in another shell: eval "$(npx cai stack env --dir ${options.dir})"\n` +
      `stack: upload payload.json to s3://${CONTROL_BUCKET}/runs/<name>/payload.json to start a run; Ctrl-C or npx cai stack down stops\n`,
  );
  process.stdout.write(`${exportLines(stackEnvironment(served))}\n`);

  await new Promise<void>((done) => {
    let stopping = false;
    const stop = () => {
      if (stopping) process.exit(130); // a second Ctrl-C: now
      stopping = true;
      withdrawServedStack(directory);
      const running = stack.sfn.running().length;
      if (running) process.stderr.write(`stack: waiting for ${running} run(s) to finish (Ctrl-C again to stop now)\n`);
      void stack.close().then(done);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  process.stderr.write('stack: stopped\n');
}

async function reportWhenDone(stack: LocalStack, runId: string): Promise<void> {
  for (;;) {
    const run = await stack.runs.get(runId).catch(() => undefined);
    if (run && run.status !== 'RUNNING') {
      const cost = run.cost ? `, $${run.cost.totalUsd.toExponential(2)}` : '';
      process.stderr.write(
        `stack: ${runId} ${run.status}: ${run.predictions ?? 0} predictions, ${run.failedPartitions ?? 0} failed partitions${cost}\n`,
      );
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** `cai stack up|env|down`: the local stack as a service, for the AWS CLI and SDKs. */
export function addStackCommand(program: Command): void {
  const stack = program.command('stack').description('the local stack as a service, for the AWS CLI and SDKs');
  withOptions(
    stack.command('up').description('start the local stack and keep it running (Ctrl-C or cai stack down stops it)'),
    'dir',
    'model',
    'workers',
    'parameterOverrides',
  ).action((options: StackOptions) => serveStack(options));
  withOptions(stack.command('env').description('print export lines that point the AWS CLI and SDKs at the running stack'), 'dir').action(
    (options: { dir: string }) => {
      const served = servedStack(resolve(options.dir));
      if (!served) throw new UsageError(`no stack serves ${resolve(options.dir)}: start one with npx cai stack up`);
      process.stdout.write(`${exportLines(stackEnvironment(served))}\n`);
    },
  );
  withOptions(stack.command('down').description('stop the running stack (runs in flight finish first)'), 'dir').action(
    async (options: { dir: string }) => {
      const served = servedStack(resolve(options.dir));
      if (!served) throw new UsageError(`no stack serves ${resolve(options.dir)}`);
      process.kill(served.pid, 'SIGTERM');
      for (let waited = 0; alive(served.pid); waited += 100) {
        if (waited > 15 * 60_000) throw new Error(`process ${served.pid} is still running`);
        await new Promise((r) => setTimeout(r, 100));
      }
      process.stderr.write(`stack: process ${served.pid} stopped\n`);
    },
  );
}
