"""AstroMAE → ONNX for CAI's inference Lambdas.

  python model/export.py --checkpoint FILE --out MODEL.onnx [--heads 3] [--card CARD.json]
  python model/export.py --fixture-weights full|small --out MODEL.onnx

Inputs:  image float32[B,5,32,32], magnitude float32[B,5]  (B dynamic)
Output:  redshift float32[B]  (the model's [B,1] head, squeezed)
Metadata: cai.card, the model card (model/cards.py): --card's, or a generic AstroMAE redshift one.

The export is checked with onnxruntime against the PyTorch model before it is written; the file
is only written when the largest deviation is within --tolerance. Prints one JSON line last.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astromae import FULL, SMALL, AstroMAE, CheckpointError, parameter_count  # noqa: E402
from cards import CardError, embed_card, read_card  # noqa: E402
from checkpoint import load_model  # noqa: E402
from fixture_weights import rule_inputs, rule_state_dict  # noqa: E402

OPSET = 17
# The card of any graph this exporter writes, unless --card gives a more specific one.
REDSHIFT_CARD = {
    "name": "astromae-redshift",
    "description": "AstroMAE photometric redshift from cutout and magnitudes",
    "inputs": {"image": {"tensor": 0, "dtype": "float32"}, "magnitude": {"tensor": 1, "dtype": "float32"}},
    "outputs": {"redshift": {"task": "regression", "label": 2}},
    "batchSize": 256,
}


class RedshiftGraph(torch.nn.Module):
    """The exported graph: named inputs, a flat [B] output."""

    def __init__(self, model: AstroMAE):
        super().__init__()
        self.model = model

    def forward(self, image, magnitude):
        return self.model(image, magnitude)[:, 0]


def fixture_model(size: str) -> AstroMAE:
    model = AstroMAE(FULL if size == "full" else SMALL).eval()
    model.load_state_dict(rule_state_dict(model))
    return model


def export(model: AstroMAE, out: str, tolerance: float, card: dict | None = None) -> dict:
    graph = RedshiftGraph(model).eval()
    image, magnitude = rule_inputs(4)
    directory = os.path.dirname(os.path.abspath(out))
    os.makedirs(directory, exist_ok=True)
    handle, partial = tempfile.mkstemp(suffix=".onnx.partial", dir=directory)
    os.close(handle)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                (image, magnitude),
                partial,
                input_names=["image", "magnitude"],
                output_names=["redshift"],
                dynamic_axes={"image": {0: "batch"}, "magnitude": {0: "batch"}, "redshift": {0: "batch"}},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        import onnx

        exported = onnx.load(partial)
        embed_card(exported, card or REDSHIFT_CARD)
        onnx.save(exported, partial)
        deviation = verify(graph, partial)
        if deviation > tolerance:
            raise CheckpointError(f"the ONNX export deviates from PyTorch by {deviation:.3g} (> {tolerance:g}); nothing written")
        os.replace(partial, out)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return {"out": out, "bytes": os.path.getsize(out), "parameters": parameter_count(model), "max_abs_diff": deviation}


def verify(graph: torch.nn.Module, path: str) -> float:
    """Largest |ONNX − PyTorch| over fixture-rule inputs and odd batch sizes (the batch is dynamic)."""
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in (4, 1, 7):
        image, magnitude = rule_inputs(batch)
        with torch.no_grad():
            want = graph(image, magnitude).numpy()
        got = session.run(["redshift"], {"image": image.numpy(), "magnitude": magnitude.numpy()})[0]
        if got.shape != (batch,):
            raise CheckpointError(f"the ONNX export returns shape {got.shape} for a batch of {batch}")
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="state_dict (.pt, .safetensors) or a pickled whole model")
    source.add_argument("--fixture-weights", choices=["full", "small"], help="the parity fixture's rule weights")
    parser.add_argument("--out", required=True, help="where to write the .onnx file")
    parser.add_argument("--heads", type=int, default=3, help="attention heads (not recorded in a state_dict)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--card", help="the model card to embed (default: a generic AstroMAE redshift card)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    start = time.perf_counter()
    try:
        card = read_card(args.card) if args.card else None
        model = load_model(args.checkpoint, args.heads) if args.checkpoint else fixture_model(args.fixture_weights)
        report = export(model, args.out, args.tolerance, card)
    except (CheckpointError, CardError, FileNotFoundError) as error:
        print(f"model:export: {error}", file=sys.stderr)
        return 1
    report["seconds"] = round(time.perf_counter() - start, 1)
    print(f"exported {report['parameters']:,} parameters to {report['out']} ({report['bytes'] / 2**20:.1f} MiB); "
          f"onnxruntime vs PyTorch max |Δ| = {report['max_abs_diff']:.2e}", file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
