import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../functions/commons/model/session';
import { lowbias32 } from '../../toolkit/datasets/synth';
import { cai } from '../helpers/cli';
import { exporter, pythonScript, runPython, runPythonStatus } from '../helpers/python';
import { ROOT } from '../../local/paths';
import { tempFolder } from '../helpers/temp';

const FIXTURE = join(ROOT, 'tests', 'fixtures', 'astromae-parity.json'); // a copy of shared/fixtures/
const fixture = JSON.parse(readFileSync(FIXTURE, 'utf8'));
const expected: number[] = fixture.expected_output.map((row: number[]) => row[0]);
const work = tempFolder('cai-model-');
const TOLERANCE = 1e-4;
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  return Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));
};

/** The fixture's input rule, computed here as the fixture spells it. */
function ruleInputs(batch: number) {
  const u = (seed: number, i: number) => lowbias32((seed + i) >>> 0) / 2 ** 32;
  return {
    images: Float32Array.from({ length: batch * 5 * 32 * 32 }, (_, i) => 3 * (2 * u(1, i) - 1)),
    magnitudes: Float32Array.from({ length: batch * 5 }, (_, i) => 18 + 2 * (2 * u(2, i) - 1)),
  };
}

describe('the full-size AstroMAE reproduces the reference', () => {
  let pytorch: {
    state_dict: { name: string; shape: number[]; dtype: string }[];
    parameter_count: number;
    output: number[][];
    control_output: number[][];
  };

  beforeAll(() => {
    pytorch = JSON.parse(runPython(pythonScript('model_parity.py'), [FIXTURE]));
  });

  test('same state_dict names, shapes and parameter count as the reference', () => {
    expect(pytorch.state_dict).toEqual(fixture.state_dict);
    expect(pytorch.parameter_count).toBe(fixture.parameter_count);
  });

  test('PyTorch with the fixture weights gives the expected output within 1e-4', () => {
    expect(
      maxAbsDiff(
        pytorch.output.map((r) => r[0]),
        expected,
      ),
    ).toBeLessThan(TOLERANCE);
    // The tolerance means something: one qkv weight scaled by 1.01 is far outside it.
    expect(
      maxAbsDiff(
        pytorch.control_output.map((r) => r[0]),
        expected,
      ),
    ).toBeGreaterThan(10 * TOLERANCE);
  });

  test('the ONNX export, run by onnxruntime-node, gives the same output within 1e-4', async () => {
    const out = join(work, 'full.onnx');
    const report = JSON.parse(runPython(exporter, ['--fixture-weights', 'full', '--out', out]).trim().split('\n').pop()!);
    expect(report).toMatchObject({ parameters: 15764649 });
    expect(report.max_abs_diff).toBeLessThan(TOLERANCE);
    const model = await loadModel(out);
    const { images, magnitudes } = ruleInputs(4);
    const { redshift: predicted } = await model.run(
      { image: { data: images, dims: [4, 5, 32, 32] }, magnitude: { data: magnitudes, dims: [4, 5] } },
      4,
    );
    await model.release();
    expect(maxAbsDiff(predicted, expected)).toBeLessThan(TOLERANCE);
    expect(
      maxAbsDiff(
        predicted,
        pytorch.output.map((r) => r[0]),
      ),
    ).toBeLessThan(TOLERANCE);
  });
});

describe('checkpoints in every published form export to the same model', () => {
  const dir = join(work, 'checkpoints');
  beforeAll(() => runPython(pythonScript('make_checkpoints.py'), [dir]));

  const csvPredictions = (file: string) =>
    readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => Number(line.split(',')[2]));

  test.each(['state.pt', 'dp_state.pt', 'state.safetensors', 'dp_model.pt'])('%s', async (checkpoint) => {
    const onnx = join(work, `${checkpoint}.onnx`);
    const run = runPythonStatus(exporter, ['--checkpoint', join(dir, checkpoint), '--out', onnx, '--heads', '2']);
    expect(run.stderr).toMatch(/exported 906,249 parameters/);
    expect(run.status).toBe(0);
    const csv = join(work, `${checkpoint}.csv`);
    const predicted = await cai(['predict', '--model', onnx, join(dir, 'inputs.pt'), '--out', csv]);
    expect(predicted.status).toBe(0);
    expect(predicted.stdout).toMatch(/accuracy over 9 labelled objects/);
    const pytorch: number[] = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')).predictions;
    expect(maxAbsDiff(csvPredictions(csv), pytorch)).toBeLessThan(TOLERANCE);
    expect(readFileSync(csv, 'utf8').split('\n')[0]).toBe('partition,row,redshift_pred,redshift_true');
  });

  test('a float16 safetensors file that says it takes scaled inputs exports with the scaling', async () => {
    const onnx = join(work, 'scaled.onnx');
    const run = runPythonStatus(exporter, ['--checkpoint', join(dir, 'scaled.safetensors'), '--out', onnx, '--heads', '2']);
    expect(run.status).toBe(0);
    const csv = join(work, 'scaled.csv');
    expect((await cai(['predict', '--model', onnx, join(dir, 'inputs.pt'), '--out', csv])).status).toBe(0);
    const { predictions, scaled_predictions: scaled } = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
    expect(maxAbsDiff(csvPredictions(csv), scaled)).toBeLessThan(TOLERANCE);
    expect(maxAbsDiff(scaled, predictions)).toBeGreaterThan(0.01); // the scaling matters to the output
  });

  test('a pickle that runs a shell command is refused, and nothing runs', () => {
    const run = runPythonStatus(exporter, ['--checkpoint', join(dir, 'hostile_model.pt'), '--out', join(work, 'x.onnx')]);
    expect(run.status).toBe(1);
    expect(run.stderr.trim()).toMatch(/^model:export: refused pickle global posix\.system/);
    expect(existsSync(join(dir, 'PWNED'))).toBe(false);
    expect(existsSync(join(work, 'x.onnx'))).toBe(false);
  });

  test('a checkpoint that does not fit names the first mismatched entry', () => {
    const run = runPythonStatus(exporter, ['--checkpoint', join(dir, 'mismatched.pt'), '--out', join(work, 'y.onnx')]);
    expect(run.status).toBe(1);
    expect(run.stderr.trim()).toBe(
      `model:export: ${join(dir, 'mismatched.pt')}: does not fit AstroMAE: blocks.1.attn.qkv.weight has shape [3, 3], expected [192, 64]`,
    );
  });
});
