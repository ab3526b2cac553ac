"""AstroMAE in PyTorch, written for CAI: the architecture the prototype ran, with the same
state_dict names, so published weights load as they are, and with widths as parameters, so that a
narrower member of the same family can serve as the quick-start model.

image [B,5,32,32] ─ ViT encoder (patch 4, cls token, pre-norm blocks, mean-pooled patch tokens,
                    fc_norm, head) ─ vit_block MLP ─────────────────────────────────┐
      └─────────── Inception branch (1×1 conv, avg-pools, Inception blocks) ─ MLP ─┤─ concat ─ MLP ─ z
magnitude [B,5] ── 5-layer MLP ────────────────────────────────────────────────────┘
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
import torch.nn.functional as F


@dataclasses.dataclass(frozen=True)
class AstroMAEConfig:
    img_size: int = 32
    patch_size: int = 4
    in_chans: int = 5
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0
    layernorm_eps: float = 1e-6
    # Width of the ViT and Inception branch outputs (1096 in the published model).
    branch_width: int = 1096
    # Width of the magnitude MLP (5 → w → w → w → w → w).
    magnitude_width: int = 1024
    # Hidden width of the final head over the concatenation.
    head_width: int = 1024
    # Inception stages: (input channels, width of each branch).
    inception: tuple = ((32, 16), (64, 16), (64, 8), (32, 8), (32, 4))
    # Fixed input scaling in front of the network (no weights): images asinh-stretched from
    # nanomaggies, magnitudes centred. Off for the published model, which takes inputs as they are.
    scale_inputs: bool = False

    @property
    def patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    @property
    def inception_features(self) -> int:
        # The last block drops its 5×5 branch: 3 branches over a 4×4 map.
        return 3 * self.inception[-1][1] * (self.img_size // 8) ** 2


FULL = AstroMAEConfig()
# The quick-start model: the same family, narrower and shallower (see model/README.md).
SMALL = AstroMAEConfig(
    embed_dim=64, depth=4, num_heads=2, branch_width=256, magnitude_width=256, head_width=256, scale_inputs=True
)
IMAGE_SOFTENING = 0.1  # nanomaggies: about the sky noise per pixel of `cai synth` cutouts
MAGNITUDE_CENTRE, MAGNITUDE_SCALE = 18.0, 2.0


class PatchEmbed(nn.Module):
    def __init__(self, cfg: AstroMAEConfig):
        super().__init__()
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, patches, C]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        weights = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((weights @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: AstroMAEConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.layernorm_eps)
        self.attn = Attention(cfg.embed_dim, cfg.num_heads)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.layernorm_eps)
        self.mlp = Mlp(cfg.embed_dim, int(cfg.embed_dim * cfg.mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ConvBlock(nn.Module):
    """Convolution, batch norm (running statistics at inference), ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=kernel, padding=kernel // 2)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels: 1×1; 1×1→3×3; 1×1→5×5; 3×3 max-pool→1×1.
    A final block (`use_5x5=False`) keeps its 5×5 weights, as the published model does, but skips
    that branch."""

    def __init__(self, cin: int, width: int, use_5x5: bool = True):
        super().__init__()
        self.use_5x5 = use_5x5
        self.branch1 = ConvBlock(cin, width, 1)
        self.branch2 = nn.Sequential(ConvBlock(cin, width, 1), ConvBlock(width, width, 3))
        self.branch3 = nn.Sequential(ConvBlock(cin, width, 1), ConvBlock(width, width, 5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1), ConvBlock(cin, width, 1))

    def forward(self, x):
        branches = [self.branch1, self.branch2] + ([self.branch3] if self.use_5x5 else []) + [self.branch4]
        return torch.cat([branch(x) for branch in branches], dim=1)


class ImageMagnitudeModel(nn.Module):
    """The Inception branch over the image and the MLP over the magnitudes, side by side."""

    def __init__(self, cfg: AstroMAEConfig):
        super().__init__()
        first_channels = cfg.inception[0][0]
        # One convolution under two names, as in the published model's state_dict.
        self.conv2d_init = nn.Conv2d(cfg.in_chans, first_channels, kernel_size=1)
        w = cfg.magnitude_width
        self.magnitude_block = nn.Sequential(
            nn.Linear(cfg.in_chans, w), nn.ReLU(),
            nn.Linear(w, w), nn.ReLU(),
            nn.Linear(w, w), nn.ReLU(),
            nn.Linear(w, w), nn.ReLU(),
            nn.Linear(w, w),
        )
        stages = [InceptionBlock(cin, width, use_5x5=(i < len(cfg.inception) - 1)) for i, (cin, width) in enumerate(cfg.inception)]
        self.vis_inception = nn.Sequential(
            self.conv2d_init,
            nn.AvgPool2d(2, 2),  # 32 → 16
            stages[0],
            stages[1],
            nn.AvgPool2d(2),  # 16 → 8
            stages[2],
            stages[3],
            nn.AvgPool2d(2),  # 8 → 4
            stages[4],
            nn.Flatten(),
            nn.Linear(cfg.inception_features, cfg.branch_width),
            nn.ReLU(),
            nn.Linear(cfg.branch_width, cfg.branch_width),
        )

    def forward(self, image, magnitude):
        return torch.cat((self.vis_inception(image), self.magnitude_block(magnitude)), dim=1)


class AstroMAE(nn.Module):
    def __init__(self, cfg: AstroMAEConfig = FULL):
        super().__init__()
        self.config = cfg
        d = cfg.embed_dim
        # Registered in the published model's order, so state_dicts list names identically.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.patches + 1, d))
        self.fc_norm = nn.LayerNorm(d, eps=cfg.layernorm_eps)
        self.head = nn.Linear(d, d)
        self.inception_model = ImageMagnitudeModel(cfg)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.patch_embed = PatchEmbed(cfg)
        self.vit_block = nn.Sequential(nn.Linear(d, cfg.branch_width), nn.ReLU(), nn.Linear(cfg.branch_width, cfg.branch_width))
        self.concat_block = nn.Sequential(
            nn.Linear(2 * cfg.branch_width + cfg.magnitude_width, cfg.head_width), nn.ReLU(), nn.Linear(cfg.head_width, 1)
        )

    def forward(self, image, magnitude):
        if self.config.scale_inputs:
            x = image / IMAGE_SOFTENING
            image = torch.sign(x) * torch.log(x.abs() + torch.sqrt(x * x + 1))  # asinh, in ops ONNX export knows
            magnitude = (magnitude - MAGNITUDE_CENTRE) / MAGNITUDE_SCALE
        tokens = self.patch_embed(image)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1) + self.pos_embed
        for block in self.blocks:
            tokens = block(tokens)
        vit = self.vit_block(self.head(self.fc_norm(tokens[:, 1:, :].mean(dim=1))))
        return self.concat_block(torch.cat((vit, self.inception_model(image, magnitude)), dim=1))  # [B, 1]


def parameter_count(model: nn.Module) -> int:
    # The shared convolution counts once, as in the published figure.
    return sum(p.numel() for p in model.parameters())


def infer_config(state: dict, num_heads: int = 3) -> AstroMAEConfig:
    """The configuration a state_dict was made with (heads cannot be read off shapes: given)."""
    try:
        embed = state["pos_embed"].shape[2]
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        inception = []
        for index in (2, 3, 5, 6, 8):
            w = state[f"inception_model.vis_inception.{index}.branch1.conv.weight"]
            inception.append((w.shape[1], w.shape[0]))
        return AstroMAEConfig(
            img_size=int(math.isqrt(state["pos_embed"].shape[1] - 1)) * state["patch_embed.proj.weight"].shape[2],
            patch_size=state["patch_embed.proj.weight"].shape[2],
            in_chans=state["patch_embed.proj.weight"].shape[1],
            embed_dim=embed,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / embed,
            branch_width=state["vit_block.0.weight"].shape[0],
            magnitude_width=state["inception_model.magnitude_block.0.weight"].shape[0],
            head_width=state["concat_block.0.weight"].shape[0],
            inception=tuple(inception),
        )
    except (KeyError, IndexError, ValueError) as error:
        raise CheckpointError(f"not an AstroMAE checkpoint: cannot read its configuration ({error!r} missing or malformed)") from None


class CheckpointError(Exception):
    """A checkpoint that is unreadable, unsafe, or does not fit the model."""
