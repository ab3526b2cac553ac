import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cardFeeds, type ModelCard } from '../../functions/commons/model/card';
import { readModelFile } from '../../functions/commons/model/model-file';
import { loadModel, runPartition } from '../../functions/commons/model/session';
import { outputMetrics, outputStatistics } from '../../functions/commons/model/task-statistics';
import { openPartition } from '../../functions/commons/partitions/partition';
import { bufferSource } from '../../functions/commons/tensors/byte-source';
import { ROOT } from '../../local/paths';
import { synthesizeDataset } from '../../toolkit/datasets/synth';
import { pythonScript, runPython } from '../helpers/python';

/**
 * The committed models with their cards (model/README.md): each card is embedded in its model and
 * equals the file beside it, and each model runs by its card through CAI's own inference path (the
 * card's feeds from a dict partition, runPartition, the per-task statistics) on galaxies it never saw.
 */
const MODELS = ['default', 'morphology', 'anomaly'];
const model = (name: string, ext: string) => join(ROOT, 'model', `${name}${ext}`);
const cardText = (name: string) => readFileSync(model(name, '.card.json'), 'utf8');
const provenanceOf = (name: string) => JSON.parse(readFileSync(model(name, '.json'), 'utf8'));

/** A fresh dict partition (a seed no model was trained or evaluated on), in memory. */
async function freshPartition(samples: number, oddities: number): Promise<Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const sink = { describe: (n: string) => n, put: async (n: string, b: Uint8Array) => void files.set(n, b.slice()) };
  await synthesizeDataset({ samples, maxBytes: 2 ** 30, seed: 4242, layout: 'dict', oddities, sink });
  return files.get('1.pt')!;
}

/** The model over the partition as the inference Lambda runs it, and each output's metrics. */
async function runByCard(name: string, partition: Uint8Array) {
  const { card, signature } = await readModelFile(model(name, '.onnx'), cardText(name));
  const session = await loadModel(model(name, '.onnx'));
  const reader = await openPartition(bufferSource(partition, '1.pt'), cardFeeds(card));
  try {
    expect(signature.inputs.map((i) => i.name).sort()).toEqual(Object.keys(card.inputs).sort());
    const result = await runPartition(session, card, reader, card.batchSize ?? 64);
    const metrics = Object.fromEntries(
      Object.entries(card.outputs).map(([output, spec]) => [
        output,
        outputMetrics(outputStatistics(spec, result.outputs[output].values, '1.pt', result.labels[output])),
      ]),
    );
    return { card: card as ModelCard, result, metrics };
  } finally {
    await reader.close();
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
  for (const name of MODELS) expect(report[`${name}.onnx`]).toEqual({ card: JSON.parse(cardText(name)), sameAsFile: true });
});

describe('run by their cards through CAI, on galaxies they never saw', () => {
  const samples = 2000;
  let partition: Uint8Array;
  beforeAll(async () => {
    partition = await freshPartition(samples, 0.02);
  });

  test('the morphology classifier, fed by key from a dict partition, is about as accurate as its provenance says', async () => {
    const { card, metrics } = await runByCard('morphology', partition);
    expect(card.outputs.logits).toMatchObject({ task: 'classification', classes: ['disk', 'lenticular', 'elliptical'] });
    const m = metrics.logits;
    if (m.task !== 'classification') throw new Error('not a classification');
    const recorded = provenanceOf('morphology').held_out.accuracy;
    expect(recorded).toBeGreaterThan(0.75);
    expect(m.labelled).toBe(samples);
    expect(Math.abs(m.accuracy! - recorded)).toBeLessThan(0.04);
  });

  test('the check can fail: the same predictions against labels of the wrong objects agree no better than chance', async () => {
    const { result } = await runByCard('morphology', partition);
    const labels = result.labels.logits;
    const shifted = Float32Array.from(labels, (_, i) => labels[(i + 1) % labels.length]);
    const m = outputMetrics(
      outputStatistics(
        { task: 'classification', classes: ['disk', 'lenticular', 'elliptical'], scores: 'logits' },
        result.outputs.logits.values,
        '1.pt',
        shifted,
      ),
    );
    if (m.task !== 'classification') throw new Error('not a classification');
    expect(m.accuracy!).toBeLessThan(0.45);
  });

  test('the anomaly scorer puts the injected oddities in the run top K', async () => {
    const { card, metrics } = await runByCard('anomaly', partition);
    expect(card.outputs.score).toMatchObject({ task: 'score', label: 'anomaly' });
    const m = metrics.score;
    if (m.task !== 'score') throw new Error('not a score');
    expect(m.positives).toBeGreaterThan(20);
    expect(m.positives).toBeLessThanOrEqual(50);
    expect(m.recallAtK!).toBeGreaterThan(0.85);
  });
});
