import { availableParallelism } from 'node:os';
import type { Command, CommanderError } from 'commander';
import { UsageError } from '../functions/commons/errors';

export function positiveInteger(text: string, what: string, max?: { value: number; why: string }): number {
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`${what} "${text}" is not a positive integer`);
  }
  if (max && n > max.value) throw new UsageError(`${what} ${n} is more than ${max.value}: ${max.why}`);
  return n;
}

const cores = availableParallelism();

/** Threads of one onnxruntime session: more than the machine's cores only contend. */
export const threadsOption = (text: string) => positiveInteger(text, '--threads', { value: cores, why: `this machine has ${cores} cores` });

/** Lambda containers the local stack runs at once, each holding a model: a few per core at most. */
export const workersOption = (text: string) =>
  positiveInteger(text, '--workers', { value: 4 * cores, why: `4 inference containers per core of this machine's ${cores}` });

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
