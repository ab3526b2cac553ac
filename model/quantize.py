"""int8 dynamic quantization of an AstroMAE ONNX model, and what it changes.

  npm run model:quantize -- --in model/default.onnx --out model/default.int8.onnx

Weights of MatMul/Gemm become int8 (per channel); activations are quantized on the fly.
Convolutions stay float32: onnxruntime's ConvInteger is slower than its float32 convolution on the
CPUs measured (`npm run bench`), and the convolutions are a small part of AstroMAE's work. The
prediction change is measured against the fp32 model on the same inputs: `cai synth` galaxies
(seed 303), or with `--inputs fixture` the parity fixture's input rule (for models with the
fixture's rule weights, which were not made for galaxy fluxes). Prints a summary and one JSON line
last.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch.utils.data import TensorDataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "model"))
from fixture_weights import rule_inputs  # noqa: E402


def synthetic_inputs(samples: int) -> tuple[np.ndarray, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["node", os.path.join(ROOT, "dist", "cli", "cai.js"), "synth", "--samples", str(samples), "--size", "1GB",
             "--out", tmp, "--seed", "303"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        torch.serialization.add_safe_globals([TensorDataset])
        data = torch.load(os.path.join(tmp, "1.pt"), weights_only=True)
    return data.tensors[0].numpy(), data.tensors[1].numpy()


def run(path: str, image: np.ndarray, magnitude: np.ndarray, batch: int = 256) -> tuple[np.ndarray, float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    out = []
    start = time.perf_counter()
    for i in range(0, len(image), batch):
        out.append(session.run(["redshift"], {"image": image[i : i + batch], "magnitude": magnitude[i : i + batch]})[0])
    return np.concatenate(out), time.perf_counter() - start


def quantize_int8(source: str, out: str) -> None:
    """CAI's int8 recipe (the one `npm run bench` measures)."""
    quantize_dynamic(source, out, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul", "Gemm"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in", dest="source", required=True, help="fp32 AstroMAE .onnx")
    parser.add_argument("--out", required=True, help="where to write the int8 .onnx")
    parser.add_argument("--samples", type=int, default=1024, help="objects to measure the change on")
    parser.add_argument("--inputs", choices=["synth", "fixture"], default="synth")
    args = parser.parse_args()
    if not os.path.exists(args.source):
        print(f"model:quantize: no such model: {args.source}", file=sys.stderr)
        return 1
    quantize_int8(args.source, args.out)
    if args.inputs == "synth":
        image, magnitude = synthetic_inputs(args.samples)
    else:
        image, magnitude = (t.numpy() for t in rule_inputs(args.samples))
    fp32, fp32_seconds = run(args.source, image, magnitude)
    int8, int8_seconds = run(args.out, image, magnitude)
    delta = np.abs(int8 - fp32)
    report = {
        "out": args.out,
        "bytes_fp32": os.path.getsize(args.source),
        "bytes_int8": os.path.getsize(args.out),
        "inputs": args.inputs,
        "samples": int(len(delta)),
        "median_abs_dz": float(np.median(delta)),
        "p99_abs_dz": float(np.quantile(delta, 0.99)),
        "max_abs_dz": float(delta.max()),
        "speedup_1_thread": round(fp32_seconds / int8_seconds, 2),
    }
    print(f"int8 model {args.out}: {report['bytes_int8'] / 2**20:.1f} MiB (fp32 {report['bytes_fp32'] / 2**20:.1f} MiB); "
          f"|Δz| vs fp32 over {report['samples']} {args.inputs} inputs: median {report['median_abs_dz']:.2e}, "
          f"p99 {report['p99_abs_dz']:.2e}, max {report['max_abs_dz']:.2e}; {report['speedup_1_thread']}× faster on 1 thread",
          file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
