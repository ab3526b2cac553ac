import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { type Command, type CommanderError, Option } from 'commander';
import { UsageError } from '../functions/commons/errors';
import { ROOT } from '../local/paths';
import { DEFAULT_TABLE } from '../local/stack';

/** The committed quick-start model (model/README.md). */
export const DEFAULT_MODEL = join(ROOT, 'model', 'default.onnx');

/**
 * Options that more than one command takes, each declared once with one help text (as the AWS CDK
 * CLI declares its shared options): a command adds them by name.
 */
const SHARED = {
  dir: () => new Option('--dir <dir>', "the local stack's state folder").default('.cai'),
  aws: () => new Option('--aws', 'read from AWS (the usual AWS environment and profile) instead of the local stack'),
  table: () => new Option('--table <name>', "the runs table (on AWS: the stack's RunsTableName output)").default(DEFAULT_TABLE),
  model: () => new Option('--model <file.onnx>', 'the ONNX model').default(DEFAULT_MODEL),
  workers: () => new Option('--workers <n>', 'inference containers at once (default: one per core)'),
  parameterOverrides: () =>
    new Option(
      '--parameter-overrides <overrides>',
      "template parameters over samconfig.toml's, as sam deploy takes them (ResultBucketNames=my-bucket)",
    ),
  json: () => new Option('--json', 'print one JSON object as the last line'),
} as const;

export type SharedOption = keyof typeof SHARED;

export function withOptions(command: Command, ...names: SharedOption[]): Command {
  for (const name of names) command.addOption(SHARED[name]());
  return command;
}

/** What the local stack's options say, as the commands that start one receive them. */
export interface StackOptions {
  dir: string;
  model: string;
  workers?: string;
  parameterOverrides?: string;
}

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

/** Inference workers of one `cai predict`: one per core at most, as one per vCPU on Lambda. */
export const poolWorkersOption = (text: string) =>
  positiveInteger(text, '--workers', { value: cores, why: `this machine has ${cores} cores` });

/** Lambda containers the local stack runs at once, each holding a model: a few per core at most. */
export const workersOption = (text: string) =>
  positiveInteger(text, '--workers', { value: 4 * cores, why: `4 inference containers per core of this machine's ${cores}` });

/**
 * Commander's own errors (unknown command or option, missing argument) as the README promises:
 * one line, `cai: <what is wrong>`, and exit status 2; help and --version still exit 0.
 */
export function usageErrorsAsOneLine(program: Command): Command {
  return program.exitOverride().configureOutput({
    outputError: (text, write) => write(`cai: ${text.replace(/^error: /, '').trim()} (cai --help)\n`),
  });
}

/** The exit status for an error commander threw: 0 after help or the version, else 2. */
export const commanderExitCode = (error: CommanderError) => (error.exitCode === 0 ? 0 : 2);
