import type { Command } from 'commander';
import { openTensorFile } from '../../functions/commons/partitions/tensor-files';
import { decodedBytes, sharedSamples, summarizeTensor, type TensorSummary } from '../../toolkit/datasets/inspect';
import { openLocation, parseLocation } from '../../toolkit/locations';
import { formatBytes } from '../../toolkit/sizes';
import { withOptions } from '../options';
import { progressLine } from '../progress';

const fmt = (v: number | null) => (v === null ? '-' : Number(v.toPrecision(6)).toString());

async function inspect(location: string, options: { json?: boolean; values?: boolean }): Promise<void> {
  const file = await openTensorFile(await openLocation(parseLocation(location)));
  try {
    const summarize = options.values !== false;
    const progress = progressLine(`inspect ${file.name}`);
    const total = file.tensors.reduce((n, t) => n + decodedBytes(t), 0);
    let read = 0;
    const tensors: (TensorSummary | Pick<TensorSummary, 'name' | 'shape' | 'dtype'>)[] = [];
    for (const tensor of file.tensors) {
      if (!summarize) {
        tensors.push({ name: tensor.name, shape: tensor.shape, dtype: tensor.dtype });
        continue;
      }
      tensors.push(
        await summarizeTensor(file, tensor, (bytes) => {
          read += bytes;
          if (total > 64 * 1024 * 1024) progress.update(`${formatBytes(read)} of ${formatBytes(total)}`);
        }),
      );
    }
    const report = { format: file.format, samples: sharedSamples(file.tensors), tensors };
    if (options.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return;
    }
    const values = (t: (typeof tensors)[number]) =>
      'min' in t ? `  min ${fmt(t.min)}  max ${fmt(t.max)}  mean ${fmt(t.mean)}${t.nan ? `  nan ${t.nan}` : ''}` : '';
    const lines = [
      `${file.name}: ${file.format}, ${formatBytes(file.size)}, ${report.samples ?? 'no shared'} samples, ${tensors.length} arrays`,
      ...tensors.map((t) => `  ${t.name}  ${t.dtype}[${t.shape.join(', ')}]${values(t)}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await file.close();
  }
}

/** `cai inspect <file>`: a data file's arrays (datasets, columns, HDUs), by the names a card uses, decoded and summarised. */
export function addInspectCommand(program: Command): void {
  withOptions(
    program
      .command('inspect')
      .description("list a data file's arrays (.pt, HDF5, FITS, Parquet, .npy/.npz) with dtype and shape, and summarise their values")
      .argument('<file>', 'a local file or s3://bucket/key')
      .option('--no-values', 'list the arrays only, reading no data (quick on a large file)'),
    'json',
  ).action(inspect);
}
