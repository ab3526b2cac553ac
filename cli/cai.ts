#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { describeError, UsageError } from '../functions/commons/errors';
import { addInspectCommand } from './commands/inspect';
import { addInvokeCommand } from './commands/invoke';
import { addPlanCommand } from './commands/plan';
import { addPredictCommand } from './commands/predict';
import { addReportCommand } from './commands/report';
import { addRunsCommand } from './commands/runs';
import { addSplitCommand } from './commands/split';
import { addStackCommand } from './commands/stack';
import { addStartCommand } from './commands/start';
import { addSynthCommand } from './commands/synth';
import { commanderExitCode, usageErrorsAsOneLine } from './options';

// The SDK warns on every run under Node 20 that its 2027 releases need Node 22; CAI's machines
// run Node 20 today (the Lambdas run 22), so the warning would only bury the command's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** `cai`: the one program; each command is a file under cli/commands/. */
const program = usageErrorsAsOneLine(
  new Command('cai').description('CAI: photometric-redshift inference over partitioned datasets on AWS Lambda'),
);
for (const add of [
  addStartCommand,
  addStackCommand,
  addRunsCommand,
  addReportCommand,
  addPlanCommand,
  addInvokeCommand,
  addPredictCommand,
  addSynthCommand,
  addSplitCommand,
  addInspectCommand,
]) {
  add(program);
}

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof CommanderError) {
    // Commander has already printed its message (help, version, or what was wrong).
    process.exitCode = commanderExitCode(error);
    return;
  }
  process.stderr.write(`cai: ${describeError(error)}\n`);
  process.exitCode = error instanceof UsageError ? 2 : 1;
});
