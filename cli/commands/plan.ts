import { TENSOR_FILE_KINDS } from '../../functions/commons/partitions/file-names';
import type { Command } from 'commander';
import { createS3Client } from '../../functions/commons/aws/clients';
import { forecastRun, DEFAULT_ASSUMPTIONS, type Plan, type PlanRow, type ValidationError } from '../../toolkit/forecast/forecast';
import { ARM64_RATE_FACTOR } from '../../functions/commons/model/lambda-sizing';
import type { Architecture } from '../../functions/commons/billing/cost';
import { UsageError } from '../../functions/commons/errors';
import { formatBytes, parseByteSize } from '../../toolkit/sizes';
import { listPartitions } from '../../functions/commons/run/rank-plan';
import { parseS3Uri } from '../../functions/commons/aws/s3-uri';
import { positiveInteger, withOptions } from '../options';
import { withServices } from '../services';

const DEFAULT_PARTITIONS = ['25MB', '50MB', '75MB', '100MB', '250MB', '500MB'];
const DEFAULT_MEMORIES = [1024, 1769, 3538, 5307, 10240];

interface PlanOptions {
  data: string;
  partition?: string;
  memory?: string;
  arch: string;
  precision: string;
  vnni?: boolean;
  region: string;
  init: string;
  s3Mibps: string;
  concurrency: string;
  json?: boolean;
  aws?: boolean;
  dir: string;
}

/** s3://bucket/prefix → the bytes of the data files under it (all pages), as a run would list them. */
function sizeOfPrefix(uri: string, options: PlanOptions): Promise<{ bytes: number; objects: number }> {
  const { bucket, key: prefix } = parseS3Uri(uri, '--data');
  return withServices(options, { s3: true }, async (env) => {
    const partitions = await listPartitions(createS3Client(env), bucket, prefix).catch((error: unknown) => {
      throw new UsageError(`cannot list ${uri}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    });
    if (!partitions.length) throw new UsageError(`no data files (${TENSOR_FILE_KINDS}) under ${uri}`);
    return { bytes: partitions.reduce((s, p) => s + p.bytes, 0), objects: partitions.length };
  });
}

const list = (text: string, parse: (item: string) => number) =>
  text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean)
    .map(parse);

const percent = (e: number) => `${e >= 0 ? '+' : '−'}${Math.abs(e * 100).toFixed(0)}%`;
const seconds = (s: number) => (s < 100 ? s.toFixed(1) : Math.round(s).toLocaleString('en-US'));

function errorNote(check: ValidationError): string {
  return `±${(check.meanAbsError * 100).toFixed(0)}%`;
}

/** A published run's data: the size the prototype gave it, and what its statistics count when that is far less. */
function dataNote(data: NonNullable<ValidationError['data']>): string {
  const stated = data.statedGb >= 1000 ? `${data.statedGb / 1000} TB` : `${data.statedGb} GB`;
  if (data.share > 0.5) return ` (${stated})`;
  return (
    ` (called ${stated}, but its statistics count ${Math.round(data.countedGb)} GB, ${(data.share * 100).toFixed(0)}% of its ranks' data: ` +
    'a launch measurement whose data volume is not confirmed)'
  );
}

function checkLine(check: ValidationError): string {
  const [lo, hi] = [check.measuredS.reduce((a, b) => Math.min(a, b)), check.measuredS.reduce((a, b) => Math.max(a, b))];
  return (
    `  ${check.label}${check.data ? dataNote(check.data) : ''}: predicted ${seconds(check.predictedS)} s, measured ${seconds(lo)}–${seconds(hi)} s; ` +
    `mean |error| ${(check.meanAbsError * 100).toFixed(1)}%, mean ${percent(check.meanSignedError)}`
  );
}

/** Each memory size's rate, with where each part of it comes from (measured here, or the reference scaling). */
function rateLines(plan: Plan): string[] {
  const byMemory = new Map(plan.rows.map((r) => [r.memoryMb, r.rate]));
  return [...byMemory].map(
    ([memoryMb, rate]) =>
      `  ${String(memoryMb).padStart(5)} MB: ${Math.round(rate.galaxiesPerSecond).toLocaleString('en-US')} galaxies/s (${rate.sources.join('; ')})`,
  );
}

export function formatPlan(plan: Plan, source: string): string {
  const { assumptions: a, calibration: c } = plan;
  const header = ['partition', 'memory MB', 'ranks', 'rank s', 'wall s', 'fit error', 'cost USD', ''];
  const cells = plan.rows.map((r: PlanRow) => [
    formatBytes(r.partitionBytes),
    String(r.memoryMb),
    r.ranks.toLocaleString('en-US'),
    seconds(r.rankSeconds),
    seconds(r.wallSeconds),
    `${errorNote(r.check)} (${r.check.ranks < 1000 ? 'held-out rows' : `${r.check.ranks.toLocaleString('en-US')} ranks`})`,
    r.costUsd < 0.01 ? r.costUsd.toFixed(5) : r.costUsd.toFixed(2),
    [r.cheapest ? '* cheapest' : '', r.fastest ? '^ fastest' : '', r.infeasible ? `cannot run: ${r.infeasible}` : '']
      .filter(Boolean)
      .join(', '),
  ]);
  const widths = header.map((h, i) => cells.reduce((w, row) => Math.max(w, row[i].length), h.length));
  const line = (row: string[]) =>
    row
      .map((cell, i) => (i === 0 || i === row.length - 1 || i === 5 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  const galaxies = plan.rows[0]?.galaxies ?? 0;
  return [
    `plan for ${formatBytes(plan.totalBytes)} (${source}; ~${galaxies.toLocaleString('en-US')} galaxies) on AWS ${a.region}, ${a.architecture}, ${a.precision} model`,
    '',
    line(header),
    ...cells.map(line),
    '',
    `wall = max(launch overhead + one rank, rank-seconds over the concurrency quota, the last rank's earliest start under ` +
      `Lambda's scaling rate + one rank); launch overhead = ` +
      `${c.fit.a.toFixed(2)} s × ranks^${c.fit.p.toFixed(3)}, fitted on the seed's ${c.fit.fittedOn.join(' and ')} MB runs ` +
      `(total_execution_time.csv, minus the seed's rank duration). Its error where it was not fitted:`,
    checkLine(c.heldOut),
    ...c.published.map(checkLine),
    `The fit error beside each row is that of the check nearest in ranks. Cost: billRun (Lambda GB-s with INIT, requests, ` +
      `state transitions, S3 and DynamoDB requests).`,
    `Rates (${a.precision}${a.precision === 'int8' ? (a.vnni ? ', on a CPU with VNNI' : ', on a CPU without VNNI: --vnni if the target has it') : ''}; ` +
      `x86_64 measured), per memory size:`,
    ...rateLines(plan),
    ...(a.architecture === 'arm64'
      ? [`arm64 rates are the x86_64 measurement × ${ARM64_RATE_FACTOR} (ARM64_RATE_FACTOR), an assumption: not measured on Graviton.`]
      : []),
    `Assumed: INIT ${a.initSeconds} s, S3 ${a.s3MiBps} MiB/s per rank, ` +
      `concurrency quota ${a.limits.concurrency.toLocaleString('en-US')}, scaling ${a.limits.scalingPer10s.toLocaleString('en-US')} per 10 s.`,
  ].join('\n');
}

/** `cai plan`: what a dataset would take and cost on AWS, per partition size and memory size. */
export function addPlanCommand(program: Command): void {
  withOptions(
    program
      .command('plan')
      .description("predict a run's wall time and cost on AWS over partition and memory sizes (calibrated on the seed's AWS runs)")
      .requiredOption('--data <size|s3://bucket/prefix>', 'the data: a size (1TB, 500GB) or an S3 prefix to list')
      .option('--partition <sizes>', `partition size(s), comma-separated (default ${DEFAULT_PARTITIONS.join(',')})`)
      .option('--memory <MB>', `Lambda memory size(s), comma-separated (default ${DEFAULT_MEMORIES.join(',')})`)
      .option('--arch <arch>', 'x86_64 or arm64', DEFAULT_ASSUMPTIONS.architecture)
      .option('--precision <fp32|int8>', "the model's weights: fp32 or int8", DEFAULT_ASSUMPTIONS.precision)
      .option('--vnni', "the target's CPU has VNNI: int8 at the rate measured with it (Lambda does not promise it)")
      .option('--region <region>', 'AWS region whose prices bill the run', DEFAULT_ASSUMPTIONS.region)
      .option('--init <seconds>', "a cold container's INIT, seconds", String(DEFAULT_ASSUMPTIONS.initSeconds))
      .option('--s3-mibps <n>', "one rank's S3 read rate, MiB/s", String(DEFAULT_ASSUMPTIONS.s3MiBps))
      .option('--concurrency <n>', "the account's Lambda concurrency quota", String(DEFAULT_ASSUMPTIONS.limits.concurrency)),
    'json',
    'aws',
    'dir',
  ).action(async (options: PlanOptions) => {
    if (options.arch !== 'x86_64' && options.arch !== 'arm64') throw new UsageError(`--arch "${options.arch}" is not x86_64 or arm64`);
    if (options.precision !== 'fp32' && options.precision !== 'int8')
      throw new UsageError(`--precision "${options.precision}" is not fp32 or int8`);
    const init = Number(options.init);
    if (!/^\s*\d+(\.\d+)?\s*$/.test(options.init) || !(init >= 0 && init <= 600))
      throw new UsageError(`--init "${options.init}" is not a number of seconds from 0 to 600`);
    const s3MiBps = positiveInteger(options.s3Mibps, '--s3-mibps');
    const concurrency = positiveInteger(options.concurrency, '--concurrency');
    const partitions = list(options.partition ?? DEFAULT_PARTITIONS.join(','), (t) => parseByteSize(t, '--partition'));
    const memories = options.memory
      ? list(options.memory, (t) => {
          const mb = positiveInteger(t, '--memory');
          if (mb < 128 || mb > 10240) throw new UsageError(`--memory ${mb} is outside Lambda's 128–10,240 MB`);
          return mb;
        })
      : DEFAULT_MEMORIES;
    if (!partitions.length || !memories.length) throw new UsageError('--partition and --memory need at least one size');
    let totalBytes: number;
    let source: string;
    if (options.data.startsWith('s3://')) {
      const sized = await sizeOfPrefix(options.data, options);
      totalBytes = sized.bytes;
      source = `${sized.objects.toLocaleString('en-US')} partitions under ${options.data}${options.aws ? ' on AWS' : ' on the local stack'}`;
    } else {
      totalBytes = parseByteSize(options.data, '--data');
      source = `--data ${options.data}`;
    }
    const plan = forecastRun(totalBytes, [...new Set(partitions)], [...new Set(memories)], {
      ...DEFAULT_ASSUMPTIONS,
      architecture: options.arch as Architecture,
      precision: options.precision,
      vnni: Boolean(options.vnni),
      region: options.region,
      initSeconds: init,
      s3MiBps,
      limits: { ...DEFAULT_ASSUMPTIONS.limits, concurrency },
    });
    process.stdout.write(`${formatPlan(plan, source)}\n${options.json ? `${JSON.stringify(plan)}\n` : ''}`);
  });
}
