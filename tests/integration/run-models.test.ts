import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SKETCH_RELATIVE_ERROR, sketchCount } from '../../functions/commons/model/sketch';
import type { RankResult } from '../../functions/commons/run/contracts';
import { ROOT } from '../../local/paths';
import { cai, caiStart } from '../helpers/cli';
import { tempFolder } from '../helpers/temp';

/**
 * A run of each task on the local stack with `model` in the payload, as a user makes it: a dict
 * dataset from `cai synth`, the committed model uploaded beside its card (`--run-model`), the payload
 * uploaded, the run followed to its end. And a model that cannot run on the data, refused before
 * anything starts, in one line.
 */
const work = tempFolder('cai-run-models-');
const state = join(work, '.cai');
const data = join(work, 'dict');

const start = (args: string[]) => caiStart(state, args);

/** A payload running `model` (uploaded to the control bucket's models/) over `prefix`. */
function payload(name: string, prefix: string, model: string): string {
  const file = join(work, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      bucket: 'cai-control',
      data_bucket: 'cai-data',
      data_prefix: prefix,
      result_path: `results/${name}`,
      model: `s3://cai-control/models/${model}`,
    }),
  );
  return file;
}

beforeAll(async () => {
  // 800 galaxies, 4 % of them oddities (32: the run's top 50 can hold them all), in 4 dict partitions.
  const synth = await cai([
    'synth',
    '--samples',
    '800',
    '--size',
    '1MB',
    '--layout',
    'dict',
    '--oddities',
    '0.04',
    '--seed',
    '77',
    '--out',
    data,
  ]);
  expect(synth.status).toBe(0);
});

test('the morphology classifier: a classification run, its metrics on the record and per-class columns in the predictions', async () => {
  const run = await start([
    '--partitions',
    data,
    '--payload',
    payload('morph', 'morph', 'morphology.onnx'),
    '--run-model',
    join(ROOT, 'model', 'morphology.onnx'),
  ]);
  expect(run.stderr).toContain('start: uploaded s3://cai-control/models/morphology.onnx and its card');
  expect(run.status).toBe(0);
  expect(run.last).toMatchObject({ status: 'SUCCEEDED', samples: 800, predictions: 800 });
  expect(run.stdout).toMatch(
    / {2}model {7}s3:\/\/cai-control\/models\/morphology\.onnx \(synth-morphology, version 1; ETag [0-9a-f]{32}\)/,
  );
  expect(run.stdout).toMatch(/logits: accuracy [789]\d\.\d% over 800 labelled objects, log-loss 0\.\d+/);
  const outputs = run.last.outputs as string;
  const csv = readFileSync(join(outputs, 'predictions', readdirSync(join(outputs, 'predictions'))[0]), 'utf8').split('\n');
  expect(csv[0]).toBe('partition,row,logits_class,logits_probability,logits_true');
  expect(csv[1]).toMatch(/^morph\/1\.pt,0,(disk|lenticular|elliptical),0\.\d+,(disk|lenticular|elliptical)$/);
  const summary = JSON.parse(readFileSync(join(outputs, 'summary.json'), 'utf8'));
  expect(summary.statistics.logits.confusion.flat().reduce((a: number, b: number) => a + b)).toBe(800);
  const rank: RankResult = JSON.parse(readFileSync(join(outputs, 'ranks', '0.json'), 'utf8'));
  expect(rank.model).toMatchObject({
    id: expect.stringMatching(/^s3:\/\/cai-control\/models\/morphology\.onnx#[0-9a-f]{32}$/),
    name: 'synth-morphology',
  });
});

test('the anomaly scorer: a score run whose top K holds the injected oddities', async () => {
  const run = await start([
    '--partitions',
    data,
    '--payload',
    payload('odd', 'odd', 'anomaly.onnx'),
    '--run-model',
    join(ROOT, 'model', 'anomaly.onnx'),
  ]);
  expect(run.status).toBe(0);
  expect(run.last).toMatchObject({ status: 'SUCCEEDED', samples: 800 });
  const summary = JSON.parse(readFileSync(join(run.last.outputs as string, 'summary.json'), 'utf8'));
  const { top, positives, sketch } = summary.statistics.score;
  expect(positives).toBeGreaterThan(20);
  const found = top.slice(0, positives).filter((o: { label: number }) => o.label === 1).length;
  expect(found / positives).toBeGreaterThan(0.85);
  expect(run.stdout).toMatch(/score: .*recall/);
  // Every score is in the merged sketch, and the record's largest is the top object's, within the bound.
  expect(sketchCount(sketch)).toBe(800);
  expect(Math.abs(summary.metrics.score.quantiles.max / top[0].score - 1)).toBeLessThanOrEqual(SKETCH_RELATIVE_ERROR);
  expect(run.stdout).toMatch(/score quantiles \(within 0\.5%\): min \S+ {2}p5/);
  expect(readFileSync(join(run.last.outputs as string, 'predictions', '0.csv'), 'utf8').split('\n')[0]).toBe(
    'partition,row,score_score,score_label',
  );
});

test('a model that cannot run on the data is refused before anything starts, in one line naming the tensor', async () => {
  // The morphology model reads tensors by key; the demo's TensorDataset partitions have none.
  const run = await start(['--run-model', join(ROOT, 'model', 'morphology.onnx')]);
  expect(run.status).toBe(1);
  expect(run.last).toMatchObject({ status: 'FAILED', partitions: 0, samples: 0 });
  expect(run.stdout).toMatch(
    / {2}error {7}model s3:\/\/cai-control\/models\/morphology\.onnx cannot run on the run's partitions: .*: image: tensor "images" is named, but the partition holds 3 tensors by position: name it by position\n/,
  );
  expect(run.stdout).not.toMatch(/ranks done|outputs {5}/);
});
