import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A local stack kept running (`cai stack up`, `npm start -- --serve`) announces itself in
 * `<dir>/stack.json`: one process owns the servers of a state folder, and every other command on
 * that folder (`cai runs`, `cai invoke`, `cai stack env`) talks to it instead of opening the folder.
 */
export interface ServedStack {
  pid: number;
  startedAt: string;
  region: string;
  s3: string;
  dynamodb: string;
  stepfunctions: string;
  controlBucket: string;
  dataBucket: string;
  table: string;
  accessKeyId: string;
  secretAccessKey: string;
}

const fileOf = (directory: string) => join(directory, 'stack.json');

/** Whether a process is running. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The stack serving this folder, if a live process serves it (a stale file is ignored). */
export function servedStack(directory: string): ServedStack | undefined {
  const file = fileOf(directory);
  if (!existsSync(file)) return undefined;
  try {
    const served = JSON.parse(readFileSync(file, 'utf8')) as ServedStack;
    return alive(served.pid) ? served : undefined;
  } catch {
    return undefined;
  }
}

export function announceServedStack(directory: string, served: ServedStack): void {
  writeFileSync(fileOf(directory), `${JSON.stringify(served, null, 2)}\n`);
}

export function withdrawServedStack(directory: string): void {
  rmSync(fileOf(directory), { force: true });
}

/**
 * What points the AWS CLI and SDKs at the served stack: the service-specific endpoint variables,
 * region, credentials, and checksums only where required (the embedded S3 server does not take
 * the CLI's default aws-chunked uploads with trailing checksums). `CAI_*` point `cai` itself there.
 */
export function stackEnvironment(served: ServedStack): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_S3: served.s3,
    AWS_ENDPOINT_URL_DYNAMODB: served.dynamodb,
    AWS_ENDPOINT_URL_SFN: served.stepfunctions,
    AWS_REGION: served.region,
    AWS_DEFAULT_REGION: served.region,
    AWS_ACCESS_KEY_ID: served.accessKeyId,
    AWS_SECRET_ACCESS_KEY: served.secretAccessKey,
    AWS_REQUEST_CHECKSUM_CALCULATION: 'when_required',
    AWS_RESPONSE_CHECKSUM_VALIDATION: 'when_required',
    CAI_S3_ENDPOINT: served.s3,
    CAI_DYNAMODB_ENDPOINT: served.dynamodb,
    CAI_SFN_ENDPOINT: served.stepfunctions,
    CAI_CONTROL_BUCKET: served.controlBucket,
    CAI_DATA_BUCKET: served.dataBucket,
    CAI_RUNS_TABLE: served.table,
  };
}

/** `export NAME=value` lines, quoted for a POSIX shell. */
export function exportLines(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([name, value]) => `export ${name}='${value.replaceAll("'", "'\\''")}'`)
    .join('\n');
}
