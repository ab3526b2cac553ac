import type { Command } from 'commander';
import { openTorchArchive, sharedSamples, summarizeTensor, type TensorSummary } from '../../functions/commons/torch/archive';
import { openLocation, parseLocation } from '../../toolkit/locations';
import { formatBytes } from '../../toolkit/sizes';
import { withOptions } from '../options';
import { progressLine } from '../progress';

const fmt = (v: number | null) => (v === null ? '-' : Number(v.toPrecision(6)).toString());

async function inspect(file: string, options: { json?: boolean }): Promise<void> {
  const source = await openLocation(parseLocation(file));
  try {
    const archive = await openTorchArchive(source);
    const progress = progressLine(`inspect ${source.name}`);
    const total = archive.tensors.reduce((n, t) => n + t.storage.entry.size, 0);
    let read = 0;
    const tensors: TensorSummary[] = [];
    for (const ref of archive.tensors) {
      tensors.push(
        await summarizeTensor(archive, ref, (bytes) => {
          read += bytes;
          if (total > 64 * 1024 * 1024) progress.update(`${formatBytes(read)} of ${formatBytes(total)}`);
        }),
      );
    }
    const report = { samples: sharedSamples(archive.tensors), tensors };
    if (options.json) {
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return;
    }
    const lines = [
      `${source.name}: ${formatBytes(source.size)}, ${report.samples ?? 'no shared'} samples, ${tensors.length} tensors`,
      ...tensors.map(
        (t, i) =>
          `  [${i}] ${t.dtype}[${t.shape.join(', ')}]  min ${fmt(t.min)}  max ${fmt(t.max)}  mean ${fmt(t.mean)}` +
          (t.nan ? `  nan ${t.nan}` : ''),
      ),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await source.close();
  }
}

/** `cai inspect <file>`: a tensor archive's tensors, decoded and summarised. */
export function addInspectCommand(program: Command): void {
  withOptions(
    program
      .command('inspect')
      .description('decode a tensor archive (.pt) and summarise its tensors')
      .argument('<file>', 'a local file or s3://bucket/key'),
    'json',
  ).action(inspect);
}
