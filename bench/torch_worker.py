"""PyTorch's side of `npm run bench`, in one long-lived process (no start-up in any timing).

  python bench/torch_worker.py --weights model/bench-full.safetensors

The way users run AstroMAE today: torch.load of the partition, then PyTorch eager in inference
mode, batch by batch. Reads one JSON request per line on stdin, answers one JSON line each:
  {"op": "infer", "partition": P, "batch": B, "threads": T, "out": F?}
      → {"seconds", "samples"}; the predictions as raw float32 in F when given
  {"op": "peak"} → the fp32 matmul rate of one core, GFLOP/s, from torch and onnxruntime
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from torch.utils.data import TensorDataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "model"))
from checkpoint import load_model  # noqa: E402

torch.serialization.add_safe_globals([TensorDataset])


def infer(model: torch.nn.Module, partition: str, batch: int, threads: int, out: str | None) -> dict:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    images, magnitudes = torch.load(partition, weights_only=True).tensors[:2]
    predictions = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            predictions.append(model(images[i : i + batch], magnitudes[i : i + batch])[:, 0])
    predicted = torch.cat(predictions).numpy()
    seconds = time.perf_counter() - start
    if out:
        predicted.astype(np.float32).tofile(out)
    return {"seconds": seconds, "samples": len(predicted)}


def best_rate(run, flop: float, repeats: int = 5) -> float:
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return flop / best / 1e9


def matmul_peak() -> dict:
    """The best fp32 matmul rate one core reaches, in either library: large squares, and the
    shapes AstroMAE's blocks multiply (64 galaxies × 65 tokens by 192 → 576 and 768 → 192)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    torch.set_num_threads(1)
    shapes = [(2048, 2048, 2048), (1024, 1024, 1024), (4160, 192, 576), (4160, 768, 192)]
    rates: dict[str, float] = {}
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        rates[f"torch {m}x{k}x{n}"] = best_rate(lambda: torch.mm(a, b), 2 * m * k * n)
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["A", "B"], ["C"])], "matmul",
            [helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, k])],
            [helper.make_tensor_value_info("C", TensorProto.FLOAT, [m, n])],
            [helper.make_tensor("B", TensorProto.FLOAT, [k, n], b.numpy().ravel())],
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feed = {"A": a.numpy()}
        rates[f"onnxruntime {m}x{k}x{n}"] = best_rate(lambda: session.run(None, feed), 2 * m * k * n)
    best = max(rates, key=rates.get)
    return {"peak_gflops": rates[best], "peak_from": best, "rates": rates}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True)
    args = parser.parse_args()
    model = load_model(args.weights)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "infer":
            answer = infer(model, request["partition"], request["batch"], request["threads"], request.get("out"))
        elif request["op"] == "peak":
            answer = matmul_peak()
        else:
            answer = {"error": f"unknown op {request['op']}"}
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
