"""Trains CAI's quick-start model: AstroMAE's SMALL configuration on `cai synth` data.

  npm run model:train            (builds dist/ first: the data comes from `cai synth`)

Reproducible: fixed dataset seeds, torch seed, thread count and step count. Writes
model/default.onnx (verified against PyTorch by the exporter) and model/default.json (provenance and
held-out accuracy), and prints the held-out accuracy.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import TensorDataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from astromae import SMALL, AstroMAE, parameter_count  # noqa: E402
from export import export  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TRAIN = {"samples": 40000, "seed": 101}
HELD_OUT = {"samples": 5000, "seed": 202}
STEPS = int(os.environ.get("TRAIN_STEPS", 1200))
BATCH = 128
LR = 2e-3
TORCH_SEED = 7


def synth(folder: str, samples: int, seed: int) -> TensorDataset:
    subprocess.run(
        ["node", os.path.join(ROOT, "dist", "cli", "cai.js"), "synth", "--samples", str(samples), "--size", "2GB",
         "--out", folder, "--seed", str(seed)],
        check=True, stdout=subprocess.DEVNULL,
    )
    torch.serialization.add_safe_globals([TensorDataset])
    return torch.load(os.path.join(folder, "1.pt"), weights_only=True)


def accuracy(pred: np.ndarray, z: np.ndarray) -> dict:
    d = pred - z
    s = d / (1 + z)
    return {
        "samples": int(len(z)),
        "mae": float(np.abs(d).mean()),
        "mse": float((d**2).mean()),
        "bias": float(s.mean()),
        "precision": float(1.48 * np.median(np.abs(s))),
        "r2": float(1 - (d**2).sum() / ((z - z.mean()) ** 2).sum()),
        "outlierFraction": float((np.abs(s) > 0.15).mean()),
    }


def predict(model, data: TensorDataset) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(data), 512):
            image, magnitude = data.tensors[0][i : i + 512], data.tensors[1][i : i + 512]
            out.append(model(image, magnitude)[:, 0])
    return torch.cat(out).numpy()


def main() -> None:
    torch.manual_seed(TORCH_SEED)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        train = synth(os.path.join(tmp, "train"), **TRAIN)
        held_out = synth(os.path.join(tmp, "held-out"), **HELD_OUT)
    images, magnitudes, z = train.tensors
    model = AstroMAE(SMALL)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=STEPS, pct_start=0.1)
    generator = torch.Generator().manual_seed(TORCH_SEED)
    start = time.time()
    model.train()
    for step in range(STEPS):
        index = torch.randint(0, len(z), (BATCH,), generator=generator)
        loss = torch.nn.functional.smooth_l1_loss(model(images[index], magnitudes[index])[:, 0], z[index], beta=0.05)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 250 == 0 or step == STEPS - 1:
            print(f"step {step:5d}/{STEPS}  loss {loss.item():.5f}  {time.time() - start:6.0f} s", file=sys.stderr, flush=True)
    train_seconds = time.time() - start
    metrics = accuracy(predict(model, held_out), held_out.tensors[2].numpy())
    report = export(model.eval(), os.path.join(HERE, "default.onnx"), tolerance=1e-4)
    provenance = {
        "model": "AstroMAE, SMALL configuration (model/astromae.py)",
        "config": SMALL.__dict__ | {"inception": [list(stage) for stage in SMALL.inception]},
        "parameters": parameter_count(model),
        "onnx_bytes": report["bytes"],
        "onnx_max_abs_diff_vs_pytorch": report["max_abs_diff"],
        "training": {
            "data": f"cai synth --samples {TRAIN['samples']} --seed {TRAIN['seed']}",
            "steps": STEPS, "batch": BATCH, "optimizer": "AdamW, one-cycle lr", "max_lr": LR,
            "loss": "smooth L1 (beta 0.05) on z", "torch_seed": TORCH_SEED, "threads": 2,
            "seconds": round(train_seconds),
            "torch": torch.__version__,
        },
        "held_out": {"data": f"cai synth --samples {HELD_OUT['samples']} --seed {HELD_OUT['seed']}", **metrics},
    }
    with open(os.path.join(HERE, "default.json"), "w") as f:
        json.dump(provenance, f, indent=2)
        f.write("\n")
    print(json.dumps(provenance["held_out"]))


if __name__ == "__main__":
    main()
