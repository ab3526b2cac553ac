import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { redshiftAccuracy } from '../../functions/commons/model/accuracy';
import { UsageError } from '../../functions/commons/errors';
import { WORKER_BATCH_SIZE } from '../../functions/commons/model/lambda-sizing';
import { loadRedshiftModel, predictPartition } from '../../functions/commons/model/session';
import { startInferencePool } from '../../functions/commons/model/worker-pool';
import { describeLocation, openLocation, parseLocation } from '../../toolkit/locations';
import { openTorchPartition } from '../../functions/commons/partitions/reader';
import { predictionsCsv } from '../../functions/commons/model/predictions';
import { poolWorkersOption, positiveInteger, threadsOption, withOptions } from '../options';
import { checkOutputFile } from '../output-checks';
import { progressLine } from '../progress';
import { formatAccuracy } from '../run-format';

async function predict(
  partition: string,
  options: { model: string; out: string; batchSize: string; workers?: string; threads?: string; json?: boolean },
): Promise<void> {
  const batchSize = positiveInteger(options.batchSize, '--batch-size');
  if (options.workers && options.threads) throw new UsageError('--workers and --threads are two ways to run: give one');
  const threads = options.threads ? threadsOption(options.threads) : undefined;
  const workers = threads ? undefined : poolWorkersOption(options.workers ?? '1');
  const location = parseLocation(partition);
  checkOutputFile(options.out, '--out', [location, { kind: 'file', path: options.model }]);
  // The inference Lambda's path (a pool of workers of one thread each), or one session of --threads.
  const model = workers
    ? await startInferencePool({ modelPath: options.model, workers, workerScript: join(__dirname, 'inference-worker.js') })
    : await loadRedshiftModel(options.model, { intraOpThreads: threads });
  const how = workers ? `${workers} worker${workers > 1 ? 's' : ''}` : `1 session of ${threads} thread${threads! > 1 ? 's' : ''}`;
  const reader = await openTorchPartition(await openLocation(location));
  const key = location.kind === 'file' ? basename(location.path) : location.key;
  const progress = progressLine(`predict ${describeLocation(location)}`);
  const start = process.hrtime.bigint();
  try {
    const result = await predictPartition(model, reader, batchSize, (done, total) =>
      progress.update(`${done}/${total} objects`, done === total),
    );
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    await writeFile(options.out, predictionsCsv(key, result.predictions, result.redshift));
    const accuracy = result.redshift ? redshiftAccuracy(result.predictions, result.redshift) : null;
    const lines = [
      `${reader.samples} predictions from ${options.model} written to ${options.out} ` +
        `(${seconds.toFixed(2)} s, ${(reader.samples / seconds).toFixed(0)} objects/s, ${how})`,
      accuracy
        ? formatAccuracy(accuracy)
        : reader.samples === 0
          ? 'the partition holds no objects: no accuracy to report'
          : result.redshift
            ? 'no object has both a finite prediction and a finite label: no accuracy to report'
            : 'the partition has no redshift labels: no accuracy to report',
    ];
    if (result.nonFinite) {
      lines.push(
        `${result.nonFinite} object${result.nonFinite === 1 ? '' : 's'} with a non-finite input value (NaN or infinity): predicted NaN`,
      );
    }
    if (options.json) {
      lines.push(JSON.stringify({ samples: reader.samples, seconds, out: options.out, nonFinite: result.nonFinite, accuracy }));
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await reader.close();
    await model.release();
  }
}

/** `cai predict <partition>`: the model over one partition, by the inference Lambda's own path. */
export function addPredictCommand(program: Command): void {
  withOptions(
    program
      .command('predict')
      .description("run the model over one partition with CAI's inference path; write one CSV row per object")
      .argument('<partition>', 'a .pt partition (local or s3://bucket/key)')
      .requiredOption('--out <file.csv>', 'where to write partition,row,redshift_pred[,redshift_true]')
      .option('--batch-size <n>', 'objects per inference call', String(WORKER_BATCH_SIZE))
      .option('--workers <n>', 'inference workers of one thread each, as the inference Lambda runs them (default 1)')
      .option('--threads <n>', 'instead of workers: one session of this many intra-op threads'),
    'model',
    'json',
  ).action(predict);
}
