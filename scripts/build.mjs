// Bundles the CLI, the local stack, the benchmarks and the three Lambda handlers with esbuild.
//
//   node scripts/build.mjs                         the CLI, npm start and the benchmarks, into dist/
//   node scripts/build.mjs --lambda <name> --out <dir> [--model <file.onnx>] [--metafile <file>]
//       one Lambda's deployment artifact (what SAM's makefile builder calls, and what the local stack
//       runs): index.mjs, and for inference model.onnx (with model.card.json when <model>.card.json
//       is beside it; else the card is the model's cai.card metadata) plus onnxruntime-node with its
//       Linux binaries for both of Lambda's architectures, x64 (x86_64) and arm64: onnxruntime-node
//       loads the one for the CPU it runs on, so the artifact runs under either value of the
//       template's Architecture, whenever that is chosen (`sam deploy --guided` asks after
//       `sam build`). The initializer gets inference-model.json, that model's size, with which it
//       plans a rank's memory. The model is model/default.onnx unless --model or CAI_MODEL names another.
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
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

/** Lambda's quota on a function's deployment package, unzipped (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html). */
const LAMBDA_UNZIPPED_LIMIT = 262_144_000;

/** The bytes of every file under a folder: what a zip of it holds unzipped. */
async function folderBytes(folder) {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  const sizes = await Promise.all(entries.filter((e) => e.isFile()).map((e) => stat(join(e.parentPath, e.name)).then((s) => s.size)));
  return sizes.reduce((a, b) => a + b, 0);
}

/** The Lambda handlers, by folder under functions/. */
const LAMBDAS = ['initializer', 'inference', 'summarizer'];

/** onnxruntime-node's Linux binaries for Lambda's two architectures, by Node's names (process.arch). */
const LINUX_BINARIES = ['x64', 'arm64'];

const { values: args } = parseArgs({
  options: {
    lambda: { type: 'string' },
    out: { type: 'string' },
    model: { type: 'string' },
    metafile: { type: 'string' },
  },
});

/** One of the project's TypeScript modules, bundled on the fly and loaded here. */
async function loadModule(entry) {
  const bundle = join(await mkdtemp(join(tmpdir(), 'cai-build-')), 'module.cjs');
  try {
    await build({ ...common, entryPoints: [entry], format: 'cjs', outfile: bundle, sourcemap: false });
    return createRequire(import.meta.url)(bundle);
  } finally {
    // Removed whether or not it built: a failed build leaves nothing behind either.
    await rm(dirname(bundle), { recursive: true, force: true });
  }
}

if (args.lambda) {
  if (!LAMBDAS.includes(args.lambda) || !args.out) throw new Error(`usage: --lambda ${LAMBDAS.join('|')} --out <dir>`);
  await rm(args.out, { recursive: true, force: true });
  const result = await build({
    ...common,
    // Handlers are ES modules (the inference handler creates its ONNX session with top-level
    // await, during INIT). CommonJS dependencies inside them still need `require`.
    format: 'esm',
    target: 'node22',
    banner: { js: "import { createRequire as __caiRequire } from 'node:module'; const require = __caiRequire(import.meta.url);" },
    sourcemap: false,
    metafile: true,
    // The inference function's pool runs worker.mjs in its worker threads, beside index.mjs.
    entryPoints: {
      index: `functions/${args.lambda}/handler.ts`,
      ...(args.lambda === 'inference' ? { worker: 'functions/inference/worker.ts' } : {}),
    },
    outdir: args.out,
    outExtension: { '.js': '.mjs' },
  });
  if (args.metafile) await writeFile(args.metafile, JSON.stringify(result.metafile));
  const model = args.model ?? process.env.CAI_MODEL ?? 'model/default.onnx';
  if (args.lambda === 'initializer') {
    await writeFile(join(args.out, 'inference-model.json'), JSON.stringify({ bytes: (await stat(model)).size }));
  }
  if (args.lambda === 'inference') {
    const ort = join(args.out, 'node_modules', 'onnxruntime-node');
    await mkdir(ort, { recursive: true });
    await cp('node_modules/onnxruntime-node/package.json', join(ort, 'package.json'));
    await cp('node_modules/onnxruntime-node/dist', join(ort, 'dist'), { recursive: true });
    // Both Linux binaries (Node's names for x86_64 and arm64): the template's Architecture may be
    // chosen after the build, and an artifact carrying one would fail every INIT on the other.
    for (const node of LINUX_BINARIES) {
      await cp(`node_modules/onnxruntime-node/bin/napi-v6/linux/${node}`, join(ort, 'bin', 'napi-v6', 'linux', node), { recursive: true });
    }
    await cp('node_modules/onnxruntime-common', join(args.out, 'node_modules', 'onnxruntime-common'), { recursive: true });
    await cp(model, join(args.out, 'model.onnx'));
    const cardFile = model.replace(/\.onnx$/i, '') + '.card.json';
    if (existsSync(cardFile)) await cp(cardFile, join(args.out, 'model.card.json'));
  }
  // Lambda refuses a function whose package is over 250 MB unzipped (262,144,000 bytes, layers
  // included): refused here, at `sam build`, rather than by CloudFormation half-way through a deploy.
  const bytes = await folderBytes(args.out);
  if (bytes > LAMBDA_UNZIPPED_LIMIT) {
    const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
    const model = args.lambda === 'inference' ? (await stat(join(args.out, 'model.onnx'))).size : 0;
    const room = model ? `; the model is ${mb(model)} of it, and at most ${mb(LAMBDA_UNZIPPED_LIMIT - (bytes - model))} fits` : '';
    process.stderr.write(
      `build: the ${args.lambda} artifact is ${mb(bytes)} unzipped, over Lambda's 250 MiB (${mb(LAMBDA_UNZIPPED_LIMIT)}) limit${room}\n`,
    );
    process.exit(1);
  }
  if (args.lambda === 'inference') {
    // The deployed model and its card (model.card.json beside it, else its cai.card metadata), checked
    // as the function will read them at INIT: a model without a card fails here, not at deploy.
    const card = join(args.out, 'model.card.json');
    try {
      const { readModelFile } = await loadModule('functions/commons/model/model-file.ts');
      await readModelFile(join(args.out, 'model.onnx'), existsSync(card) ? await readFile(card, 'utf8') : undefined);
    } catch (error) {
      process.stderr.write(`build: ${error.message.replaceAll(join(args.out, 'model.onnx'), model)}\n`);
      process.exit(1);
    }
  }
  process.exit(0);
}

await build({
  ...common,
  format: 'cjs',
  entryPoints: {
    'cli/cai': 'cli/cai.ts',
    // cai predict's pool runs the inference function's own worker.
    'cli/inference-worker': 'functions/inference/worker.ts',
    'local/serve-s3': 'local/serve-s3.ts',
    // Preloaded into the local stack's Lambda runtimes (local/lambda-runtime.ts), so it is a file of its own.
    'local/worker-fault': 'local/worker-fault.ts',
    'bench/decode': 'bench/decode.ts',
    'bench/formats': 'bench/formats.ts',
    'bench/inference': 'bench/inference.ts',
    'bench/cai-worker': 'bench/cai-worker.ts',
    'bench/max-rss': 'bench/max-rss.ts',
    'bench/summarizer': 'bench/summarizer.ts',
    'bench/initializer': 'bench/initializer.ts',
    'bench/scale': 'bench/scale.ts',
    'bench/plot-results': 'bench/plot-results.ts',
  },
  outdir: 'dist',
  // The embedded servers and h5wasm stay in node_modules: they load files of their own at run time.
  external: [...common.external, 'dynalite', 's3rver', 'h5wasm'],
  // vega-canvas's Node build awaits an optional `canvas` import at top level, which a CommonJS
  // bundle cannot hold; its browser build finds no canvas in Node either, and Vega then renders
  // SVG with estimated text widths, which is all `cai report` asks of it.
  alias: { 'vega-canvas': './node_modules/vega-canvas/build/vega-canvas.browser.js' },
});
await chmod('dist/cli/cai.js', 0o755);
