import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../local/paths';
import { caiStart } from '../helpers/cli';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';

/**
 * A survey kept as the Multimodal Universe keeps one (h5py-written HDF5 shards under healpix=<n>/
 * folders), run as it is with `npm start -- --partitions`: every shard listed in natural order, the
 * large one as row ranges, a truncated one a failed partition in one line, and the predictions named
 * by file and row in the file.
 */
const work = tempFolder('cai-survey-run-');
const data = join(work, 'survey');
const LARGE = 600;
let shards: Record<string, number>;

beforeAll(() => {
  shards = JSON.parse(runPython(pythonScript('write_survey_shards.py'), [data, String(LARGE)]));
  copyFileSync(join(ROOT, 'model', 'default.onnx'), join(work, 'survey.onnx'));
  writeFileSync(
    join(work, 'survey.card.json'),
    JSON.stringify({
      name: 'astromae-on-healpix-shards',
      inputs: {
        image: { tensor: 'images', dtype: 'float32', channelsLast: true, scale: 1 / 255 },
        magnitude: { tensor: 'catalog/mag', dtype: 'float32' },
      },
      outputs: { redshift: { task: 'regression', label: 'catalog/redshift' } },
    }),
  );
  writeFileSync(
    join(work, 'payload.json'),
    JSON.stringify({
      bucket: 'cai-control',
      data_bucket: 'cai-data',
      data_prefix: 'mmu',
      result_path: 'results/mmu',
      batch_size: 32,
      model: 's3://cai-control/models/survey.onnx',
    }),
  );
});

test('HDF5 shards in healpix folders run in place: the large shard as row ranges, the truncated one a failure', async () => {
  const run = await caiStart(join(work, '.cai'), [
    '--partitions',
    data,
    '--payload',
    join(work, 'payload.json'),
    '--run-model',
    join(work, 'survey.onnx'),
    '--parameter-overrides',
    'RowRangeSize=1',
  ]);
  const total = Object.values(shards).reduce((a, b) => a + b, 0);
  // The large shard (3 MB) as ranges of about 1 MB, whole 16-row chunks each: 192, 192, 192, 24 rows.
  expect(run.last).toMatchObject({ status: 'PARTIAL', partitions: 8, samples: total, predictions: total });
  const outputs = run.last.outputs as string;
  const summary = JSON.parse(readFileSync(join(outputs, 'summary.json'), 'utf8'));
  expect(summary.failures).toEqual([
    {
      partition: 'mmu/healpix=3/001-of-001.hdf5',
      rank: expect.any(Number),
      error: expect.stringMatching(
        /^s3:\/\/cai-data\/mmu\/healpix=3\/001-of-001\.hdf5: object header at \d+ lies beyond the end of the file \(\d+ bytes\)$/,
      ),
    },
  ]);
  // Every object of every shard predicted once, named by its shard and its row there.
  const rows = readdirSync(join(outputs, 'predictions'))
    .flatMap((file) =>
      readFileSync(join(outputs, 'predictions', file), 'utf8')
        .trim()
        .split('\n')
        .slice(1),
    )
    .map((line) => line.split(',').slice(0, 2).join('#'));
  expect(new Set(rows).size).toBe(total);
  for (const [shard, count] of Object.entries(shards)) {
    for (const row of [0, count - 1]) expect(rows).toContain(`mmu/${shard}#${row}`);
  }
  const manifest = JSON.parse(readFileSync(join(outputs, 'manifest.json'), 'utf8')) as { partitions: { key: string; rows?: object }[] }[];
  const planned = manifest.flatMap((item) => item.partitions);
  expect(planned.filter((p) => p.key === 'mmu/healpix=1/001-of-002.hdf5').map((p) => p.rows)).toEqual([
    { start: 0, end: 192 },
    { start: 192, end: 384 },
    { start: 384, end: 576 },
    { start: 576, end: 600 },
  ]);
  // Natural order of the whole key: healpix=1, 2, 3 before 10.
  expect([...new Set(planned.map((p) => p.key))]).toEqual(
    ['healpix=1/001-of-002', 'healpix=1/002-of-002', 'healpix=2/001-of-001', 'healpix=3/001-of-001', 'healpix=10/001-of-001'].map(
      (shard) => `mmu/${shard}.hdf5`,
    ),
  );
  expect(run.stdout).toContain(`accuracy over ${total} labelled objects`);
  expect(run.stdout).toMatch(
    /\n {4}mmu\/healpix=3\/001-of-001\.hdf5 \(rank \d\): s3:\/\/cai-data\/mmu\/healpix=3\/001-of-001\.hdf5: object header at/,
  );
});
