import { statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import type * as Ort from 'onnxruntime-node';
import { CaiError } from '../errors';

/** onnxruntime-node has no native binary for the CPU it is loaded on. */
export class OnnxRuntimeBinaryError extends CaiError {}

/** Lambda's names for the CPUs Node calls x64 and arm64. */
const LAMBDA_ARCHITECTURE: Record<string, string> = { x64: 'x86_64', arm64: 'arm64' };

/** The native binding onnxruntime-node loads for a platform and CPU (its dist/binding.js names it so). */
export const onnxRuntimeBinding = (packageDir: string, platform: string, arch: string) =>
  join(packageDir, 'bin', 'napi-v6', platform, arch, 'onnxruntime_binding.node');

/**
 * Refuses, in one line, a package without the binary for this platform and CPU: onnxruntime-node's
 * own error is a require stack. scripts/build.mjs packs both Linux binaries, so only a package
 * pruned or built otherwise gets here.
 */
export function checkOnnxRuntimeBinary(packageDir: string, platform: string = process.platform, arch: string = process.arch): void {
  const binding = onnxRuntimeBinding(packageDir, platform, arch);
  try {
    statSync(binding);
  } catch (error) {
    throw new OnnxRuntimeBinaryError(
      `this artifact has no ONNX Runtime binary for ${platform} ${LAMBDA_ARCHITECTURE[arch] ?? arch} (${relative(process.cwd(), binding)} is missing): ` +
        'build it again with sam build, which packs both x86_64 and arm64, then sam deploy',
      { cause: error },
    );
  }
}

/** onnxruntime-node, once its binary for this CPU is known to be there. */
export function loadOnnxRuntime(): typeof Ort {
  // The package's main is dist/index.js; its binaries sit under bin/ beside dist/.
  checkOnnxRuntimeBinary(join(dirname(require.resolve('onnxruntime-node')), '..'));
  // Required here rather than imported: an import would load the binary before the check runs.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('onnxruntime-node') as typeof Ort;
}
