/**
 * Decode benchmark (`npm run bench:decode`): a 100 MB partition decoded by CAI from local disk and
 * from the embedded S3 server, alternating with torch.load of the same file, in one run. Then the
 * peak memory of `cai split` on a file many times larger than its partitions.
 * Prints a table, then one JSON object as the last line.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { fileSource, s3Source, type ByteSource } from '../functions/commons/tensors/byte-source';
import { sinkFor } from '../toolkit/locations';
import { openTorchPartition, partitionChunks } from '../toolkit/datasets/galaxy-partition';
import { rowsPerPartition } from '../toolkit/datasets/partition-writer';
import { createS3Client } from '../functions/commons/aws/clients';
import { synthesizeDataset } from '../toolkit/datasets/synth';
import { lines, median, run } from './harness';
import { ROOT } from '../local/paths';

const MiB = 2 ** 20;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);

async function decodeSeconds(open: () => Promise<ByteSource>): Promise<number> {
  const start = process.hrtime.bigint();
  const reader = await openTorchPartition(await open());
  let checksum = 0;
  for await (const rows of partitionChunks(reader)) checksum += rows.images[rows.images.length - 1];
  await reader.close();
  if (!Number.isFinite(checksum)) throw new Error('decode produced non-finite data');
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'cai-bench-'));
  const partitionBytes = 100 * MiB;
  const samples = rowsPerPartition(partitionBytes, true);
  process.stderr.write(`bench: writing a ${samples}-object partition (100 MiB) …\n`);
  await synthesizeDataset({ samples, maxBytes: partitionBytes, seed: 11, sink: sinkFor({ kind: 'file', path: join(work, 'one') }) });
  const file = join(work, 'one', '1.pt');

  const s3 = spawn(process.execPath, [join(ROOT, 'dist', 'local', 'serve-s3.js'), join(work, 's3'), 'bench'], { cwd: ROOT });
  const { endpoint } = JSON.parse(await lines(s3)());
  const client = createS3Client({ ...process.env, CAI_S3_ENDPOINT: endpoint });
  await client.send(new PutObjectCommand({ Bucket: 'bench', Key: '100MB/1.pt', Body: await readFile(file) }));

  const torch = spawn(join(ROOT, '.venv', 'bin', 'python'), [join(ROOT, 'bench', 'torch_load.py')], { cwd: ROOT });
  const torchLine = lines(torch);
  await torchLine(); // ready

  // The embedded server's own ceiling: one plain GET of the whole object, bytes only.
  const plainGetSeconds = async () => {
    const start = process.hrtime.bigint();
    const response = await client.send(new GetObjectCommand({ Bucket: 'bench', Key: '100MB/1.pt' }));
    await response.Body!.transformToByteArray();
    return Number(process.hrtime.bigint() - start) / 1e9;
  };
  const times = { caiDisk: [] as number[], caiS3: [] as number[], torchDisk: [] as number[], plainGet: [] as number[] };
  for (let round = 0; round < ROUNDS; round++) {
    times.caiDisk.push(await decodeSeconds(() => fileSource(file)));
    torch.stdin.write(`${file}\n`);
    times.torchDisk.push(Number((await torchLine()).split(' ')[0]));
    times.caiS3.push(await decodeSeconds(() => s3Source(client, 'bench', '100MB/1.pt')));
    times.plainGet.push(await plainGetSeconds());
    process.stderr.write(`bench: round ${round + 1}/${ROUNDS}\n`);
  }
  torch.stdin.end();
  s3.kill();

  // Peak memory of split on a file ten times its partition size.
  process.stderr.write('bench: split of a 1 GiB file into 100 MiB partitions …\n');
  await synthesizeDataset({
    samples: rowsPerPartition(1024 * MiB, true),
    maxBytes: 1024 * MiB,
    seed: 12,
    sink: sinkFor({ kind: 'file', path: join(work, 'big') }),
  });
  const { stderr: splitStderr } = await run(process.execPath, [
    '--require',
    join(ROOT, 'dist', 'bench', 'max-rss.js'),
    join(ROOT, 'dist', 'cli', 'cai.js'),
    'split',
    join(work, 'big', '1.pt'),
    '--size',
    '100MB',
    '--out',
    join(work, 'split'),
  ]);
  const splitPeakMb = Number(/max-rss-kb (\d+)/.exec(splitStderr)![1]) / 1024;
  rmSync(work, { recursive: true, force: true });

  const mbps = (seconds: number) => partitionBytes / MiB / seconds;
  const result = {
    partition_mib: 100,
    rounds: ROUNDS,
    cai_disk_mib_per_s: Math.round(mbps(median(times.caiDisk))),
    cai_s3_mib_per_s: Math.round(mbps(median(times.caiS3))),
    s3_plain_get_mib_per_s: Math.round(mbps(median(times.plainGet))),
    torch_load_disk_mib_per_s: Math.round(mbps(median(times.torchDisk))),
    ratio_disk: Number((median(times.torchDisk) / median(times.caiDisk)).toFixed(2)),
    // Best-of ratio too: torch.load's time swings with how malloc reuses its last 100 MB.
    ratio_disk_best: Number((Math.min(...times.torchDisk) / Math.min(...times.caiDisk)).toFixed(2)),
    ratio_s3_vs_torch_disk: Number((median(times.torchDisk) / median(times.caiS3)).toFixed(2)),
    split_1gib_peak_rss_mib: Math.round(splitPeakMb),
  };
  const row = (name: string, xs: number[]) =>
    `${name.padEnd(36)} ${(median(xs) * 1000).toFixed(1).padStart(8)} ms  ${mbps(median(xs)).toFixed(0).padStart(6)} MiB/s`;
  process.stdout.write(
    [
      `decode of one 100 MiB partition (${samples} objects), median of ${ROUNDS} alternating rounds`,
      row('CAI, local disk', times.caiDisk),
      row('CAI, embedded S3 (ranged)', times.caiS3),
      row('torch.load, local disk', times.torchDisk),
      row('plain GET, embedded S3 (no decode)', times.plainGet),
      `CAI/torch.load speed, disk: ${result.ratio_disk}× (medians), ${result.ratio_disk_best}× (best of each);  ` +
        `S3 vs torch.load from disk: ${result.ratio_s3_vs_torch_disk}×`,
      `cai split, 1 GiB → 100 MiB partitions: peak RSS ${result.split_1gib_peak_rss_mib} MiB`,
      JSON.stringify(result),
    ].join('\n') + '\n',
  );
}

main().catch((error: Error) => {
  process.stderr.write(`bench: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
