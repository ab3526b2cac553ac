import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from './helpers/python';

/**
 * Imports run one way: each layer may import only itself and the layers before it, so the tree
 * reads as the architecture (tensor decoding → partitions → model → run; commands → local stack →
 * functions), and no Lambda bundle can reach code its artifact does not need.
 */
const LAYERS = [
  'functions/commons/errors.ts',
  'functions/commons/aws',
  'functions/commons/torch',
  'functions/commons/partitions',
  'functions/commons/model',
  'functions/commons/billing',
  'functions/commons/run',
  'functions/initializer|functions/inference|functions/summarizer',
  'local',
  'cli',
  'bench',
];

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

const files = ['functions', 'local', 'cli', 'bench'].flatMap((folder) => sources(join(ROOT, folder)));

test('every source file sits in a layer', () => {
  expect(files.length).toBeGreaterThan(40);
  for (const file of files) expect(() => layerOf(file)).not.toThrow();
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

test('the rule can fail: a model module importing the run layer is caught', () => {
  const from = layerOf(join(ROOT, 'functions/commons/model/session.ts'));
  const to = layerOf(join(ROOT, 'functions/commons/run/rank.ts'));
  expect(to.layer).toBeGreaterThan(from.layer);
});
