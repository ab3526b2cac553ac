import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Accuracy } from '../../functions/commons/model/accuracy';
import { cai } from '../helpers/cli';
import { ROOT } from '../../local/paths';
import { tempFolder } from '../helpers/temp';

const work = tempFolder('cai-default-');
const provenance = JSON.parse(readFileSync(join(ROOT, 'model', 'default.json'), 'utf8'));

test('the quick-start model is small and says where it came from', () => {
  expect(statSync(join(ROOT, 'model', 'default.onnx')).size).toBeLessThanOrEqual(10 * 2 ** 20);
  expect(provenance.training.data).toMatch(/^cai synth --samples \d+ --seed \d+$/);
  expect(provenance.held_out.samples).toBeGreaterThan(0);
  expect(Number.isFinite(provenance.held_out.mae)).toBe(true);
});

test('its predictions mean something on galaxies it never saw', async () => {
  // A seed used neither for training (101) nor for the recorded held-out set (202).
  expect((await cai(['synth', '--samples', '1500', '--size', '1GB', '--out', work, '--seed', '404'])).status).toBe(0);
  const run = await cai(['predict', join(work, '1.pt'), '--out', join(work, 'p.csv'), '--json']);
  expect(run.status).toBe(0);
  const { accuracy } = run.json<{ accuracy: Accuracy }>();
  expect(accuracy.samples).toBe(1500);
  expect(accuracy.r2).toBeGreaterThan(0.6);
  expect(accuracy.outlierFraction).toBeLessThan(0.02);
  // And the provenance's numbers are what the model does, give or take the sample.
  expect(Math.abs(accuracy.mae - provenance.held_out.mae)).toBeLessThan(0.01);
});
