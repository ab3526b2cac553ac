import { writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { redshiftAccuracy } from '../../functions/commons/model/accuracy';
import { loadRedshiftModel, predictPartition } from '../../functions/commons/model/session';
import { describeLocation, openLocation, parseLocation } from '../../toolkit/locations';
import { openTorchPartition } from '../../functions/commons/partitions/reader';
import { predictionsCsv } from '../../functions/commons/model/predictions';
import { positiveInteger, threadsOption, withOptions } from '../options';
import { checkOutputFile } from '../output-checks';
import { progressLine } from '../progress';
import { formatAccuracy } from '../run-format';

async function predict(
  partition: string,
  options: { model: string; out: string; batchSize: string; threads: string; json?: boolean },
): Promise<void> {
  const batchSize = positiveInteger(options.batchSize, '--batch-size');
  const threads = threadsOption(options.threads);
  const location = parseLocation(partition);
  checkOutputFile(options.out, '--out', [location, { kind: 'file', path: options.model }]);
  const model = await loadRedshiftModel(options.model, { intraOpThreads: threads });
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
        `(${seconds.toFixed(2)} s, ${(reader.samples / seconds).toFixed(0)} objects/s, ${threads} thread${threads > 1 ? 's' : ''})`,
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
      .option('--batch-size <n>', 'objects per inference call', '256')
      .option('--threads <n>', 'intra-op threads', '1'),
    'model',
    'json',
  ).action(predict);
}
