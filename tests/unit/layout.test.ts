import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { build, transform } from 'esbuild';
import { ROOT } from '../../local/paths';

/**
 * The tree reads as the architecture. functions/ is what is deployed, and only that: every module
 * under it is bundled into some handler's artifact. toolkit/ is what the CLI and the benches use
 * besides (forecasts, dataset writers), never deployed. Imports run one way: each layer may import
 * only itself and the layers before it (tensor decoding → format readers → partitions → model → run; commands →
 * local stack → toolkit → functions), and no handler imports another.
 */
const LAYERS = [
  'functions/commons/errors.ts',
  'functions/commons/aws',
  'functions/commons/tensors',
  // One reader per format, none importing another: the partition layer chooses among them.
  'functions/commons/torch|functions/commons/hdf5|functions/commons/fits|functions/commons/parquet|functions/commons/numpy',
  'functions/commons/partitions',
  'functions/commons/model',
  'functions/commons/billing',
  'functions/commons/run',
  'functions/initializer|functions/inference|functions/summarizer',
  'toolkit',
  'local',
  'cli',
  'bench',
];
/** Each function's entry points, as scripts/build.mjs bundles them: its handler, and the inference pool's worker. */
const ENTRY_POINTS = ['initializer/handler.ts', 'inference/handler.ts', 'inference/worker.ts', 'summarizer/handler.ts'];

function layerOf(file: string): { layer: number; unit: string } {
  const path = relative(ROOT, file);
  for (let layer = LAYERS.length - 1; layer >= 0; layer--) {
    const unit = LAYERS[layer].split('|').find((prefix) => path === prefix || path.startsWith(`${prefix}/`));
    if (unit) return { layer, unit };
  }
  throw new Error(`${path} is in no layer: add its folder to LAYERS`);
}

function sources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

const files = ['functions', 'toolkit', 'local', 'cli', 'bench'].flatMap((folder) => sources(join(ROOT, folder)));

/** The modules under functions/ or toolkit/ that no handler's bundle holds, but for those that declare types only. */
async function undeployed(candidates: string[]): Promise<string[]> {
  const bundled = new Set<string>();
  for (const entry of ENTRY_POINTS) {
    const { metafile } = await build({
      entryPoints: [join(ROOT, 'functions', entry)],
      bundle: true,
      platform: 'node',
      format: 'esm',
      write: false,
      metafile: true,
      external: ['onnxruntime-node'],
      logLevel: 'silent',
    });
    for (const input of Object.keys(metafile.inputs)) bundled.add(resolve(ROOT, input));
  }
  const left = candidates.filter((file) => !bundled.has(file));
  const typesOnly = await Promise.all(
    left.map(async (file) => (await transform(readFileSync(file, 'utf8'), { loader: 'ts' })).code.trim() === ''),
  );
  return left.filter((_, i) => !typesOnly[i]).map((file) => relative(ROOT, file));
}

test('every source file sits in a layer', () => {
  expect(files.length).toBeGreaterThan(40);
  for (const file of files) expect(() => layerOf(file)).not.toThrow();
});

test('functions/ holds deployed code only: every module is in some handler’s bundle (or declares types only)', async () => {
  const deployed = sources(join(ROOT, 'functions'));
  expect(deployed.length).toBeGreaterThan(20);
  expect(await undeployed(deployed)).toEqual([]);
  // The check can fail: the toolkit's modules are in no bundle.
  const toolkit = sources(join(ROOT, 'toolkit'));
  expect(await undeployed(toolkit)).toEqual(toolkit.map((file) => relative(ROOT, file)));
});

test('no file imports a later layer, and no handler imports another', () => {
  const violations: string[] = [];
  for (const file of files) {
    const from = layerOf(file);
    for (const [, specifier] of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = resolve(dirname(file), specifier);
      const to = layerOf(target.endsWith('.ts') ? target : `${target}.ts`);
      const sideways = from.layer === to.layer && from.unit !== to.unit;
      if (to.layer > from.layer || sideways) violations.push(`${relative(ROOT, file)} → ${specifier} (${to.unit})`);
    }
  }
  expect(violations).toEqual([]);
});

test('the rule can fail: a model module importing the run layer, or a handler importing the toolkit, is caught', () => {
  const model = layerOf(join(ROOT, 'functions/commons/model/session.ts'));
  expect(layerOf(join(ROOT, 'functions/commons/run/rank.ts')).layer).toBeGreaterThan(model.layer);
  const handler = layerOf(join(ROOT, 'functions/inference/handler.ts'));
  expect(layerOf(join(ROOT, 'toolkit/datasets/synth.ts')).layer).toBeGreaterThan(handler.layer);
});
