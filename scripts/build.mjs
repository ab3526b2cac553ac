// Bundles the CLI, the local stack, the benchmarks and the three Lambda handlers with esbuild.
//
//   node scripts/build.mjs                         everything, into dist/
//   node scripts/build.mjs --lambda <name> --out <dir> [--arch x86_64|arm64] [--model <file.onnx>]
//       one Lambda's deployment artifact (what SAM's makefile builder calls): index.mjs, and for
//       inference model.onnx plus onnxruntime-node with only that architecture's Linux binary.
import { build } from 'esbuild';
import { chmod, cp, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  // Native addons load their binaries at run time; they stay outside the bundle.
  external: ['onnxruntime-node'],
};

const LAMBDAS = ['initializer', 'inference', 'summarizer'];
// Handlers are ES modules (the inference handler creates its ONNX session with top-level await,
// during INIT). CommonJS dependencies inside them still need `require`.
const lambdaOptions = {
  ...common,
  format: 'esm',
  target: 'node22',
  banner: { js: "import { createRequire as __caiRequire } from 'node:module'; const require = __caiRequire(import.meta.url);" },
};

const { values: args } = parseArgs({
  options: { lambda: { type: 'string' }, out: { type: 'string' }, arch: { type: 'string' }, model: { type: 'string' } },
});

if (args.lambda) {
  if (!LAMBDAS.includes(args.lambda) || !args.out) throw new Error(`usage: --lambda ${LAMBDAS.join('|')} --out <dir>`);
  await rm(args.out, { recursive: true, force: true });
  await build({ ...lambdaOptions, sourcemap: false, entryPoints: { index: `functions/${args.lambda}/handler.ts` }, outdir: args.out, outExtension: { '.js': '.mjs' } });
  if (args.lambda === 'inference') {
    const arch = (args.arch ?? process.env.CAI_ARCH ?? 'x86_64') === 'arm64' ? 'arm64' : 'x64';
    const ort = join(args.out, 'node_modules', 'onnxruntime-node');
    await mkdir(ort, { recursive: true });
    await cp('node_modules/onnxruntime-node/package.json', join(ort, 'package.json'));
    await cp('node_modules/onnxruntime-node/dist', join(ort, 'dist'), { recursive: true });
    await cp(`node_modules/onnxruntime-node/bin/napi-v6/linux/${arch}`, join(ort, 'bin', 'napi-v6', 'linux', arch), { recursive: true });
    await cp('node_modules/onnxruntime-common', join(args.out, 'node_modules', 'onnxruntime-common'), { recursive: true });
    await cp(args.model ?? process.env.CAI_MODEL ?? 'model/default.onnx', join(args.out, 'model.onnx'));
  }
  process.exit(0);
}

await build({
  ...common,
  format: 'cjs',
  entryPoints: {
    'cli/cai': 'cli/cai.ts',
    'local/serve-s3': 'local/serve-s3.ts',
    'local/lambda-worker': 'local/lambda-worker.ts',
    'local/start': 'local/start.ts',
    'bench/decode': 'bench/decode.ts',
    'bench/inference': 'bench/inference.ts',
    'bench/cai-worker': 'bench/cai-worker.ts',
    'bench/max-rss': 'bench/max-rss.ts',
  },
  outdir: 'dist',
  // The embedded servers stay in node_modules: they load files of their own at run time.
  external: [...common.external, 'dynalite', 's3rver'],
});
await chmod('dist/cli/cai.js', 0o755);

await build({
  ...lambdaOptions,
  entryPoints: Object.fromEntries(LAMBDAS.map((name) => [`functions/${name}/index`, `functions/${name}/handler.ts`])),
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
});
