import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileSource } from '../../functions/commons/tensors/byte-source';
import { cardFeeds, parseCard, partitionMisfit, type ModelCard } from '../../functions/commons/model/card';
import { openPartition, type RowRange } from '../../functions/commons/partitions/partition';
import { loadModel, runPartition, type OnnxModel } from '../../functions/commons/model/session';
import { readOnnxSignature } from '../../functions/commons/model/onnx-signature';
import { ROOT } from '../../local/paths';
import { lambdaRuntimePaths } from '../../local/lambda-runtime';
import { cai } from '../helpers/cli';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';

/**
 * Survey files as the reference libraries write them (h5py, astropy, pyarrow, numpy), read through the
 * partition layer with the card that feeds each to the default model: its predictions equal
 * onnxruntime's in Python on the same values, over the whole file and over a range of its rows.
 */
const MODEL = join(ROOT, 'model', 'default.onnx');
const SAMPLES = 48;
const work = tempFolder('cai-formats-');

interface Written {
  file: string;
  card: unknown;
  predictions: number[];
}
let written: Record<string, Written>;
let model: OnnxModel;

beforeAll(async () => {
  written = JSON.parse(runPython(pythonScript('format_parity.py'), [work, MODEL, String(SAMPLES)]));
  model = await loadModel(MODEL, { intraOpThreads: 1 });
});
afterAll(() => model?.release());

async function predict(file: string, card: ModelCard, rows?: RowRange): Promise<Float32Array> {
  const partition = await openPartition(await fileSource(file), cardFeeds(card), rows);
  try {
    const signature = await readOnnxSignature(await fileSource(MODEL));
    expect(partitionMisfit(card, signature, partition.feeds)).toBeUndefined();
    return (await runPartition(model, card, partition, 16)).outputs.redshift.values;
  } finally {
    await partition.close();
  }
}

const FORMATS = ['hdf5', 'fits', 'parquet', 'numpy'];

test.each(FORMATS)('%s: the predictions equal onnxruntime-in-Python on the same file, whole and by a range of rows', async (format) => {
  const { file, card: cardJson, predictions } = written[format];
  const card = parseCard(JSON.stringify(cardJson), `${format} card`);
  const whole = await predict(file, card);
  expect(whole).toHaveLength(SAMPLES);
  for (let i = 0; i < SAMPLES; i++) expect(Math.abs(whole[i] - predictions[i])).toBeLessThan(1e-5);
  const range = await predict(file, card, { start: 13, end: 37 });
  expect(Array.from(range)).toEqual(Array.from(whole.subarray(13, 37)));
});

test('the checks can fail: without its declared transform, a channel-last uint8 file does not fit the model, or predicts otherwise', async () => {
  const { file, card: cardJson, predictions } = written.hdf5;
  const plain = JSON.parse(JSON.stringify(cardJson));
  delete plain.inputs.image.channelsLast;
  const card = parseCard(JSON.stringify(plain), 'no channelsLast');
  const partition = await openPartition(await fileSource(file), cardFeeds(card));
  const signature = await readOnnxSignature(await fileSource(MODEL));
  expect(partitionMisfit(card, signature, partition.feeds)).toMatch(/is \[N, 32, 32, 5\] per object, the graph wants \[batch, 5, 32, 32\]/);
  await partition.close();
  // Unscaled, it fits but predicts otherwise.
  const unscaled = JSON.parse(JSON.stringify(cardJson));
  delete unscaled.inputs.image.scale;
  const values = await predict(file, parseCard(JSON.stringify(unscaled), 'no scale'));
  expect(values.some((v, i) => Math.abs(v - predictions[i]) > 1e-3)).toBe(true);
});

test('a card naming what the file lacks is one line naming what it does have', async () => {
  const card = parseCard(
    JSON.stringify({
      inputs: { image: { tensor: 'cutouts', dtype: 'float32' }, magnitude: { tensor: 'catalog/mag', dtype: 'float32' } },
      outputs: { redshift: { task: 'regression' } },
    }),
    'wrong card',
  );
  await expect(openPartition(await fileSource(written.numpy.file), cardFeeds(card))).rejects.toThrow(
    /survey\.npz: image: no array "cutouts": it holds arrays images uint8\[48, 32, 32, 5\], mag float64\[48, 5\], redshift float64\[48\]$/,
  );
});

test('cai synth --format writes survey files the reference libraries read as the same galaxies', async () => {
  for (const format of ['hdf5', 'fits', 'parquet', 'npz']) {
    const run = await cai(['synth', '--format', format, '--samples', '40', '--seed', '5', '--out', join(work, 'synth')]);
    expect(run.status).toBe(0);
  }
  const check = runPython(pythonScript('check_survey_files.py'), [join(work, 'synth')]);
  expect(JSON.parse(check)).toEqual({ hdf5: true, fits: true, parquet: true, samples: 40 });
  const bad = await cai(['synth', '--format', 'tiff', '--samples', '4', '--out', join(work, 'synth')]);
  expect(bad.status).toBe(2);
  expect(bad.stderr.trim()).toBe('cai: --format "tiff" is not one of pt, hdf5, fits, parquet, npz');
});

test('cai predict runs over a row range of any format, naming the objects by their rows in the file', async () => {
  const { file, card, predictions } = written.hdf5;
  const cardFile = join(work, 'hdf5.card.json');
  writeFileSync(cardFile, JSON.stringify(card));
  const out = join(work, 'predict.csv');
  const run = await cai(['predict', file, '--model', MODEL, '--card', cardFile, '--rows', '10:20', '--out', out]);
  expect(run.status).toBe(0);
  const lines = readFileSync(out, 'utf8').trim().split('\n');
  expect(lines[0]).toBe('partition,row,redshift_pred,redshift_true');
  expect(lines.slice(1).map((line) => Number(line.split(',')[1]))).toEqual(Array.from({ length: 10 }, (_, i) => 10 + i));
  for (const line of lines.slice(1)) {
    const [, row, predicted] = line.split(',');
    expect(Math.abs(Number(predicted) - predictions[Number(row)])).toBeLessThan(1e-5);
  }
  const beyond = await cai(['predict', file, '--model', MODEL, '--card', cardFile, '--rows', '40:60', '--out', out]);
  expect(beyond.status).toBe(1);
  expect(beyond.stderr.trim()).toMatch(/^cai: .*survey\.h5: rows 40\.\.60 are not within its 48 rows$/);
  const malformed = await cai(['predict', file, '--model', MODEL, '--card', cardFile, '--rows', '20:10', '--out', out]);
  expect(malformed.stderr.trim()).toBe('cai: --rows "20:10" is not start:end with start < end (e.g. 1000:2000)');
});

test("under the Lambda runtime's Node 22, a zstd Parquet file decodes (by Node's own zstd) to what Node 20 decodes", async () => {
  const node22 = lambdaRuntimePaths().node;
  // The native path is taken only where Node has it: the Lambda runtime's does.
  expect(execFileSync(node22, ['-p', "typeof require('node:zlib').zstdDecompressSync"], { encoding: 'utf8' }).trim()).toBe('function');
  const cli = join(ROOT, 'dist', 'cli', 'cai.js');
  const inspect = (node: string) => JSON.parse(execFileSync(node, [cli, 'inspect', written.parquet.file, '--json'], { encoding: 'utf8' }));
  const under22 = inspect(node22);
  expect(under22.tensors.map((t: { name: string }) => t.name)).toEqual(['images', 'mag', 'redshift']);
  expect(under22).toEqual(inspect(process.execPath));
});
