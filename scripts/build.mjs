// Bundles the CLI, the local stack, the benchmarks and the three Lambda handlers with esbuild.
import { build } from 'esbuild';
import { chmod } from 'node:fs/promises';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  // Native addons load their binaries at run time; they stay outside the bundle.
  external: ['onnxruntime-node'],
};

await build({
  ...common,
  format: 'cjs',
  entryPoints: {
    'cli/cai': 'cli/cai.ts',
    'local/serve-s3': 'local/serve-s3.ts',
    'local/lambda-worker': 'local/lambda-worker.ts',
    'local/start': 'local/start.ts',
    'bench/decode': 'bench/decode.ts',
  },
  outdir: 'dist',
  // The embedded servers stay in node_modules: they load files of their own at run time.
  external: [...common.external, 'dynalite', 's3rver'],
});
await chmod('dist/cli/cai.js', 0o755);

// Handlers: ES modules (the inference handler creates its ONNX session with top-level await,
// during INIT). CommonJS dependencies inside still need `require`.
export const LAMBDAS = ['initializer', 'inference', 'summarizer'];
await build({
  ...common,
  format: 'esm',
  target: 'node22',
  entryPoints: Object.fromEntries(LAMBDAS.map((name) => [`functions/${name}/index`, `functions/${name}/handler.ts`])),
  outdir: 'dist',
  outExtension: { '.js': '.mjs' },
  banner: { js: "import { createRequire as __caiRequire } from 'node:module'; const require = __caiRequire(import.meta.url);" },
});
