#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { describeError, UsageError } from '../functions/commons/errors';
import { addDataCommands } from './data-commands';

const program = new Command('cai')
  .description('CAI: AstroMAE photometric-redshift inference over partitioned datasets')
  .showHelpAfterError()
  .exitOverride();
addDataCommands(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof CommanderError) {
    // Commander has already printed its message (help, version, or what was wrong).
    process.exitCode = error.exitCode;
    return;
  }
  process.stderr.write(`cai: ${describeError(error)}\n`);
  process.exitCode = error instanceof UsageError ? 2 : 1;
});
