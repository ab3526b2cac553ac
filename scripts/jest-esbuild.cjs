// Jest transformer: TypeScript and ESM-only dependencies to CommonJS through esbuild (types are
// checked by `tsc --noEmit` in `npm test`, not here).
const { transformSync } = require('esbuild');

module.exports = {
  process(source, path) {
    const { code, map } = transformSync(source, {
      loader: path.endsWith('.ts') ? 'ts' : 'js',
      format: 'cjs',
      target: 'node20',
      sourcemap: 'external',
      sourcefile: path,
    });
    return { code, map };
  },
};
