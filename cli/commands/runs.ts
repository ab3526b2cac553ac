import { resolve } from 'node:path';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Command } from 'commander';
import { localFailedEvents, queueFailedEvents } from '../../toolkit/failed-events';
import { createDynamoClient } from '../../functions/commons/aws/clients';
import { UsageError } from '../../functions/commons/errors';
import { RunStore, type RunRecord } from '../../functions/commons/run/run-store';
import { positiveInteger, withOptions } from '../options';
import { failedEventLines, runDetails, runLine } from '../run-format';
import { chainLines, runChain, type RunChain } from '../run-chain';
import { addRunsRetryCommand } from './runs-retry';
import { withServices, type ServiceOptions } from '../services';
import { addWatchCommand } from './watch';

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

const withStore = <T>(options: ServiceOptions, use: (store: RunStore) => Promise<T>) =>
  withServices(options, { dynamodb: true }, (env, table) => use(new RunStore(createDynamoClient(env), table)));

/** `cai runs` and `cai runs show <runId>`: past runs from the runs table. */
export function addRunsCommand(program: Command): void {
  const runs = withOptions(
    program
      .command('runs')
      .description('list past runs, newest first (the local stack by default)')
      .enablePositionalOptions()
      .option('--dataset <bucket/prefix>', 'only the runs of one dataset')
      .option('--limit <n>', 'at most this many', '50')
      .option('--queue <url>', "with --aws: the stack's FailedEventsQueueUrl output, to list payloads never started"),
    'json',
    'aws',
    'table',
    'dir',
  ).action(async (options: ServiceOptions & { dataset?: string; limit: string; json?: boolean; queue?: string }) => {
    const limit = positiveInteger(options.limit, '--limit');
    if (options.queue && !options.aws) throw new UsageError('--queue reads the failed-events queue on AWS: give --aws too');
    // Events the stack gave up on never made a run: the on-failure destination keeps them.
    const failed = options.aws
      ? options.queue
        ? await queueFailedEvents(new SQSClient({}), options.queue)
        : []
      : localFailedEvents(resolve(options.dir));
    const list = await withStore(options, (store) =>
      options.dataset
        ? store.listByDataset(options.dataset.endsWith('/') ? options.dataset : `${options.dataset}/`, limit)
        : store.list(limit),
    );
    const none = options.dataset ? `no runs of dataset ${options.dataset} (cai runs lists every run with its dataset)` : 'no runs yet';
    const lines = [...(list.length ? list.map(runLine) : [none]), ...failedEventLines(failed)];
    if (options.json) lines.push(JSON.stringify({ runs: list.map(brief), neverStarted: failed }));
    process.stdout.write(`${lines.join('\n')}\n`);
  });

  runs
    .command('show')
    .description('one run: counts, timings, accuracy, cost breakdown, failures, outputs')
    .argument('<runId>')
    .option('--json', 'print the run record as one JSON object, last')
    .action(async (runId: string, _options: unknown, command: Command) => {
      // --aws, --table and --dir belong to `runs`; they may be given after `show`.
      const options = command.optsWithGlobals<ServiceOptions & { table: string; json?: boolean }>();
      const { run, chain } = await withStore(options, async (store) => {
        const found = await store.get(runId);
        return { run: found, chain: found && (await runChain(store, found)) };
      });
      if (!run) throw new UsageError(`no run ${runId} in table ${options.table}`);
      const details = [runDetails(run), ...(chain ? chainLines(chain) : [])].join('\n');
      process.stdout.write(`${details}\n${options.json ? `${JSON.stringify(chain ? { ...run, chain: chainJson(chain) } : run)}\n` : ''}`);
    });

  addRunsRetryCommand(runs);
  addWatchCommand(runs);
}

/** The chain in `cai runs show --json`: the runs by id and status, and the sums. */
const chainJson = ({ runs, ...sums }: RunChain) => ({ runs: runs.map((r) => ({ runId: r.runId, status: r.status })), ...sums });
