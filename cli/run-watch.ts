import { paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import {
  DescribeExecutionCommand,
  DescribeMapRunCommand,
  paginateListMapRuns,
  paginateListStateMachines,
  type SFNClient,
} from '@aws-sdk/client-sfn';
import { UsageError } from '../functions/commons/errors';
import type { Architecture } from '../functions/commons/billing/cost';
import { parseS3Uri } from '../functions/commons/aws/s3-uri';
import type { RankItem, RankResult } from '../functions/commons/run/contracts';
import type { RunRecord, RunStore } from '../functions/commons/run/run-store';
import { readJsonObject } from '../functions/commons/aws/s3-json';
import {
  failureLines,
  progressBar,
  progressJson,
  progressText,
  runProgress,
  type ProgressInput,
  type RunProgress,
} from '../toolkit/run-progress';

/** Where a watched run is read: its record, its objects in S3, and (where one answers) Step Functions. */
export interface WatchSources {
  runs: RunStore;
  s3: S3Client;
  sfn?: SFNClient;
  region: string;
  architecture: Architecture;
}

function readJson<T>(s3: S3Client, uri: string): Promise<T | undefined> {
  const { bucket, key } = parseS3Uri(uri);
  return readJsonObject<T>(s3, bucket, key);
}

/** The newest RUNNING run, for `cai runs watch` without an id. */
export async function newestRunning(runs: RunStore): Promise<string> {
  const running = (await runs.list(50)).find((r) => r.status === 'RUNNING');
  if (!running) throw new UsageError(`no run is RUNNING in table ${runs.table}: give a run id (cai runs lists them)`);
  return running.runId;
}

/**
 * Reads a run again and again: each read fetches only what is new (rank results not read yet), and
 * finds the run's execution once (its name is the run id) among the account's state machines.
 */
export class RunReader {
  private readonly results = new Map<string, RankResult>();
  private items?: RankItem[];
  private executionArn?: string;
  private mapRunArn?: string;

  constructor(
    private readonly sources: WatchSources,
    readonly runId: string,
  ) {}

  async read(): Promise<{ record: RunRecord; progress: RunProgress }> {
    const record = await this.sources.runs.get(this.runId);
    if (!record) throw new UsageError(`no run ${this.runId} in table ${this.sources.runs.table}`);
    const mapRun = await this.mapRun(record);
    if (record.outputs) {
      this.items ??= await readJson<RankItem[]>(this.sources.s3, record.outputs.manifest);
      await this.readResults(record.outputs.rankResults);
    }
    const input: ProgressInput = {
      record,
      mapRun,
      items: this.items,
      results: [...this.results.values()],
      now: Date.now(),
      region: this.sources.region,
      architecture: this.sources.architecture,
    };
    return { record, progress: runProgress(input) };
  }

  private async readResults(prefixUri: string): Promise<void> {
    const { bucket, key: prefix } = parseS3Uri(prefixUri);
    const s3 = this.sources.s3;
    for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: prefix })) {
      for (const object of page.Contents ?? []) {
        if (this.results.has(object.Key!) || !object.Key!.endsWith('.json')) continue;
        const result = await readJson<RankResult>(s3, `s3://${bucket}/${object.Key}`);
        if (result) this.results.set(object.Key!, result);
      }
    }
  }

  /** The run's Map Run and its counts: ListStateMachines, DescribeExecution, ListMapRuns, DescribeMapRun. */
  private async mapRun(record: RunRecord): Promise<ProgressInput['mapRun']> {
    const sfn = this.sources.sfn;
    if (!sfn || !record.executionName) return undefined;
    this.executionArn ??= await this.findExecution(sfn, record.executionName);
    if (!this.executionArn) return undefined;
    if (!this.mapRunArn) {
      for await (const page of paginateListMapRuns({ client: sfn }, { executionArn: this.executionArn })) {
        this.mapRunArn ??= page.mapRuns?.[0]?.mapRunArn;
      }
    }
    if (!this.mapRunArn) return undefined;
    const described = await sfn.send(new DescribeMapRunCommand({ mapRunArn: this.mapRunArn }));
    const counts = described.itemCounts!;
    return {
      status: described.status!,
      startDate: described.startDate,
      counts: {
        pending: counts.pending ?? 0,
        running: counts.running ?? 0,
        succeeded: counts.succeeded ?? 0,
        failed: counts.failed ?? 0,
        timedOut: counts.timedOut ?? 0,
        aborted: counts.aborted ?? 0,
        total: counts.total ?? 0,
        resultsWritten: counts.resultsWritten ?? 0,
      },
    };
  }

  /** The execution of this name, in whichever of the account's state machines ran it. */
  private async findExecution(sfn: SFNClient, name: string): Promise<string | undefined> {
    for await (const page of paginateListStateMachines({ client: sfn }, {})) {
      for (const machine of page.stateMachines ?? []) {
        const arn = `${machine.stateMachineArn!.replace(':stateMachine:', ':execution:')}:${name}`;
        try {
          await sfn.send(new DescribeExecutionCommand({ executionArn: arn }));
          return arn;
        } catch (error) {
          if ((error as Error).name !== 'ExecutionDoesNotExist') throw error;
        }
      }
    }
    return undefined;
  }
}

/** How the view is shown: rewritten in place on a terminal, a line per change when piped, JSON lines for scripts. */
export type WatchOutput = 'tty' | 'lines' | 'json';

/** What one view looks like in an output mode: the text to write, or none when nothing changed. */
export function renderer(mode: WatchOutput): (p: RunProgress, last: boolean) => string {
  let previous = '';
  const named = new Set<string>();
  return (p, last) => {
    if (mode === 'json') {
      const line = JSON.stringify(progressJson(p));
      const comparable = JSON.stringify({ ...progressJson(p), elapsed_s: 0, objects_per_s: 0, eta_s: 0 });
      if (!last && comparable === previous) return '';
      previous = comparable;
      return `${line}\n`;
    }
    const fresh = failureLines(p).filter((line) => !named.has(line));
    for (const line of fresh) named.add(line);
    const text = `run ${p.runId}: ${progressText(p)}`;
    if (mode === 'tty') {
      const failures = fresh.length ? `\r\x1b[K${fresh.join('\n')}\n` : '';
      return `${failures}\r\x1b[K${progressBar(p)} ${text}${last ? '\n' : ''}`;
    }
    // Piped: a line whenever the counts change (the rate, ETA and elapsed time alone do not make one).
    const comparable = JSON.stringify({ ...progressJson(p), elapsed_s: 0, objects_per_s: 0, eta_s: 0, cost_usd: 0 });
    if (!last && comparable === previous && !fresh.length) return '';
    previous = comparable;
    return `${fresh.map((line) => `${line}\n`).join('')}${text}\n`;
  };
}

/** The exit status of a watched run, as cai start's: 0 when it SUCCEEDED, 1 otherwise. */
export const exitStatusOf = (record: RunRecord) => (record.status === 'SUCCEEDED' ? 0 : 1);

/**
 * Shows the run until its record leaves RUNNING, then once more with everything written (the last
 * rank results and the Map Run's end, once `settled` resolves), and returns the record.
 */
export async function watchRun(
  reader: RunReader,
  options: { intervalMs: number; show: (progress: RunProgress, last: boolean) => void; settled?: () => Promise<void> },
): Promise<RunRecord> {
  for (;;) {
    const { record, progress } = await reader.read();
    if (record.status !== 'RUNNING') break;
    options.show(progress, false);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
  }
  await options.settled?.();
  const { record, progress } = await reader.read();
  options.show(progress, true);
  return record;
}
