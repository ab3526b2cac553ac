const { rmSync } = require('node:fs');

// Jest gives each test file its own realm, with its own typed-array constructors; onnxruntime-node's
// native side makes its arrays in Node's main realm, and its `instanceof Float32Array` checks then
// fail inside tests. Tests share the main realm's binary-data constructors instead.
const { TestEnvironment } = require('jest-environment-node');

const SHARED = [
  'ArrayBuffer',
  'SharedArrayBuffer',
  'DataView',
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
];

class MainRealmArrays extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }

  // The test file's temp folders (tests/helpers/temp.ts), removed once its last afterAll hook has
  // run: its stacks and servers are closed by then.
  async teardown() {
    for (const folder of this.global.__caiTempFolders ?? []) rmSync(folder, { recursive: true, force: true, maxRetries: 3 });
    await super.teardown();
  }
}

module.exports = MainRealmArrays;
