import { copyFileSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../functions/commons/aws/clients';
import type { ModelObject } from '../../functions/commons/run/contracts';
import { ModelSource } from '../../functions/commons/run/model-source';
import { ROOT } from '../../local/paths';
import { startLocalS3, type LocalS3 } from '../../local/s3-server';
import { pythonScript, runPython } from '../helpers/python';
import { tempFolder } from '../helpers/temp';

/**
 * The inference container's models, with the worker pool for real (dist/cli/inference-worker.js) and
 * the embedded S3: a run's model is fetched once per container and version, a warm rank reuses it,
 * and a model overwritten after the initializer checked it is refused (If-Match), never run.
 */
const work = tempFolder('cai-model-source-');
const models = join(work, 'models');
const directory = join(work, 'tmp');
let server: LocalS3;
let s3: S3Client;
let source: ModelSource;

const upload = async (key: string, file: string): Promise<ModelObject> => {
  await s3.send(new PutObjectCommand({ Bucket: 'cai-control', Key: key, Body: readFileSync(file) }));
  const head = await s3.send(new HeadObjectCommand({ Bucket: 'cai-control', Key: key }));
  return { bucket: 'cai-control', key, etag: head.ETag!, bytes: head.ContentLength! };
};

beforeAll(async () => {
  runPython(pythonScript('make_onnx_models.py'), [models]);
  server = await startLocalS3(join(work, 's3'), ['cai-control']);
  s3 = createS3Client({ ...process.env, CAI_S3_ENDPOINT: server.endpoint, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
  const deployed = join(work, 'model.onnx');
  copyFileSync(join(ROOT, 'model', 'default.onnx'), deployed);
  copyFileSync(join(ROOT, 'model', 'default.card.json'), join(work, 'model.card.json'));
  source = new ModelSource({
    s3,
    workers: 1,
    workerScript: join(ROOT, 'dist', 'cli', 'inference-worker.js'),
    deployed: { path: deployed, cardPath: join(work, 'model.card.json') },
    directory,
  });
});
afterAll(async () => {
  await (await source.forItem()).pool.release();
  await server?.close();
});

test('a run model is fetched and loaded on its first rank, then reused; the deployed one comes back after it', async () => {
  const deployed = await source.loadDeployed();
  expect([deployed.id, deployed.card.name]).toEqual(['deployed', 'astromae-redshift']);
  const model = await upload('models/tiny.onnx', join(models, 'redshift.onnx'));
  const first = await source.forItem(model);
  expect(first.id).toBe(`s3://cai-control/models/tiny.onnx#${model.etag.replace(/"/g, '')}`);
  expect(first.card.name).toBe('tiny-redshift'); // its card, from its metadata
  expect(first.fetchSeconds).toBeGreaterThan(0);
  expect(first.loadSeconds).toBeGreaterThanOrEqual(first.fetchSeconds);
  // The sessions hold the model: /tmp is left free for the next one.
  expect(readdirSync(directory)).toEqual([]);
  const warm = await source.forItem(model);
  expect([warm.loadSeconds, warm.fetchSeconds, warm.pool]).toEqual([0, 0, first.pool]);
  const back = await source.forItem();
  expect([back.id, back.loadSeconds > 0]).toEqual(['deployed', true]);
});

test('a model overwritten after the initializer checked it is refused (412), not run in its new version', async () => {
  const checked = await upload('models/changing.onnx', join(models, 'redshift.onnx'));
  await upload('models/changing.onnx', join(models, 'weighty.onnx'));
  await expect(source.forItem(checked)).rejects.toThrow(/PreconditionFailed|pre-conditions/);
  // The control: the local S3 serves the object when the ETag is its own, and refuses another.
  const current = (await s3.send(new HeadObjectCommand({ Bucket: 'cai-control', Key: 'models/changing.onnx' }))).ETag!;
  const get = (etag: string) => s3.send(new GetObjectCommand({ Bucket: 'cai-control', Key: 'models/changing.onnx', IfMatch: etag }));
  const served = await get(current);
  expect((await served.Body!.transformToByteArray()).byteLength).toBeGreaterThan(24e6);
  await expect(get(checked.etag)).rejects.toMatchObject({ name: 'PreconditionFailed', $metadata: { httpStatusCode: 412 } });
});

test('a card overwritten after the initializer checked it is refused (412), never paired with the model', async () => {
  const model = await upload('models/carded.onnx', join(models, 'redshift.onnx'));
  const key = 'models/carded.card.json';
  const card = (name: string) => ({
    name,
    inputs: { image: { tensor: 0, dtype: 'float32' }, magnitude: { tensor: 1, dtype: 'float32' } },
    outputs: { redshift: { task: 'regression', label: 2 } },
  });
  const write = async (name: string) =>
    (await s3.send(new PutObjectCommand({ Bucket: 'cai-control', Key: key, Body: JSON.stringify(card(name)) }))).ETag!;
  const checked = await write('as-checked');
  const current = await write('overwritten');
  await expect(source.forItem({ ...model, card: { bucket: 'cai-control', key, etag: checked } })).rejects.toMatchObject({
    name: 'PreconditionFailed',
    $metadata: { httpStatusCode: 412 },
  });
  expect(readdirSync(directory)).toEqual([]); // refused before the model was fetched
  // The control: the card at the ETag it has now is fetched and paired with the model.
  expect((await source.forItem({ ...model, card: { bucket: 'cai-control', key, etag: current } })).card.name).toBe('overwritten');
});
