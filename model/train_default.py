"""Trains AstroMAE on `cai synth` data: CAI's quick-start model, or the full-size benchmark model.

  npm run model:train                  SMALL → model/default.onnx + model/default.json
  npm run model:train -- --full        FULL  → model/bench-full.safetensors + model/bench-full.json

(`npm run model:train` builds dist/ first: the data comes from `cai synth`.)

Reproducible: fixed dataset seeds, torch seed, thread count and step count. The quick-start model
is written as ONNX (verified against PyTorch by the exporter). The full-size model exists so that
`npm run bench` measures the published architecture with weights that predict redshifts; it is
stored as float16 safetensors (half the bytes; the benchmark runs both sides on the same float32
values). Both write a provenance JSON with held-out accuracy, and print the held-out accuracy.
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
import argparse  # noqa: E402
import dataclasses  # noqa: E402

from astromae import FULL, SMALL, AstroMAE, parameter_count  # noqa: E402
from cards import read_card  # noqa: E402
from export import export  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TRAIN = {"samples": 40000, "seed": 101}
HELD_OUT = {"samples": 5000, "seed": 202}
TORCH_SEED = 7
# The published architecture with CAI's input scaling (synth cutouts are in nanomaggies).
BENCH_FULL = dataclasses.replace(FULL, scale_inputs=True)
RECIPES = {
    "small": {"config": SMALL, "steps": 1200, "batch": 128, "lr": 2e-3, "out": "default"},
    # About 17 minutes on 2 cores: enough for redshift-scale outputs with real skill, not a converged model.
    "full": {"config": BENCH_FULL, "steps": 800, "batch": 64, "lr": 1e-3, "out": "bench-full"},
}


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="train the full-size benchmark model")
    args = parser.parse_args()
    recipe = RECIPES["full" if args.full else "small"]
    config, steps, batch, lr = recipe["config"], int(os.environ.get("TRAIN_STEPS", recipe["steps"])), recipe["batch"], recipe["lr"]
    torch.manual_seed(TORCH_SEED)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        train = synth(os.path.join(tmp, "train"), **TRAIN)
        held_out = synth(os.path.join(tmp, "held-out"), **HELD_OUT)
    images, magnitudes, z = train.tensors
    model = AstroMAE(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(TORCH_SEED)
    start = time.time()
    model.train()
    for step in range(steps):
        index = torch.randint(0, len(z), (batch,), generator=generator)
        loss = torch.nn.functional.smooth_l1_loss(model(images[index], magnitudes[index])[:, 0], z[index], beta=0.05)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step:5d}/{steps}  loss {loss.item():.5f}  {time.time() - start:6.0f} s", file=sys.stderr, flush=True)
    train_seconds = time.time() - start
    model.eval()
    if args.full:  # what is stored, and measured below, is the float16-rounded weights
        model.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    metrics = accuracy(predict(model, held_out), held_out.tensors[2].numpy())
    if args.full:
        from safetensors.torch import save_file

        weights = os.path.join(HERE, f"{recipe['out']}.safetensors")
        # One tensor per name: the shared convolution is stored once, under the name the forward pass uses.
        state = {k: v.half().contiguous() for k, v in model.state_dict().items() if not k.startswith("inception_model.conv2d_init.")}
        save_file(state, weights, metadata={"scale_inputs": "true"})
        stored = {"weights": os.path.basename(weights), "weights_bytes": os.path.getsize(weights), "dtype": "float16"}
    else:
        card = read_card(os.path.join(HERE, f"{recipe['out']}.card.json"))
        report = export(model, os.path.join(HERE, f"{recipe['out']}.onnx"), tolerance=1e-4, card=card)
        stored = {"onnx_bytes": report["bytes"], "onnx_max_abs_diff_vs_pytorch": report["max_abs_diff"]}
    provenance = {
        "model": f"AstroMAE, {'FULL' if args.full else 'SMALL'} configuration (model/astromae.py)",
        "config": config.__dict__ | {"inception": [list(stage) for stage in config.inception]},
        "parameters": parameter_count(model),
        **stored,
        "training": {
            "data": f"cai synth --samples {TRAIN['samples']} --seed {TRAIN['seed']}",
            "steps": steps, "batch": batch, "optimizer": "AdamW, one-cycle lr", "max_lr": lr,
            "loss": "smooth L1 (beta 0.05) on z", "torch_seed": TORCH_SEED, "threads": 2,
            "seconds": round(train_seconds),
            "torch": torch.__version__,
        },
        "held_out": {"data": f"cai synth --samples {HELD_OUT['samples']} --seed {HELD_OUT['seed']}", **metrics},
    }
    with open(os.path.join(HERE, f"{recipe['out']}.json"), "w") as f:
        json.dump(provenance, f, indent=2)
        f.write("\n")
    print(json.dumps(provenance["held_out"]))


if __name__ == "__main__":
    main()
