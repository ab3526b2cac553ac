/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: '<rootDir>/tests/environment.cjs',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  transform: { '\\.[cm]?[jt]s$': '<rootDir>/scripts/jest-esbuild.cjs' },
  // p-limit, hyparquet, h5wasm, Vega and their dependencies ship only ES modules.
  transformIgnorePatterns: [
    '/node_modules/(?!(p-limit|yocto-queue|hyparquet|hyparquet-compressors|hyparquet-writer|hysnappy|fzstd|h5wasm|vega|vega-[^/]+|d3-[^/]+|delaunator|robust-predicates|internmap|json-stringify-pretty-compact|topojson-client)/)',
  ],
  // vega-canvas's Node build awaits an import at top level (as scripts/build.mjs notes); its browser build finds no canvas either.
  moduleNameMapper: { '^vega-canvas$': '<rootDir>/node_modules/vega-canvas/build/vega-canvas.browser.js' },
  setupFiles: ['<rootDir>/tests/setup-env.ts'],
  testTimeout: 120000,
};
