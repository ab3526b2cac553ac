#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { describeError, UsageError } from '../functions/commons/errors';
import { addDataCommands } from './data-commands';
import { addInvokeCommand } from './invoke-command';
import { addModelCommands } from './model-commands';
import { addPlanCommand } from './plan-command';
import { addReportCommand } from './report-command';
import { addRunCommands } from './run-commands';
import { addStackCommands } from './stack-commands';
import { join } from 'node:path';
import { ROOT } from '../local/paths';
import { commanderExitCode, usageErrorsAsOneLine } from './arguments';

// The SDK warns on every run under Node 20 that its 2027 releases need Node 22; CAI's machines
// run Node 20 today (the Lambdas run 22), so the warning would only bury the command's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const program = usageErrorsAsOneLine(
  new Command('cai').description('CAI: AstroMAE photometric-redshift inference over partitioned datasets'),
  'cai',
);
addDataCommands(program);
addModelCommands(program);
addRunCommands(program);
addPlanCommand(program);
addReportCommand(program);
addInvokeCommand(program);
addStackCommands(program, join(ROOT, 'model', 'default.onnx'));

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof CommanderError) {
    // Commander has already printed its message (help, version, or what was wrong).
    process.exitCode = commanderExitCode(error);
    return;
  }
  process.stderr.write(`cai: ${describeError(error)}\n`);
  process.exitCode = error instanceof UsageError ? 2 : 1;
});
