import type { OnnxSignature } from './onnx-signature';

/**
 * What the inference artifact's ONNX Runtime (onnxruntime-node, bundled by scripts/build.mjs) loads,
 * so that a run's model it cannot load is refused at validation rather than failing every rank's
 * load three times. ONNX Runtime runs every opset from 7 up to its ONNX release's ("ONNX opset
 * support", https://onnxruntime.ai/docs/reference/compatibility.html); the limits below are the
 * packed release's own, as it states them when it refuses one past them ("Current official support
 * for domain ai.onnx is till opset 26", "max supported IR version: 13"):
 * tests/integration/onnx-signature.test.ts loads each limit and one past it in the packed runtime.
 * Operators are not checked: which ones have kernels is ONNX Runtime's own registry, which it does
 * not expose; a model within these opsets uses operators its opsets define.
 */
export const ONNX_RUNTIME = {
  version: '1.30.0',
  irVersion: 13,
  /** Highest opset per domain ('' is ai.onnx); a domain not here is no operator set of this runtime. */
  opsets: { '': 26, 'ai.onnx.ml': 5, 'com.microsoft': 1 } as Record<string, number>,
};

/** 'ai.onnx' is the default domain's other name. */
const domainOf = (domain: string) => (domain === 'ai.onnx' ? '' : domain);
const named = (domain: string) => domain || 'ai.onnx';

/** Why the packed ONNX Runtime cannot load a model of this signature, in one line; undefined when it can. */
export function runtimeMisfit(signature: OnnxSignature): string | undefined {
  const runtime = `the inference function's ONNX Runtime ${ONNX_RUNTIME.version}`;
  if (signature.irVersion > ONNX_RUNTIME.irVersion) {
    return `its IR version is ${signature.irVersion}; ${runtime} reads up to ${ONNX_RUNTIME.irVersion}: export it with an older onnx`;
  }
  for (const { domain, version } of signature.opsets) {
    const top = ONNX_RUNTIME.opsets[domainOf(domain)];
    if (top === undefined) {
      // A domain of the model's own functions is defined inside the model.
      if (signature.functionDomains.includes(domain)) continue;
      const known = Object.keys(ONNX_RUNTIME.opsets).map(named).join(', ');
      return `it imports operators of domain ${domain}, which ${runtime} does not have (its domains: ${known}): export it without custom operators`;
    }
    if (version > top) {
      return `it needs ${named(domainOf(domain))} opset ${version}; ${runtime} runs up to opset ${top}: export it with opset ${top} or lower`;
    }
  }
  return undefined;
}
