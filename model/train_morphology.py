"""Trains the morphology classifier on `cai synth` data: model/morphology.onnx + model/morphology.json.

  npm run model:train:morphology

Three classes, thirds of each synthetic galaxy's type: disk, lenticular, elliptical. The type sets
the galaxy's colours, profile (Sérsic index), axis ratios and size, so the network sees both the
cutout and the photometry: a small CNN over the asinh-stretched image beside an MLP over centred
magnitudes and the four colours. Input scaling is part of the exported graph, so callers feed raw
partitions. Reproducible: fixed dataset seeds, torch seed, thread count and step count.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from training import (  # noqa: E402
    HERE, MAGNITUDE_CENTRE, MAGNITUDE_SCALE, THREADS, asinh_scale, export_verified, synth, synth_command, write_provenance,
)

CLASSES = ("disk", "lenticular", "elliptical")
TRAIN = {"samples": 40000, "seed": 301}
HELD_OUT = {"samples": 10000, "seed": 302}
TORCH_SEED = 7
STEPS, BATCH, LR = 2000, 128, 3e-3


def conv(inputs: int, outputs: int) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU()]


class MorphologyNet(nn.Module):
    """image [B,5,32,32], magnitude [B,5] → logits [B,3]."""

    def __init__(self):
        super().__init__()
        # 32² → 16² → 8² → 4²: the flattened map keeps where the light is, i.e. the profile's shape.
        self.image = nn.Sequential(
            *conv(5, 16), nn.MaxPool2d(2), *conv(16, 32), nn.MaxPool2d(2), *conv(32, 64), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 4 * 4, 96), nn.ReLU(),
        )
        self.photometry = nn.Sequential(nn.Linear(9, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(96 + 64, 64), nn.ReLU(), nn.Linear(64, len(CLASSES)))

    def forward(self, image, magnitude):
        colours = magnitude[:, :-1] - magnitude[:, 1:]
        photometry = torch.cat(((magnitude - MAGNITUDE_CENTRE) / MAGNITUDE_SCALE, colours), dim=1)
        return self.head(torch.cat((self.image(asinh_scale(image)), self.photometry(photometry)), dim=1))


def logits_of(model: nn.Module, data: dict) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(data["images"][i : i + 512], data["magnitudes"][i : i + 512]) for i in range(0, len(data["images"]), 512)])


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    predicted = logits.argmax(1)
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)  # rows: true class, columns: predicted
    np.add.at(confusion, (labels.numpy(), predicted.numpy()), 1)
    per_class = {}
    for k, name in enumerate(CLASSES):
        tp = int(confusion[k, k])
        precision = tp / max(1, int(confusion[:, k].sum()))
        recall = tp / max(1, int(confusion[k, :].sum()))
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1, "support": int(confusion[k, :].sum())}
    return {
        "samples": int(len(labels)),
        "accuracy": float((predicted == labels).float().mean()),
        "logLoss": float(nn.functional.cross_entropy(logits, labels)),
        "perClass": per_class,
        "confusion": {"rows": "true class", "columns": "predicted class", "counts": confusion.tolist()},
    }


def main() -> None:
    steps = int(os.environ.get("TRAIN_STEPS", STEPS))
    torch.manual_seed(TORCH_SEED)
    torch.set_num_threads(THREADS)
    train = synth(**TRAIN)
    held_out = synth(**HELD_OUT)
    images, magnitudes, labels = train["images"], train["magnitudes"], train["morphology"]
    model = MorphologyNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=LR, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(TORCH_SEED)
    start = time.time()
    model.train()
    for step in range(steps):
        index = torch.randint(0, len(labels), (BATCH,), generator=generator)
        loss = nn.functional.cross_entropy(model(images[index], magnitudes[index]), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"step {step:5d}/{steps}  loss {loss.item():.4f}  {time.time() - start:6.0f} s", file=sys.stderr, flush=True)
    train_seconds = time.time() - start
    model.eval()
    metrics = classification_metrics(logits_of(model, held_out), held_out["morphology"])
    exported = export_verified(
        model, {"image": held_out["images"][:12], "magnitude": held_out["magnitudes"][:12]}, ["logits"],
        os.path.join(HERE, "morphology.onnx"), os.path.join(HERE, "morphology.card.json"),
    )
    provenance = {
        "model": "MorphologyNet (model/train_morphology.py): CNN over asinh(flux / sky noise) + MLP over magnitudes and colours",
        "classes": list(CLASSES),
        "labels": "cai synth morphology: type < 1/3 disk, < 2/3 lenticular, else elliptical",
        "parameters": sum(p.numel() for p in model.parameters()),
        **exported,
        "training": {
            "data": "cai synth " + " ".join(synth_command(**TRAIN)),
            "steps": steps, "batch": BATCH, "optimizer": "AdamW, one-cycle lr", "max_lr": LR, "loss": "cross entropy",
            "torch_seed": TORCH_SEED, "threads": THREADS, "seconds": round(train_seconds), "torch": torch.__version__,
        },
        "held_out": {"data": "cai synth " + " ".join(synth_command(**HELD_OUT)), **metrics},
    }
    write_provenance("morphology", provenance)
    print(f"held-out accuracy {metrics['accuracy']:.3f}, log-loss {metrics['logLoss']:.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
