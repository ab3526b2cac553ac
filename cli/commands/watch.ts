import type { Command } from 'commander';
import { createDynamoClient, createS3Client, createSfnClient } from '../../functions/commons/aws/clients';
import { UsageError } from '../../functions/commons/errors';
import type { Architecture } from '../../functions/commons/billing/cost';
import { RunStore } from '../../functions/commons/run/run-store';
import { exitStatusOf, newestRunning, renderer, RunReader, watchRun, type WatchOutput } from '../run-watch';
import { withServices, type ServiceOptions } from '../services';

interface WatchOptions extends ServiceOptions {
  table: string;
  json?: boolean;
  interval: string;
  architecture: string;
}

/** --interval: seconds between reads, more than 0. */
function intervalMs(text: string): number {
  const seconds = Number(text);
  if (!/^\s*\d*\.?\d+\s*$/.test(text) || !(seconds > 0)) throw new UsageError(`--interval "${text}" is not a number of seconds above 0`);
  return seconds * 1000;
}

function architectureOf(text: string): Architecture {
  if (text !== 'x86_64' && text !== 'arm64') throw new UsageError(`--architecture "${text}" is neither x86_64 nor arm64`);
  return text;
}

/** `cai runs watch [runId]`: a run's live view until it ends; exits as cai start does (0 SUCCEEDED, 1 otherwise). */
export function addWatchCommand(runs: Command): void {
  runs
    .command('watch')
    .description('a run while it runs (default: the newest RUNNING run): ranks, objects, rate, ETA, failures, cost so far')
    .argument('[runId]')
    .option('--json', 'one JSON object per line, each time the counts change, and the last when the run has ended')
    .option('--interval <seconds>', 'seconds between reads', '2')
    .option('--architecture <arch>', "the inference function's architecture, whose prices bill the cost so far", 'x86_64')
    .action(async (runId: string | undefined, _options: unknown, command: Command) => {
      // --aws, --table and --dir belong to `runs`; they may be given after `watch`.
      const options = command.optsWithGlobals<WatchOptions>();
      const interval = intervalMs(options.interval);
      const architecture = architectureOf(options.architecture);
      const mode: WatchOutput = options.json ? 'json' : process.stdout.isTTY ? 'tty' : 'lines';
      process.exitCode = await withServices(options, { s3: true, dynamodb: true }, async (env, table) => {
        const store = new RunStore(createDynamoClient(env), table);
        const sources = {
          runs: store,
          s3: createS3Client(env),
          // On AWS, and on a served stack; a folder no process serves has no Step Functions (its runs have ended).
          sfn: options.aws || env.CAI_SFN_ENDPOINT ? createSfnClient(env) : undefined,
          region: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
          architecture,
        };
        const reader = new RunReader(sources, runId ?? (await newestRunning(store)));
        const render = renderer(mode);
        const record = await watchRun(reader, { intervalMs: interval, show: (p, last) => process.stdout.write(render(p, last)) });
        return exitStatusOf(record);
      });
    });
}
