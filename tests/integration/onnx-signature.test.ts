import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cardFromMetadata, CardError, checkCardAgainstGraph, parseCard } from '../../functions/commons/model/card';
import { readModelFile } from '../../functions/commons/model/model-file';
import { OnnxError, readOnnxSignature } from '../../functions/commons/model/onnx-signature';
import { ONNX_RUNTIME, runtimeMisfit } from '../../functions/commons/model/runtime-support';
import { loadModel } from '../../functions/commons/model/session';
import { fileSource, type ByteSource } from '../../functions/commons/tensors/byte-source';
import { ROOT } from '../../local/paths';
import { writeTestPartition } from '../helpers/partitions';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';

/**
 * ONNX signatures read from the file's bytes, checked against what the onnx library itself reads of
 * models it wrote (tests/python/make_onnx_models.py), and the cards of real models.
 */
const dir = tempFolder('cai-onnx-');
let expected: Record<string, { inputs: unknown[]; outputs: unknown[]; metadata: Record<string, string> }>;
beforeAll(() => {
  runPython(pythonScript('make_onnx_models.py'), [dir, JSON.stringify(ONNX_RUNTIME)]);
  expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
});
const model = (name: string) => join(dir, `${name}.onnx`);

/** A source that counts the bytes asked of it. */
async function counting(path: string): Promise<{ source: ByteSource; read: () => number }> {
  const source = await fileSource(path);
  let bytes = 0;
  return {
    source: {
      ...source,
      read: (offset, length, into) => {
        bytes += length;
        return source.read(offset, length, into);
      },
      close: () => source.close(),
    },
    read: () => bytes,
  };
}

test.each(['redshift', 'classifier', 'int64_input', 'int64_output', 'weighty', 'opset_too_new', 'unknown_domain', 'local_function'])(
  '%s: inputs, outputs, metadata, IR version, opsets and local functions as onnx reads them',
  async (name) => {
    const source = await fileSource(model(name));
    try {
      expect(await readOnnxSignature(source)).toEqual(expected[name]);
    } finally {
      await source.close();
    }
  },
);

test('an initializer listed among the inputs (older exports) is not an input to feed, and the model runs without it', async () => {
  const source = await fileSource(model('redshift'));
  const signature = await readOnnxSignature(source);
  await source.close();
  expect(signature.inputs.map((i) => i.name)).toEqual(['image', 'magnitude']);
  const session = await loadModel(model('redshift'));
  const { redshift } = await session.run(
    {
      image: { data: new Float32Array(2 * 5 * 32 * 32), dims: [2, 5, 32, 32] },
      magnitude: { data: new Float32Array(10).fill(20), dims: [2, 5] },
    },
    2,
  );
  await session.release();
  expect(redshift).toHaveLength(2);
  for (const z of redshift) expect(z).toBeCloseTo(0.2, 6);
});

test('the weights are skipped, not read: 24 MB of them cost under 200 KB of reads', async () => {
  const { source, read } = await counting(model('weighty'));
  try {
    const signature = await readOnnxSignature(source);
    expect(signature.outputs[0].name).toBe('score');
    expect(source.size).toBeGreaterThan(24e6);
    expect(read()).toBeLessThan(200_000);
  } finally {
    await source.close();
  }
});

describe("what the packed ONNX Runtime loads: the limits runtimeMisfit holds models to are the runtime's own", () => {
  /** The packed runtime's verdict on a model: 'loads', or its error message. */
  const load = async (name: string) => {
    try {
      await (await loadModel(model(name))).release();
      return 'loads';
    } catch (error) {
      return (error as Error).message;
    }
  };
  const misfit = async (name: string) => {
    const source = await fileSource(model(name));
    try {
      return runtimeMisfit(await readOnnxSignature(source));
    } finally {
      await source.close();
    }
  };

  test('the version is the one the inference artifact bundles', () => {
    const packed = JSON.parse(readFileSync(join(ROOT, 'node_modules', 'onnxruntime-node', 'package.json'), 'utf8')) as { version: string };
    expect(ONNX_RUNTIME.version).toBe(packed.version);
  });

  test.each(Object.entries(ONNX_RUNTIME.opsets))(
    'domain %j: opset %i loads and passes; one past it is refused by both',
    async (domain, top) => {
      const shown = domain || 'ai.onnx';
      expect([await load(`limit_${shown}_${top}`), await misfit(`limit_${shown}_${top}`)]).toEqual(['loads', undefined]);
      expect(await load(`limit_${shown}_${top + 1}`)).toContain(`Current official support for domain ${shown} is till opset ${top}.`);
      expect(await misfit(`limit_${shown}_${top + 1}`)).toMatch(
        new RegExp(`^it needs ${shown} opset ${top + 1}; .* runs up to opset ${top}: `),
      );
    },
  );

  test('IR version: the limit loads and passes; one past it is refused by both', async () => {
    const top = ONNX_RUNTIME.irVersion;
    expect([await load(`limit_ir_${top}`), await misfit(`limit_ir_${top}`)]).toEqual(['loads', undefined]);
    expect(await load(`limit_ir_${top + 1}`)).toContain(`Unsupported model IR version: ${top + 1}, max supported IR version: ${top}`);
    expect(await misfit(`limit_ir_${top + 1}`)).toMatch(new RegExp(`^its IR version is ${top + 1}; .* reads up to ${top}: `));
  });

  test("an operator of a domain the runtime lacks is refused by both; one of the model's own functions loads and passes", async () => {
    expect(await load('unknown_domain')).toMatch(/cai\.custom:Redshift\(-1\) is not a registered function\/op/);
    expect(await misfit('unknown_domain')).toMatch(/^it imports operators of domain cai\.custom, which .* does not have /);
    expect([await load('local_function'), await misfit('local_function')]).toEqual(['loads', undefined]);
    // The quick-start model is within the limits (the control).
    expect(await load('redshift')).toBe('loads');
    expect(await misfit('redshift')).toBeUndefined();
  });
});

test('the quick-start model: its signature and the card beside it fit', async () => {
  const path = join(ROOT, 'model', 'default.onnx');
  const { card, signature } = await readModelFile(path, readFileSync(join(ROOT, 'model', 'default.card.json'), 'utf8'));
  expect(signature.inputs.map((i) => [i.name, i.dtype, i.shape.slice(1)])).toEqual([
    ['image', 'float32', [5, 32, 32]],
    ['magnitude', 'float32', [5]],
  ]);
  expect(signature.outputs.map((o) => [o.name, o.dtype])).toEqual([['redshift', 'float32']]);
  expect(card.outputs.redshift.task).toBe('regression');
});

test('a card in the metadata is read; a model with none and no card beside it is refused in one line', async () => {
  const { card } = await readModelFile(model('redshift'));
  expect(card.name).toBe('tiny-redshift');
  await expect(readModelFile(model('classifier'))).rejects.toThrow(
    new CardError(`${model('classifier')}: no card beside it and none in its metadata (cai.card)`),
  );
});

describe('files that are not ONNX models are refused in one line, naming the file', () => {
  const write = (name: string, bytes: Uint8Array | string) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  const refusal = async (path: string) => {
    const source = await fileSource(path);
    try {
      await readOnnxSignature(source);
      return 'read';
    } catch (error) {
      expect(error).toBeInstanceOf(OnnxError);
      return (error as Error).message;
    } finally {
      await source.close();
    }
  };

  test('text, a PyTorch archive, a truncated model, an empty file', async () => {
    expect(await refusal(write('text.onnx', 'not a model at all\n'))).toMatch(/^\/.*text\.onnx: not an ONNX model: /);
    const archive = join(dir, 'partition.pt');
    writeTestPartition(archive, 3);
    expect(await refusal(archive)).toMatch(/partition\.pt: not an ONNX model: /);
    const weighty = readFileSync(model('weighty'));
    expect(await refusal(write('cut.onnx', weighty.subarray(0, 5_000_000)))).toMatch(/cut\.onnx: not an ONNX model/);
    expect(await refusal(write('empty.onnx', new Uint8Array(0)))).toMatch(/empty\.onnx: not an ONNX model: it holds no graph/);
    // The control: the whole file reads.
    expect(await refusal(model('weighty'))).toBe('read');
  });

  test('fuzz: 300 mutants of a real model each either read or fail with an OnnxError, never anything else', async () => {
    const original = readFileSync(model('redshift'));
    let seed = 99;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const outcomes = { read: 0, refused: 0 };
    for (let i = 0; i < 300; i++) {
      const bytes = Buffer.from(original);
      const flips = 1 + Math.floor(random() * 4);
      for (let f = 0; f < flips; f++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      const path = write('mutant.onnx', random() < 0.2 ? bytes.subarray(0, Math.floor(random() * bytes.length)) : bytes);
      const outcome = await refusal(path);
      outcomes[outcome === 'read' ? 'read' : 'refused']++;
      if (outcome !== 'read') expect(outcome.split('\n')).toHaveLength(1);
    }
    // Both happen: the mutants are not all harmless, nor all fatal.
    expect(outcomes.read).toBeGreaterThan(10);
    expect(outcomes.refused).toBeGreaterThan(10);
  });
});

describe('a card is checked against the graph, the first mismatch named in one line', () => {
  const signatureOf = async (name: string) => {
    const source = await fileSource(model(name));
    try {
      return await readOnnxSignature(source);
    } finally {
      await source.close();
    }
  };
  const check = async (name: string, card: object) => {
    try {
      checkCardAgainstGraph(parseCard(JSON.stringify(card), 'card'), await signatureOf(name), name);
      return 'fits';
    } catch (error) {
      expect(error).toBeInstanceOf(CardError);
      return (error as Error).message;
    }
  };
  const classifierCard = (classes: string[]) => ({
    inputs: { image: { tensor: 0, dtype: 'float32' } },
    outputs: { logits: { task: 'classification', classes, scores: 'logits' } },
  });

  test('the right card fits (the control)', async () => {
    expect(await check('classifier', classifierCard(['disk', 'lenticular', 'elliptical']))).toBe('fits');
    const inMetadata = cardFromMetadata(await signatureOf('redshift'), 'redshift')!;
    expect(await check('redshift', inMetadata)).toBe('fits');
  });

  test('a class count that differs from the output', async () => {
    expect(await check('classifier', classifierCard(['disk', 'elliptical']))).toBe(
      "classifier: output logits: the card names 2 classes, the graph's output has 3",
    );
  });

  test('an input the graph lacks; a graph input the card leaves out; an output the graph lacks', async () => {
    const card = classifierCard(['a', 'b', 'c']);
    expect(await check('classifier', { ...card, inputs: { ...card.inputs, mask: { tensor: 1, dtype: 'float32' } } })).toBe(
      'classifier: the card names input mask, which the graph lacks (its inputs: image)',
    );
    expect(
      await check('redshift', { inputs: { image: { tensor: 0, dtype: 'float32' } }, outputs: { redshift: { task: 'regression' } } }),
    ).toBe("redshift: the graph's input magnitude is not in the card (the card feeds image)");
    expect(await check('classifier', { ...card, outputs: { redshift: { task: 'regression' } } })).toBe(
      'classifier: the card names output redshift, which the graph lacks (its outputs: logits)',
    );
  });

  test('a dtype the graph does not take; an output CAI cannot read; a regression over a vector', async () => {
    expect(await check('int64_output', { inputs: { ids: { tensor: 0, dtype: 'float32' } }, outputs: { ids_out: { task: 'score' } } })).toBe(
      'int64_output: input ids: the card says float32, the graph wants int64',
    );
    expect(await check('int64_output', { inputs: { ids: { tensor: 0, dtype: 'int64' } }, outputs: { ids_out: { task: 'score' } } })).toBe(
      "int64_output: output ids_out: CAI reads float32 outputs, the graph's is int64",
    );
    expect(
      await check('classifier', { inputs: { image: { tensor: 0, dtype: 'float32' } }, outputs: { logits: { task: 'regression' } } }),
    ).toBe("classifier: output logits: a regression is one value per object, the graph's output is [?, 3]");
  });
});
