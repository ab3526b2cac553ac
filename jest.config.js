/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: '<rootDir>/tests/environment.cjs',
  roots: ['<rootDir>/tests'],
  testMatch: ['**/*.test.ts'],
  transform: { '\\.[cm]?[jt]s$': '<rootDir>/scripts/jest-esbuild.cjs' },
  // p-limit and its dependency ship only ES modules.
  transformIgnorePatterns: ['/node_modules/(?!(p-limit|yocto-queue)/)'],
  setupFiles: ['<rootDir>/tests/setup-env.ts'],
  testTimeout: 120000,
};
