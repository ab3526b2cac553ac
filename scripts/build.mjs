// Bundles the CLI and benchmarks (and, as they come, the Lambda handlers) with esbuild.
import { build } from 'esbuild';
import { chmod } from 'node:fs/promises';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'linked',
  logLevel: 'warning',
  // Native addons load their binaries at run time; they stay outside the bundle.
  external: ['onnxruntime-node'],
};

await build({
  ...common,
  entryPoints: {
    'cli/cai': 'cli/cai.ts',
    'local/serve-s3': 'local/serve-s3.ts',
    'bench/decode': 'bench/decode.ts',
  },
  outdir: 'dist',
});
await chmod('dist/cli/cai.js', 0o755);
