import type { Command, CommanderError } from 'commander';
import { UsageError } from '../functions/commons/errors';

export function positiveInteger(text: string, what: string): number {
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${what} "${text}" is not a positive integer`);
  }
  return n;
}

/**
 * Commander's own errors (unknown command or option, missing argument) as the README promises:
 * one line, `<program>: <what is wrong>`, and exit status 2; help and --version still exit 0.
 */
export function usageErrorsAsOneLine(program: Command, name: string): Command {
  return program.exitOverride().configureOutput({
    outputError: (text, write) =>
      write(`${name}: ${text.replace(/^error: /, '').trim()} (${name === 'cai' ? 'cai --help' : 'npm start -- --help'})\n`),
  });
}

/** The exit status for an error commander threw: 0 after help or the version, else 2. */
export const commanderExitCode = (error: CommanderError) => (error.exitCode === 0 ? 0 : 2);
