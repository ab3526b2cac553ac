"""Builds the models `npm run bench` runs, from one set of weights, and counts their work.

  python bench/prepare.py --weights model/bench-full.safetensors --out DIR

Writes DIR/fp32.onnx (the exporter's, verified against PyTorch) and DIR/int8.onnx (CAI's int8
recipe, model/quantize.py), and prints one JSON line: the files, parameters, and the GFLOP one
galaxy costs, counted from the fp32 graph (2 × multiply-adds of every MatMul, Gemm and Conv).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import onnx
import torch
from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "model"))
from astromae import parameter_count  # noqa: E402
from checkpoint import load_model  # noqa: E402
from export import export  # noqa: E402
from quantize import quantize_int8  # noqa: E402


def flops_per_sample(path: str) -> dict:
    """FLOPs of one sample by operator type, from the graph with its batch dimension set to 1."""
    model = onnx.load(path)
    for value in model.graph.input:
        value.type.tensor_type.shape.dim[0].dim_value = 1
    # Symbolic inference follows the Shape → Reshape chains that onnx's own inference leaves open.
    model = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in (*model.graph.value_info, *model.graph.input, *model.graph.output)}
    shapes.update({t.name: list(t.dims) for t in model.graph.initializer})
    counts: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Conv"):
            continue
        a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
        if not a or not out or 0 in out:
            raise SystemExit(f"bench: cannot read the shapes of {node.name} ({node.op_type}) to count its work")
        if node.op_type == "Conv":
            w = shapes[node.input[1]]
            macs = int(np.prod(out)) * int(np.prod(w[1:]))  # each output: Cin/groups × kh × kw
        elif node.op_type == "Gemm":
            trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
            macs = int(np.prod(out)) * (a[0] if trans_a else a[-1])
        else:
            macs = int(np.prod(out)) * a[-1]
        counts[node.op_type] = counts.get(node.op_type, 0) + 2 * macs
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = load_model(args.weights)
    os.makedirs(args.out, exist_ok=True)
    fp32 = os.path.join(args.out, "fp32.onnx")
    int8 = os.path.join(args.out, "int8.onnx")
    exported = export(model, fp32, tolerance=1e-4)
    quantize_int8(fp32, int8)
    flops = flops_per_sample(fp32)
    print(json.dumps({
        "fp32": fp32,
        "int8": int8,
        "parameters": parameter_count(model),
        "export_max_abs_diff": exported["max_abs_diff"],
        "gflop_per_sample": sum(flops.values()) / 1e9,
        "gflop_by_op": {k: v / 1e9 for k, v in sorted(flops.items())},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
