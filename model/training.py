"""What train_morphology.py and train_anomaly.py share: `cai synth` data as dicts of tensors, an
ONNX export that carries its card and is checked against PyTorch before it is written, and the
oddity rule of synth.ts (to break held-out recall down by kind).
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import warnings

import numpy as np
import torch

from cards import embed_card, read_card

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OPSET = 17
THREADS = 2
# `cai synth` sky noise per band (u g r i z), nanomaggies per pixel: the natural softening of an
# asinh stretch, which makes sky noise about unit-sized in every band.
SKY_NOISE = (0.3, 0.08, 0.1, 0.15, 0.45)
MAGNITUDE_CENTRE, MAGNITUDE_SCALE = 18.0, 2.0


def synth_command(samples: int, seed: int, oddities: float = 0.0) -> list[str]:
    args = ["--samples", str(samples), "--seed", str(seed), "--layout", "dict"]
    return args + (["--oddities", str(oddities)] if oddities else [])


def synth(samples: int, seed: int, oddities: float = 0.0) -> dict[str, torch.Tensor]:
    """A `cai synth` dataset in one dict partition, loaded the safe way."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            ["node", os.path.join(ROOT, "dist", "cli", "cai.js"), "synth", *synth_command(samples, seed, oddities),
             "--size", "2GB", "--out", folder],
            check=True, stdout=subprocess.DEVNULL,
        )
        return torch.load(os.path.join(folder, "1.pt"), weights_only=True)


def asinh_scale(image: torch.Tensor) -> torch.Tensor:
    """asinh(flux / sky noise) per band, in ops the ONNX exporter knows."""
    x = image / torch.tensor(SKY_NOISE, dtype=image.dtype).view(1, -1, 1, 1)
    return torch.sign(x) * torch.log(x.abs() + torch.sqrt(x * x + 1))


def export_verified(graph: torch.nn.Module, inputs: dict[str, torch.Tensor], outputs: list[str], out: str,
                    card_path: str, tolerance: float = 1e-4) -> dict:
    """Exports `graph` to ONNX with a dynamic batch and the card embedded, and writes it only when
    onnxruntime agrees with PyTorch within `tolerance` on batches of 4, 1 and 7 of `inputs`."""
    import onnx
    import onnxruntime as ort

    graph = graph.eval()
    names = list(inputs)
    directory = os.path.dirname(os.path.abspath(out))
    handle, partial = tempfile.mkstemp(suffix=".onnx.partial", dir=directory)
    os.close(handle)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph, tuple(v[:4] for v in inputs.values()), partial,
                input_names=names, output_names=outputs,
                dynamic_axes={name: {0: "batch"} for name in names + outputs},
                opset_version=OPSET, do_constant_folding=True, dynamo=False,
            )
        model = onnx.load(partial)
        embed_card(model, read_card(card_path))
        onnx.checker.check_model(model)
        onnx.save(model, partial)
        session = ort.InferenceSession(partial, providers=["CPUExecutionProvider"])
        worst, start = 0.0, 0
        for batch in (4, 1, 7):
            feed = {name: value[start : start + batch] for name, value in inputs.items()}
            start += batch
            with torch.no_grad():
                want = graph(*feed.values())
            want = [want] if isinstance(want, torch.Tensor) else list(want)
            got = session.run(outputs, {k: v.numpy() for k, v in feed.items()})
            for g, w in zip(got, want):
                if g.shape != tuple(w.shape) or g.shape[0] != batch:
                    raise ValueError(f"the ONNX export returns shape {g.shape} for a batch of {batch}")
                worst = max(worst, float(np.abs(g - w.numpy()).max()))
        if worst > tolerance:
            raise ValueError(f"the ONNX export deviates from PyTorch by {worst:.3g} (> {tolerance:g}); nothing written")
        os.chmod(partial, 0o644)
        os.replace(partial, out)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return {"onnx_bytes": os.path.getsize(out), "onnx_max_abs_diff_vs_pytorch": worst}


def write_provenance(name: str, provenance: dict) -> None:
    with open(os.path.join(HERE, f"{name}.json"), "w") as f:
        json.dump(provenance, f, indent=2)
        f.write("\n")


# synth.ts's oddity rule, so that held-out recall can be told per kind; `oddity_kinds` checks it
# against the anomaly tensor synth wrote, so the two cannot drift apart unnoticed.
ODDITY_KINDS = ("trail", "spike", "dropout", "point")


def _lowbias32(x: int) -> int:
    x &= 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def oddity_kinds(seed: int, fraction: float, anomaly: torch.Tensor) -> list[str | None]:
    base = _lowbias32(seed ^ 0x0DD17E55)
    kinds = []
    for index in range(len(anomaly)):
        h = _lowbias32(base + index)
        kinds.append(ODDITY_KINDS[_lowbias32(h ^ 0x9E3779B9) % len(ODDITY_KINDS)] if h / 4294967296 < fraction else None)
    if [k is not None for k in kinds] != anomaly.bool().tolist():
        raise ValueError("the oddity rule here no longer matches synth.ts: the anomaly labels differ")
    return kinds
