import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { createDynamoClient } from '../functions/commons/aws/clients';
import { UsageError } from '../functions/commons/errors';
import { RunStore, type RunRecord } from '../functions/commons/run/run-store';
import { startLocalDynamo } from '../local/dynamo-server';
import { servedStack, stackEnvironment } from '../local/served-stack';
import { DEFAULT_TABLE } from '../local/stack';
import { positiveInteger } from './arguments';
import { runLine, runDetails } from './run-format';

interface StoreOptions {
  aws?: boolean;
  table: string;
  dir: string;
}

/** The runs table: the local stack's (under --dir) by default, or the real one on AWS. */
async function withStore<T>(options: StoreOptions, use: (store: RunStore) => Promise<T>): Promise<T> {
  if (options.aws) return use(new RunStore(createDynamoClient(), options.table));
  // A stack serving the folder owns its database: ask it.
  const served = servedStack(resolve(options.dir));
  if (served) return use(new RunStore(createDynamoClient({ ...process.env, ...stackEnvironment(served) }), served.table));
  const directory = join(resolve(options.dir), 'dynamodb');
  if (!existsSync(directory)) throw new UsageError(`no local runs under ${resolve(options.dir)} yet: npm start makes one`);
  const dynamo = await startLocalDynamo(directory);
  try {
    return await use(
      new RunStore(createDynamoClient({ ...process.env, CAI_DYNAMODB_ENDPOINT: dynamo.endpoint, AWS_REGION: 'us-east-1' }), options.table),
    );
  } catch (error) {
    // A folder whose stack never got as far as its table, or another --table.
    if ((error as Error).name !== 'ResourceNotFoundException') throw error;
    throw new UsageError(`no runs table ${options.table} under ${resolve(options.dir)}: npm start makes one`, { cause: error });
  } finally {
    await dynamo.close();
  }
}

const brief = (r: RunRecord) => ({
  runId: r.runId,
  status: r.status,
  startedAt: r.startedAt,
  finishedAt: r.finishedAt,
  dataset: r.dataset,
  partitions: r.partitions ?? 0,
  samples: r.samples ?? 0,
  predictions: r.predictions ?? 0,
  failedPartitions: r.failedPartitions ?? 0,
  cost_usd: r.cost?.totalUsd ?? 0,
  outputs: r.outputs?.prefix,
});

export function addRunCommands(program: Command): void {
  const storeOptions = (command: Command) =>
    command
      .enablePositionalOptions()
      .option('--aws', 'read the runs table on AWS (usual AWS environment and profile) instead of the local stack')
      .option('--table <name>', 'the runs table', DEFAULT_TABLE)
      .option('--dir <dir>', "the local stack's state folder", '.cai');

  const runs = storeOptions(
    program
      .command('runs')
      .description('list past runs, newest first (the local stack by default)')
      .option('--dataset <bucket/prefix>', 'only the runs of one dataset')
      .option('--limit <n>', 'at most this many', '50')
      .option('--json', 'print one JSON object as the last line'),
  ).action(async (options: StoreOptions & { dataset?: string; limit: string; json?: boolean }) => {
    const limit = positiveInteger(options.limit, '--limit');
    const list = await withStore(options, (store) =>
      options.dataset
        ? store.listByDataset(options.dataset.endsWith('/') ? options.dataset : `${options.dataset}/`, limit)
        : store.list(limit),
    );
    const none = options.dataset ? `no runs of dataset ${options.dataset} (cai runs lists every run with its dataset)` : 'no runs yet';
    const lines = list.length ? list.map(runLine) : [none];
    if (options.json) lines.push(JSON.stringify({ runs: list.map(brief) }));
    process.stdout.write(`${lines.join('\n')}\n`);
  });

  runs
    .command('show')
    .description('one run: counts, timings, accuracy, cost breakdown, failures, outputs')
    .argument('<runId>')
    .option('--json', 'print the run record as one JSON object, last')
    .action(async (runId: string, _options: unknown, command: Command) => {
      // --aws, --table and --dir belong to `runs`; they may be given after `show`.
      const options = command.optsWithGlobals<StoreOptions & { json?: boolean }>();
      const run = await withStore(options, (store) => store.get(runId));
      if (!run) throw new UsageError(`no run ${runId} in table ${options.table}`);
      process.stdout.write(`${runDetails(run)}\n${options.json ? `${JSON.stringify(run)}\n` : ''}`);
    });
}
