import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../functions/commons/aws/clients';
import { ModelRefusal, resolveRunModel, type ModelLimits } from '../../functions/commons/run/run-model';
import { startLocalS3, type LocalS3 } from '../../local/s3-server';
import { writeTestPartition } from '../helpers/partitions';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';

/**
 * A run's own model, checked by the initializer's code against the embedded S3 before anything
 * starts: each bad model is refused in one line naming what is wrong; good ones resolve with their
 * version (ETag) and where their card is.
 */
const work = tempFolder('cai-run-model-');
const models = join(work, 'models');
const CONTROL = 'cai-control';
const FIRST = { key: 'survey/1.pt', bytes: 0 };
const LIMITS: ModelLimits = { controlBucket: CONTROL, buckets: ['team-models'], storageBytes: 448 * 2 ** 20 };
let server: LocalS3;
let s3: S3Client;

const put = (bucket: string, key: string, body: Uint8Array | string) =>
  s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
const modelFile = (name: string) => readFileSync(join(models, `${name}.onnx`));
const CLASSIFIER_CARD = {
  name: 'bands',
  inputs: { image: { tensor: 0, dtype: 'float32' } },
  outputs: { logits: { task: 'classification', classes: ['u', 'g', 'r'], scores: 'logits' } },
};

beforeAll(async () => {
  runPython(pythonScript('make_onnx_models.py'), [models]);
  server = await startLocalS3(join(work, 's3'), [CONTROL, 'team-models', 'elsewhere', 'cai-data']);
  s3 = createS3Client({ ...process.env, CAI_S3_ENDPOINT: server.endpoint, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
  const partition = join(work, '1.pt');
  writeTestPartition(partition, 8);
  await put('cai-data', FIRST.key, readFileSync(partition));
  await put(CONTROL, 'models/redshift.onnx', modelFile('redshift'));
  await put(CONTROL, 'elsewhere/redshift.onnx', modelFile('redshift'));
  await put('elsewhere', 'redshift.onnx', modelFile('redshift'));
  await put('team-models', 'classifier.onnx', modelFile('classifier'));
  await put('team-models', 'classifier.card.json', JSON.stringify(CLASSIFIER_CARD));
  await put('team-models', 'uncarded.onnx', modelFile('classifier'));
  await put('team-models', 'text.onnx', 'not a model');
  const beside = async (name: string, graph: string, card: unknown) => {
    await put('team-models', `${name}.onnx`, modelFile(graph));
    await put('team-models', `${name}.card.json`, typeof card === 'string' ? card : JSON.stringify(card));
  };
  await beside('unparsable', 'classifier', '{"inputs": ');
  await beside('two-classes', 'classifier', {
    ...CLASSIFIER_CARD,
    outputs: { logits: { ...CLASSIFIER_CARD.outputs.logits, classes: ['u', 'g'] } },
  });
  await beside('extra-input', 'classifier', {
    ...CLASSIFIER_CARD,
    inputs: { ...CLASSIFIER_CARD.inputs, mask: { tensor: 1, dtype: 'float32' } },
  });
  await beside('no-tensor', 'classifier', { ...CLASSIFIER_CARD, inputs: { image: { tensor: 7, dtype: 'float32' } } });
  await beside('wrong-shape', 'weighty', { inputs: { magnitude: { tensor: 0, dtype: 'float32' } }, outputs: { score: { task: 'score' } } });
  await beside('int64-feed', 'int64_input', { inputs: { ids: { tensor: 1, dtype: 'int64' } }, outputs: { score: { task: 'score' } } });
  for (const name of ['opset_too_new', 'unknown_domain', 'local_function']) await put('team-models', `${name}.onnx`, modelFile(name));
});
afterAll(async () => server?.close());

const resolve = (uri: string, limits = LIMITS, client = s3) => resolveRunModel(uri, FIRST, 'cai-data', client, limits);
const refusal = async (uri: string, limits = LIMITS, client = s3) => {
  try {
    await resolve(uri, limits, client);
    return 'resolved';
  } catch (error) {
    expect(error).toBeInstanceOf(ModelRefusal);
    expect((error as Error).message.split('\n')).toHaveLength(1);
    return (error as Error).message;
  }
};

describe('models that can run resolve (the controls)', () => {
  test("the control bucket's models/, its card in its metadata", async () => {
    const model = await resolve(`s3://${CONTROL}/models/redshift.onnx`);
    expect(model.card.name).toBe('tiny-redshift');
    expect(model.object).toEqual({
      bucket: CONTROL,
      key: 'models/redshift.onnx',
      etag: expect.stringMatching(/^"[0-9a-f]{32}"$/),
      bytes: 603,
    });
  });

  test('a bucket of ModelBucketNames, its card beside it', async () => {
    const model = await resolve('s3://team-models/classifier.onnx');
    expect(model.card.name).toBe('bands');
    // Pinned by the ETag it was read at, as the model is.
    expect(model.object.card).toEqual({
      bucket: 'team-models',
      key: 'classifier.card.json',
      etag: expect.stringMatching(/^"[0-9a-f]{32}"$/),
    });
  });

  test("operators of the model's own local functions: their domain is the model's", async () => {
    expect((await resolve('s3://team-models/local_function.onnx')).card.name).toBe('tiny-magnitude');
  });
});

describe('each bad model is refused in one line, naming what is wrong', () => {
  test.each([
    [
      's3://elsewhere/redshift.onnx',
      /^model s3:\/\/elsewhere\/redshift\.onnx: the functions may read models only from s3:\/\/cai-control\/models\/, s3:\/\/team-models\/; add elsewhere to the template's ModelBucketNames/,
    ],
    [
      `s3://${CONTROL}/elsewhere/redshift.onnx`,
      /^model s3:\/\/cai-control\/elsewhere\/redshift\.onnx: in the control bucket, models go under models\//,
    ],
    ['s3://team-models/missing.onnx', /^model s3:\/\/team-models\/missing\.onnx does not exist$/],
    ['s3://team-models/text.onnx', /^model s3:\/\/team-models\/text\.onnx: not an ONNX model: /],
    [
      's3://team-models/uncarded.onnx',
      /^model s3:\/\/team-models\/uncarded\.onnx has no card: none at s3:\/\/team-models\/uncarded\.card\.json and none in its metadata/,
    ],
    ['s3://team-models/unparsable.onnx', /^s3:\/\/team-models\/unparsable\.card\.json: the card is not JSON/],
    [
      's3://team-models/two-classes.onnx',
      /^s3:\/\/team-models\/two-classes\.onnx: output logits: the card names 2 classes, the graph's output has 3$/,
    ],
    ['s3://team-models/extra-input.onnx', /: the card names input mask, which the graph lacks \(its inputs: image\)$/],
    [
      's3://team-models/no-tensor.onnx',
      /cannot run on the run's partitions: .*1\.pt: image: no tensor at position 7: it holds 3 tensors by position/,
    ],
    [
      's3://team-models/wrong-shape.onnx',
      /^model s3:\/\/team-models\/wrong-shape\.onnx cannot run on s3:\/\/cai-data\/survey\/1\.pt: input magnitude: the partition's tensor 0 is \[N, 5, 32, 32\] per object, the graph wants \[batch, 5\]$/,
    ],
    ['s3://team-models/int64-feed.onnx', /cannot run on the run's partitions: .*ids: a float32 array cannot be fed as int64/],
    // What the inference function's ONNX Runtime cannot load (every rank would fail its load three times).
    [
      's3://team-models/opset_too_new.onnx',
      "model s3://team-models/opset_too_new.onnx: it needs ai.onnx opset 27; the inference function's ONNX Runtime 1.30.0 runs up to opset 26: export it with opset 26 or lower",
    ],
    [
      's3://team-models/unknown_domain.onnx',
      "model s3://team-models/unknown_domain.onnx: it imports operators of domain cai.custom, which the inference function's ONNX Runtime 1.30.0 does not have (its domains: ai.onnx, ai.onnx.ml, com.microsoft): export it without custom operators",
    ],
  ])('%s', async (uri, message) => {
    if (typeof message === 'string') expect(await refusal(uri)).toBe(message);
    else expect(await refusal(uri)).toMatch(message);
  });

  test("a model bigger than the inference function's /tmp", async () => {
    expect(await refusal(`s3://${CONTROL}/models/redshift.onnx`, { ...LIMITS, storageBytes: 600 })).toBe(
      "model s3://cai-control/models/redshift.onnx is 603 bytes; the inference function's /tmp holds 600: raise the template's InferenceEphemeralStorage",
    );
  });

  test('a model the functions may not read (403): a fault no local server produces, injected into the client', async () => {
    const denying = {
      send: (command: { constructor: { name: string } }) =>
        command.constructor.name === 'HeadObjectCommand'
          ? Promise.reject(Object.assign(new Error('Forbidden'), { name: 'Forbidden', $metadata: { httpStatusCode: 403 } }))
          : s3.send(command as never),
    } as unknown as S3Client;
    expect(await refusal('s3://team-models/classifier.onnx', LIMITS, denying)).toBe(
      'model s3://team-models/classifier.onnx is not readable (403)',
    );
  });
});
