/**
 * Survey-formats benchmark (`npm run bench:formats`): one set of galaxies (BENCH_PARTITION_MIB, default
 * 100 MiB, the default model's tensors) written in each format CAI reads by its reference library,
 * then decoded by CAI as the inference Lambda walks a partition (openPartition + partitionChunks, with
 * the card that feeds the default model) from local disk, alternating in the same run with the Python
 * reader of the format reading the same arrays into float32 numpy arrays. Also: the default model's
 * inference time over those objects (to put decode in a rank's time), and the bytes each format reads
 * for a row range against that range's share of the file. Prints tables, then one JSON object as the last line.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileSource, type ByteSource } from '../functions/commons/tensors/byte-source';
import { numelOf } from '../functions/commons/tensors/tensor-file';
import { openPartition, type RowRange } from '../functions/commons/partitions/partition';
import { partitionChunks, rowsPerChunk } from '../functions/commons/partitions/chunks';
import { cardFeeds, parseCard, type ModelCard } from '../functions/commons/model/card';
import { loadModel, runPartition } from '../functions/commons/model/session';
import { WORKER_BATCH_SIZE } from '../functions/commons/model/lambda-sizing';
import { sinkFor } from '../toolkit/locations';
import { rowsPerPartition } from '../toolkit/datasets/partition-writer';
import { synthesizeDataset } from '../toolkit/datasets/synth';
import { JsonWorker, PYTHON, median, run, say } from './harness';
import { ROOT } from '../local/paths';

const MiB = 2 ** 20;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PARTITION_MIB = Number(process.env.BENCH_PARTITION_MIB ?? 100);
const MODEL = join(ROOT, 'model', 'default.onnx');
/** The cost per object against the .pt path's that the issue sets as the target. */
const COST_TARGET = 1.5;
/** The share of a rank's time decode may take with the default model. */
const SHARE_TARGET = 0.1;

interface Variant {
  name: string;
  format: string;
  file: string;
  card: ModelCard;
}

interface Decode {
  seconds: number;
  rows: number;
  /** Bytes of the arrays as the model gets them (float32), every feed. */
  decodedBytes: number;
  /** Bytes read from the file, metadata included. */
  readBytes: number;
  checksum: number;
}

/** A source that adds up the bytes asked of it. */
function counting(source: ByteSource, count: { bytes: number }): ByteSource {
  return {
    name: source.name,
    size: source.size,
    read(offset, length, into) {
      count.bytes += length;
      return source.read(offset, length, into);
    },
    close: () => source.close(),
  };
}

/** The batch the inference function runs the model in when the card names none. */
const batchOf = (card: ModelCard) => card.batchSize ?? WORKER_BATCH_SIZE;

/**
 * A partition of the variant decoded as a rank does: opened with the card's feeds, walked in chunks.
 * The checksum adds each feed's last value as Python's reader does, so that both decoded the same rows.
 */
async function caiDecode(variant: Variant, rows?: RowRange): Promise<Decode> {
  const count = { bytes: 0 };
  const start = process.hrtime.bigint();
  const source = await fileSource(variant.file);
  // openPartition leaves the source open when no reader takes the file (a format not merged yet).
  const partition = await openPartition(counting(source, count), cardFeeds(variant.card), rows).catch(async (error: unknown) => {
    await source.close();
    throw error;
  });
  const last: Record<string, number> = {};
  try {
    for await (const chunk of partitionChunks(partition, { rowsPerChunk: rowsPerChunk(partition, batchOf(variant.card)) })) {
      for (const [name, data] of Object.entries(chunk.tensors)) last[name] = Number(data[data.length - 1]);
    }
  } finally {
    await partition.close();
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const decodedBytes = Object.values(partition.feeds).reduce((sum, f) => sum + partition.samples * numelOf(f.rowShape) * 4, 0);
  const checksum = 0 + last.image + last.magnitude + last['label:redshift'];
  return { seconds, rows: partition.samples, decodedBytes, readBytes: count.bytes, checksum };
}

/** One format's line of the result; the CAI figures are absent when CAI refused the file. */
interface FormatResult {
  name: string;
  format: string;
  disk_mib: number;
  python_objects_per_s: number;
  cai_refused?: string;
  cai_objects_per_s?: number;
  /** Decoded: float32 arrays as the model gets them, every feed. */
  cai_decoded_mib_per_s?: number;
  cai_disk_mib_per_s?: number;
  /** Python's time ÷ CAI's: above 1, CAI is faster. */
  cai_vs_python?: number;
  cost_vs_pt?: number;
  /** The same of the best round of each: the machine's other work weighs less on it. */
  cost_vs_pt_best?: number;
  decode_share?: number;
  whole_read_ratio?: number;
  range_read_ratio?: number;
}

interface PythonRead {
  seconds: number;
  checksum: number;
  rows: number;
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'cai-bench-formats-'));
  const load = [loadavg()[0]];
  try {
    const samples = rowsPerPartition(PARTITION_MIB * MiB, true);
    say(`writing ${samples} galaxies (${PARTITION_MIB} MiB as .pt) with cai synth …`);
    await synthesizeDataset({
      samples,
      maxBytes: PARTITION_MIB * MiB,
      seed: 11,
      sink: sinkFor({ kind: 'file', path: join(work, 'synth') }),
    });
    const pt = join(work, 'synth', '1.pt');
    const defaultCard = parseCard(readFileSync(join(ROOT, 'model', 'default.card.json'), 'utf8'), 'model/default.card.json');
    say('writing the same galaxies in each format (torch.save, h5py, astropy, pyarrow, numpy) …');
    const script = join(ROOT, 'bench', 'format_readers.py');
    const written = JSON.parse((await run(PYTHON, [script, 'write', pt, join(work, 'formats')])).stdout.trim().split('\n').pop()!) as {
      variants: (Omit<Variant, 'card'> & { card: unknown })[];
    };
    const variants: Variant[] = [
      { name: 'pt, cai synth', format: 'torch', file: pt, card: defaultCard },
      ...written.variants.map((v) => ({ ...v, card: parseCard(JSON.stringify(v.card), `${v.name}'s card`) })),
    ];
    const baseline = variants[0];
    const sizes = new Map(
      await Promise.all(
        variants.map(async (v) => {
          const source = await fileSource(v.file);
          await source.close();
          return [v.name, source.size] as const;
        }),
      ),
    );

    const python = new JsonWorker(PYTHON, [script, 'serve']);
    await python.ready();
    const cai = new Map<string, Decode[]>(variants.map((v) => [v.name, []]));
    const py = new Map<string, PythonRead[]>(variants.map((v) => [v.name, []]));
    /** Why CAI did not decode a variant (a reader not merged yet), by name. */
    const refused = new Map<string, string>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const variant of variants) {
        if (!refused.has(variant.name)) {
          try {
            cai.get(variant.name)!.push(await caiDecode(variant));
          } catch (error) {
            refused.set(variant.name, (error as Error).message.replaceAll(variant.file, variant.file.slice(work.length + 1)));
          }
        }
        py.get(variant.name)!.push(await python.request<PythonRead>({ name: variant.name, file: variant.file }));
      }
      say(`round ${round + 1}/${ROUNDS}`);
    }
    python.close();
    for (const variant of variants) {
      const [c, p] = [cai.get(variant.name)![0], py.get(variant.name)![0]];
      if (c && (c.rows !== p.rows || Math.abs(c.checksum - p.checksum) > 1e-6 * Math.max(1, Math.abs(p.checksum)))) {
        throw new Error(
          `${variant.name}: CAI and Python decoded different values (rows ${c.rows}/${p.rows}, checksum ${c.checksum}/${p.checksum})`,
        );
      }
    }

    say(`row ranges: the middle quarter of each file …`);
    const middle: RowRange = { start: Math.floor((samples * 3) / 8), end: Math.floor((samples * 5) / 8) };
    const rangeRead = new Map<string, number>();
    for (const variant of variants) {
      if (refused.has(variant.name)) continue;
      const { readBytes, rows } = await caiDecode(variant, middle);
      rangeRead.set(variant.name, readBytes / ((sizes.get(variant.name)! * rows) / samples));
    }

    say(`inference: the default model over the ${samples} galaxies, one thread …`);
    const model = await loadModel(MODEL, { intraOpThreads: 1 });
    const partition = await openPartition(await fileSource(pt), cardFeeds(defaultCard));
    let inferenceSeconds: number;
    try {
      inferenceSeconds = (await runPartition(model, defaultCard, partition, batchOf(defaultCard))).inferenceSeconds;
    } finally {
      await partition.close();
      await model.release();
    }
    load.push(loadavg()[0]);

    const medianOf = <T>(xs: T[], pick: (x: T) => number) => median(xs.map(pick));
    const ptSeconds = medianOf(cai.get(baseline.name)!, (d) => d.seconds);
    const bestOf = (decodes: Decode[]) => Math.min(...decodes.map((d) => d.seconds));
    const formats = variants.map((v): FormatResult => {
      const decodes = cai.get(v.name)!;
      const pySeconds = medianOf(py.get(v.name)!, (r) => r.seconds);
      const base = {
        name: v.name,
        format: v.format,
        disk_mib: Number((sizes.get(v.name)! / MiB).toFixed(1)),
        python_objects_per_s: Math.round(samples / pySeconds),
      };
      if (!decodes.length) return { ...base, cai_refused: refused.get(v.name) };
      const seconds = medianOf(decodes, (d) => d.seconds);
      return {
        ...base,
        cai_objects_per_s: Math.round(samples / seconds),
        cai_decoded_mib_per_s: Math.round(decodes[0].decodedBytes / MiB / seconds),
        cai_disk_mib_per_s: Math.round(sizes.get(v.name)! / MiB / seconds),
        cai_vs_python: Number((pySeconds / seconds).toFixed(2)),
        cost_vs_pt: Number((seconds / ptSeconds).toFixed(2)),
        cost_vs_pt_best: Number((bestOf(decodes) / bestOf(cai.get(baseline.name)!)).toFixed(2)),
        decode_share: Number((seconds / (seconds + inferenceSeconds)).toFixed(3)),
        whole_read_ratio: Number((decodes[0].readBytes / sizes.get(v.name)!).toFixed(3)),
        range_read_ratio: Number(rangeRead.get(v.name)!.toFixed(2)),
      };
    });
    const result = {
      partition_mib: PARTITION_MIB,
      objects: samples,
      rounds: ROUNDS,
      node: process.version,
      baseline: baseline.name,
      inference_s: Number(inferenceSeconds.toFixed(2)),
      inference_objects_per_s: Math.round(samples / inferenceSeconds),
      load_average: load.map((l) => Number(l.toFixed(1))),
      formats,
      misses: formats.flatMap((f) =>
        f.cost_vs_pt === undefined || f.decode_share === undefined
          ? [`${f.name}: not decoded by CAI`]
          : [
              ...(f.cost_vs_pt > COST_TARGET ? [`${f.name}: cost ${f.cost_vs_pt}× the .pt path's`] : []),
              ...(f.decode_share > SHARE_TARGET ? [`${f.name}: decode ${(f.decode_share * 100).toFixed(1)} % of a rank`] : []),
            ],
      ),
    };

    const cell = (value: number | string | undefined, width: number) => String(value ?? '—').padStart(width);
    const lines = [
      `${samples} galaxies (${PARTITION_MIB} MiB as .pt) per format, decoded from local disk: median of ${ROUNDS} alternating rounds;`,
      `inference by the default model, 1 thread: ${result.inference_s} s (${result.inference_objects_per_s} objects/s); load average ${result.load_average.join(' → ')}`,
      [
        'format'.padEnd(36),
        cell('MiB disk', 8),
        cell('CAI obj/s', 10),
        cell('MiB/s out', 9),
        cell('MiB/s disk', 10),
        cell('Py obj/s', 9),
        cell('CAI/Py', 7),
        cell('cost/.pt', 8),
        cell('best', 5),
        cell('rank %', 7),
        cell('range read', 10),
      ].join(' '),
      ...formats.map((f) =>
        [
          f.name.padEnd(36),
          cell(f.disk_mib.toFixed(1), 8),
          cell(f.cai_objects_per_s, 10),
          cell(f.cai_decoded_mib_per_s, 9),
          cell(f.cai_disk_mib_per_s, 10),
          cell(f.python_objects_per_s, 9),
          cell(f.cai_vs_python?.toFixed(2), 7),
          cell(f.cost_vs_pt?.toFixed(2), 8),
          cell(f.cost_vs_pt_best?.toFixed(2), 5),
          cell(f.decode_share === undefined ? undefined : (f.decode_share * 100).toFixed(1), 7),
          cell(f.range_read_ratio?.toFixed(2), 10),
        ].join(' '),
      ),
      `cost/.pt: CAI's decode time per object ÷ the .pt path's (target ≤ ${COST_TARGET}; best: of the best rounds); rank %: decode ÷ (decode + inference) (target ≤ ${SHARE_TARGET * 100});`,
      `range read: bytes read for rows ${middle.start}..${middle.end} ÷ (file size × their share of the rows)`,
      ...formats.flatMap((f) => (f.cai_refused ? [`${f.name}: CAI refused it: ${f.cai_refused}`] : [])),
      ...(result.misses.length ? [`misses: ${result.misses.join('; ')}`] : ['every format within both targets']),
      JSON.stringify(result),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: Error) => {
  process.stderr.write(`bench: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
