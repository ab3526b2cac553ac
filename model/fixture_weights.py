"""The deterministic weight and input rule of shared/fixtures/astromae-parity.json, so that any
implementation can rebuild the reference weights bit for bit and compare outputs."""
from __future__ import annotations

import zlib

import numpy as np
import torch


def lowbias32(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    x ^= x >> 16
    return x


def u(seed: int, count: int) -> np.ndarray:
    """u(seed, i) for i in [0, count): float64 in [0, 1)."""
    i = np.arange(count, dtype=np.uint64)
    return lowbias32((np.uint64(seed) + i) & 0xFFFFFFFF).astype(np.float64) / 2**32


def rule_tensor(name: str, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)  # num_batches_tracked: left at 0
    numel = int(np.prod(shape)) if shape else 1
    s = 2 * u(zlib.crc32(name.encode("utf-8")), numel) - 1
    if name.endswith("running_var"):
        v = 1 + 0.5 * s
    elif name.endswith("running_mean"):
        v = 0.1 * s
    elif name.endswith("bias"):
        v = 0.1 * s
    elif len(shape) == 1 and name.endswith("weight"):
        v = 1 + 0.1 * s
    else:
        v = s * np.sqrt(6 / (numel / shape[0]))
    return torch.from_numpy(v.reshape(shape)).to(torch.float32)


def rule_state_dict(model: torch.nn.Module) -> dict:
    """Rule weights for every entry of the model's state_dict; the shared convolution takes the
    values of its vis_inception.0 name, the one the forward pass uses (fixture notes)."""
    state = {name: rule_tensor(name, tuple(t.shape), t.dtype) for name, t in model.state_dict().items()}
    for suffix in ("weight", "bias"):
        state[f"inception_model.conv2d_init.{suffix}"] = state[f"inception_model.vis_inception.0.{suffix}"]
    return state


def rule_inputs(batch: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.from_numpy(3 * (2 * u(1, batch * 5 * 32 * 32) - 1)).reshape(batch, 5, 32, 32).float()
    magnitude = torch.from_numpy(18 + 2 * (2 * u(2, batch * 5) - 1)).reshape(batch, 5).float()
    return image, magnitude
