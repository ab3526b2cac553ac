import type { PartitionManifest, WriteProgress } from '../toolkit/datasets/partition-writer';
import { formatBytes } from '../toolkit/sizes';
import { progressLine } from './progress';

/** Progress of a dataset writer (split, synth), on one line. */
export function writeProgress(label: string): (p: WriteProgress) => void {
  const progress = progressLine(label);
  return (p) =>
    progress.update(
      `${p.partitions}/${p.totalPartitions} partitions, ${p.samples} objects, ${formatBytes(p.bytes)}`,
      p.partitions === p.totalPartitions,
    );
}

/** What a dataset writer wrote, in one line. */
export function printManifest(manifest: PartitionManifest, where: string): void {
  const bytes = manifest.partitions.reduce((n, p) => n + p.bytes, 0);
  process.stdout.write(
    `wrote ${manifest.partitions.length} partitions (${manifest.samples} objects, ${formatBytes(bytes)}) ` +
      `and partitions.json to ${where}\n`,
  );
}
