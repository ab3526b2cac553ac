import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../../functions/commons/errors';
import { LambdaError, lambdaReportLine } from '../../local/lambda-runtime';
import { servedStack } from '../../local/served-stack';
import { LocalStack } from '../../local/stack';
import { withOptions } from '../options';
import { FUNCTIONS, type FunctionId } from '../../local/template';

interface InvokeOptions {
  event: string;
  envVars?: string;
  dir: string;
  model: string;
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UsageError(`cannot read the ${what} ${path}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`the ${what} ${path} is not JSON: ${(error as Error).message}`);
  }
}

/**
 * `cai invoke <LogicalId> -e <event.json>`: `sam local invoke` without Docker. The function's
 * deployment artifact runs once under the Runtime Interface Emulator, configured from template.yaml
 * (and --env-vars, as SAM reads it), against the local stack's S3 and DynamoDB under --dir (the
 * running stack's, when `cai stack up` serves that folder). The
 * reply goes to stdout, the function's log and its REPORT line to stderr.
 */
export async function invokeFunction(id: string, options: InvokeOptions): Promise<number> {
  if (!(id in FUNCTIONS)) throw new UsageError(`no function ${id} in template.yaml (its functions: ${Object.keys(FUNCTIONS).join(', ')})`);
  const functionId = id as FunctionId;
  const event = readJson(options.event, 'event');
  const envVars = options.envVars ? (readJson(options.envVars, 'env-vars file') as Record<string, Record<string, string>>) : {};
  const stack = await new LocalStack({
    directory: resolve(options.dir),
    modelPath: resolve(options.model),
    workers: 1,
    environment: { [functionId]: { ...envVars.Parameters, ...envVars[functionId] } },
    echoLogs: true,
    // A stack serving the folder owns its servers: run the container against them.
    attach: servedStack(resolve(options.dir)),
  }).start();
  try {
    const fn = stack.functions[FUNCTIONS[functionId]];
    let code = 0;
    try {
      process.stdout.write(`${JSON.stringify(await fn.invoke(event))}\n`);
    } catch (error) {
      if (!(error instanceof LambdaError)) throw error;
      // What the invoke API returns for a failed invocation.
      process.stdout.write(`${JSON.stringify({ errorType: error.name, errorMessage: error.message })}\n`);
      code = 1;
    }
    const report = fn.billed.at(-1);
    if (report) process.stderr.write(`${lambdaReportLine(report)}\n`);
    // An initializer invocation may have started a run: let it finish before the stack goes.
    await stack.idle();
    return code;
  } finally {
    await stack.close();
  }
}

export function addInvokeCommand(program: Command): void {
  withOptions(
    program
      .command('invoke <LogicalId>')
      .description("run one function's deployment artifact once, as `sam local invoke` does, against the local stack")
      .requiredOption('-e, --event <file.json>', 'the event to invoke it with (see events/)')
      .option('-n, --env-vars <file.json>', "values for the template's environment variables, per function (events/env.json)"),
    'dir',
    'model',
  ).action(async (id: string, options: InvokeOptions) => {
    process.exitCode = await invokeFunction(id, options);
  });
}
