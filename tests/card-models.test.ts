import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { synthesizeDataset } from '../functions/commons/partitions/synth';
import { bufferSource } from '../functions/commons/torch/byte-source';
import { loadTensor, openTorchArchive, type TensorRef } from '../functions/commons/torch/archive';
import { toFloat32 } from '../functions/commons/torch/dtype';
import { ROOT, pythonScript, runPython } from './helpers/python';

interface Card {
  inputs: Record<string, { tensor: number | string; dtype: string }>;
  outputs: Record<string, { task: string; classes?: string[]; scores?: string; label?: number | string }>;
  batchSize?: number;
}

const MODELS = ['default', 'morphology', 'anomaly'];
const model = (name: string, ext: string) => join(ROOT, 'model', `${name}${ext}`);
const cardOf = (name: string): Card => JSON.parse(readFileSync(model(name, '.card.json'), 'utf8'));
const provenanceOf = (name: string) => JSON.parse(readFileSync(model(name, '.json'), 'utf8'));

/** A fresh dict partition (a seed no model was trained or evaluated on), its tensors by key as float32. */
async function freshPartition(samples: number, oddities: number): Promise<Map<string, Float32Array>> {
  const files = new Map<string, Uint8Array>();
  const sink = { describe: (n: string) => n, put: async (n: string, b: Uint8Array) => void files.set(n, b.slice()) };
  await synthesizeDataset({ samples, maxBytes: 2 ** 30, seed: 4242, layout: 'dict', oddities, sink });
  const archive = await openTorchArchive(bufferSource(files.get('1.pt')!, '1.pt'));
  const tensors = new Map<string, Float32Array>();
  for (const [key, ref] of archive.root as Map<string, TensorRef>) {
    const t = await loadTensor(archive, ref);
    tensors.set(key, toFloat32(t.dtype, t.data));
  }
  return tensors;
}

/** Runs a model over the partition as its card says: inputs by tensor key, in batches of its batchSize. */
async function runByCard(name: string, tensors: Map<string, Float32Array>, samples: number): Promise<Record<string, Float32Array>> {
  const card = cardOf(name);
  const session = await ort.InferenceSession.create(model(name, '.onnx'));
  try {
    expect([...session.inputNames].sort()).toEqual(Object.keys(card.inputs).sort());
    for (const output of Object.keys(card.outputs)) expect(session.outputNames).toContain(output);
    const batch = card.batchSize ?? 256;
    const parts: Record<string, Float32Array[]> = {};
    for (let start = 0; start < samples; start += batch) {
      const count = Math.min(batch, samples - start);
      const feeds: Record<string, ort.Tensor> = {};
      for (const [input, { tensor }] of Object.entries(card.inputs)) {
        const all = tensors.get(String(tensor))!;
        const width = all.length / samples;
        const shape = input === 'image' ? [count, 5, 32, 32] : [count, width];
        feeds[input] = new ort.Tensor('float32', all.subarray(start * width, (start + count) * width), shape);
      }
      const result = await session.run(feeds);
      for (const output of Object.keys(card.outputs)) (parts[output] ??= []).push(result[output].data as Float32Array);
    }
    return Object.fromEntries(
      Object.entries(parts).map(([k, chunks]) => {
        const out = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
        chunks.reduce((at, c) => (out.set(c, at), at + c.length), 0);
        return [k, out];
      }),
    );
  } finally {
    await session.release();
  }
}

test('every committed model carries its card, which matches its graph and the card file beside it', () => {
  const report = JSON.parse(
    runPython(
      pythonScript('model_cards.py'),
      MODELS.map((m) => model(m, '.onnx')),
    ),
  );
  for (const name of MODELS) expect(report[`${name}.onnx`]).toEqual({ card: cardOf(name), sameAsFile: true });
  expect(cardOf('morphology').outputs.logits).toMatchObject({ task: 'classification', classes: ['disk', 'lenticular', 'elliptical'] });
  expect(cardOf('anomaly').outputs.score).toMatchObject({ task: 'score', label: 'anomaly' });
});

describe('run as their cards say, on galaxies they never saw', () => {
  const samples = 2000;
  let tensors: Map<string, Float32Array>;
  beforeAll(async () => {
    tensors = await freshPartition(samples, 0.02);
  });

  test('the morphology classifier is about as accurate as its provenance says', async () => {
    const { logits } = await runByCard('morphology', tensors, samples);
    expect(logits).toHaveLength(samples * 3);
    const truth = tensors.get('morphology')!;
    let right = 0;
    for (let i = 0; i < samples; i++) {
      const row = logits.subarray(i * 3, i * 3 + 3);
      if (row.indexOf(Math.max(...row)) === truth[i]) right++;
    }
    const recorded = provenanceOf('morphology').held_out.accuracy;
    expect(recorded).toBeGreaterThan(0.75);
    expect(Math.abs(right / samples - recorded)).toBeLessThan(0.04);
    // Control: the same predictions against labels shifted by one object agree no better than chance.
    let shifted = 0;
    for (let i = 0; i < samples; i++) {
      const row = logits.subarray(i * 3, i * 3 + 3);
      if (row.indexOf(Math.max(...row)) === truth[(i + 1) % samples]) shifted++;
    }
    expect(shifted / samples).toBeLessThan(0.45);
  });

  test('the anomaly scorer ranks the injected oddities first', async () => {
    const { score } = await runByCard('anomaly', tensors, samples);
    expect(score).toHaveLength(samples);
    const label = tensors.get('anomaly')!;
    const odd = label.reduce((n, v) => n + v, 0);
    expect(odd).toBeGreaterThan(20);
    const top = [...score.keys()].sort((a, b) => score[b] - score[a]).slice(0, 2 * odd);
    expect(top.filter((i) => label[i] === 1).length / odd).toBeGreaterThan(0.85);
    // Clean galaxies mostly score below 1, the edge of the clean 99 % on each of its three measures.
    const cleanAbove = [...score.keys()].filter((i) => label[i] === 0 && score[i] > 1).length;
    expect(cleanAbove / (samples - odd)).toBeLessThan(0.06);
  });
});
