import { cardFeeds, CardError, cardKeyFor, parseCard, partitionMisfit, type ModelCard } from '../../functions/commons/model/card';
import type { OnnxSignature } from '../../functions/commons/model/onnx-signature';

const REDSHIFT = {
  inputs: { image: { tensor: 0, dtype: 'float32' }, magnitude: { tensor: 1, dtype: 'float32' } },
  outputs: { redshift: { task: 'regression', label: 2 } },
};

const refusal = (text: string) => {
  try {
    parseCard(text, 'my.card.json');
    return 'parsed';
  } catch (error) {
    expect(error).toBeInstanceOf(CardError);
    return (error as Error).message;
  }
};

describe('parseCard', () => {
  test('the redshift card parses, as written (the control)', () => {
    expect(refusal(JSON.stringify(REDSHIFT))).toBe('parsed');
    expect(parseCard(JSON.stringify({ ...REDSHIFT, name: 'astromae', version: '2', batchSize: 64 }), 'x').batchSize).toBe(64);
  });

  test.each([
    ['not JSON', '{inputs:', /^my\.card\.json: the card is not JSON: /],
    ['no inputs', JSON.stringify({ outputs: REDSHIFT.outputs }), /^my\.card\.json: card inputs: /],
    ['no outputs', JSON.stringify({ ...REDSHIFT, outputs: {} }), /^my\.card\.json: card outputs: a card names at least one output$/],
    [
      'an unknown task',
      JSON.stringify({ ...REDSHIFT, outputs: { z: { task: 'segmentation' } } }),
      /^my\.card\.json: card outputs\.z\.task: /,
    ],
    [
      'a classification without classes',
      JSON.stringify({ ...REDSHIFT, outputs: { c: { task: 'classification', scores: 'logits' } } }),
      /^my\.card\.json: card outputs\.c\.classes: /,
    ],
    [
      'one class',
      JSON.stringify({ ...REDSHIFT, outputs: { c: { task: 'classification', classes: ['a'], scores: 'logits' } } }),
      /outputs\.c\.classes/,
    ],
    [
      'a dtype CAI does not feed',
      JSON.stringify({ ...REDSHIFT, inputs: { image: { tensor: 0, dtype: 'float16' } } }),
      /card inputs\.image\.dtype: /,
    ],
    [
      'a negative position',
      JSON.stringify({ ...REDSHIFT, inputs: { image: { tensor: -1, dtype: 'float32' } } }),
      /card inputs\.image\.tensor: /,
    ],
    ['a field CAI does not know (a typo)', JSON.stringify({ ...REDSHIFT, output: {} }), /^my\.card\.json: card \(card\): .*output/],
    ['a batch size of 0', JSON.stringify({ ...REDSHIFT, batchSize: 0 }), /card batchSize: /],
  ])('%s is refused in one line naming the field', (_name, text, message) => {
    const got = refusal(text);
    expect(got).toMatch(message);
    expect(got.split('\n')).toHaveLength(1);
  });
});

describe('partitionMisfit: the card against a partition, before any rank runs', () => {
  const card = parseCard(JSON.stringify(REDSHIFT), 'card');
  const graph: OnnxSignature = {
    inputs: [
      { name: 'image', dtype: 'float32', shape: ['batch', 5, 32, 32] },
      { name: 'magnitude', dtype: 'float32', shape: ['batch', 5] },
    ],
    outputs: [{ name: 'redshift', dtype: 'float32', shape: ['batch'] }],
    metadata: {},
    irVersion: 8,
    opsets: [{ domain: '', version: 17 }],
    functionDomains: [],
  };
  const fitting = { image: { rowShape: [5, 32, 32] }, magnitude: { rowShape: [5] }, 'label:redshift': { rowShape: [] } };

  test('a partition that fits, labelled or not (the control)', () => {
    expect(partitionMisfit(card, graph, fitting)).toBeUndefined();
    const { 'label:redshift': _label, ...unlabelled } = fitting;
    expect(partitionMisfit(card, graph, unlabelled)).toBeUndefined();
  });

  test('a tensor the partition lacks, a shape the graph does not take, a label that is not one value per object', () => {
    const { magnitude: _m, ...noMagnitude } = fitting;
    expect(partitionMisfit(card, graph, noMagnitude)).toBe('input magnitude: the partition has no tensor 1');
    expect(partitionMisfit(card, graph, { ...fitting, image: { rowShape: [3, 64, 64] } })).toBe(
      "input image: the partition's tensor 0 is [N, 3, 64, 64] per object, the graph wants [batch, 5, 32, 32]",
    );
    expect(partitionMisfit(card, graph, { ...fitting, 'label:redshift': { rowShape: [2] } })).toBe(
      'output redshift: its label tensor 2 is [N, 2], not one value per object',
    );
  });

  test('a dict partition is named by key', () => {
    const byKey: ModelCard = { ...card, inputs: { ...card.inputs, image: { tensor: 'cutouts', dtype: 'float32' } } };
    const { image: _i, ...noImage } = fitting;
    expect(partitionMisfit(byKey, graph, noImage)).toBe('input image: the partition has no tensor "cutouts"');
  });
});

test('cardFeeds: the inputs, then each labelled output as an optional feed', () => {
  const card = parseCard(JSON.stringify({ ...REDSHIFT, outputs: { ...REDSHIFT.outputs, odd: { task: 'score' } } }), 'card');
  expect(cardFeeds(card)).toEqual([
    { name: 'image', tensor: 0, dtype: 'float32' },
    { name: 'magnitude', tensor: 1, dtype: 'float32' },
    { name: 'label:redshift', tensor: 2, dtype: 'float32', optional: true },
  ]);
});

test('cardKeyFor: the card lies beside its model', () => {
  expect(cardKeyFor('models/morphology.onnx')).toBe('models/morphology.card.json');
  expect(cardKeyFor('models/A.ONNX')).toBe('models/A.card.json');
});
