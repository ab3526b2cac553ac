"""Checkpoints in every form users have, built from the SMALL configuration with the fixture's
weight rule, for the exporter tests.

usage: make_checkpoints.py OUT_DIR
Writes state.pt, dp_state.pt (DataParallel state_dict: `module.` prefix), state.safetensors,
dp_model.pt (torch.save of a whole nn.DataParallel whose classes carry the published model's class
paths: blocks.model_vit_inception.ViT_Astro, timm's Block, ... made here without that code),
scaled.safetensors (float16, scale_inputs in its metadata), hostile_model.pt, mismatched.pt, inputs.pt (a labelled partition) and expected.json (PyTorch's
predictions for inputs.pt).
"""
import dataclasses
import json
import os
import sys
import types

import torch
from torch.utils.data import TensorDataset

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "model"))
from astromae import SMALL, AstroMAE, Attention, Block, ConvBlock, ImageMagnitudeModel, InceptionBlock, Mlp, PatchEmbed  # noqa: E402
from fixture_weights import rule_inputs, rule_state_dict  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
# A checkpoint as users have them: the published family, which takes inputs unscaled.
CONFIG = dataclasses.replace(SMALL, scale_inputs=False)
model = AstroMAE(CONFIG).eval()
model.load_state_dict(rule_state_dict(model))
state = model.state_dict()

torch.save(state, os.path.join(out, "state.pt"))
torch.save({f"module.{k}": v for k, v in state.items()}, os.path.join(out, "dp_state.pt"))
# safetensors refuses shared tensors: the two names of the shared convolution get their own copies.
save_file({k: v.clone().contiguous() for k, v in state.items()}, os.path.join(out, "state.safetensors"))

PUBLISHED = {
    AstroMAE: "blocks.model_vit_inception.ViT_Astro",
    ImageMagnitudeModel: "blocks.photoz.Input_Mix_Model",
    InceptionBlock: "blocks.photoz.InceptionBlock",
    ConvBlock: "blocks.photoz.ConvBlock",
    Block: "timm.models.vision_transformer.Block",
    Attention: "timm.models.vision_transformer.Attention",
    Mlp: "timm.models.layers.mlp.Mlp",
    PatchEmbed: "timm.models.layers.patch_embed.PatchEmbed",
}


def published_class(ours):
    module_name, name = PUBLISHED[ours].rsplit(".", 1)
    parts = module_name.split(".")
    for i in range(1, len(parts) + 1):  # pickle imports each package on the path
        package = sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        if i > 1:
            setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], package)
    module = sys.modules[module_name]
    if not hasattr(module, name):
        setattr(module, name, type(name, (ours,), {"__module__": module_name}))
    return getattr(module, name)


whole = AstroMAE(CONFIG).eval()
whole.load_state_dict(state)
del whole.__dict__["config"]  # a plain attribute the published class does not have
for m in whole.modules():
    if type(m) in PUBLISHED:
        m.__class__ = published_class(type(m))
torch.save(torch.nn.DataParallel(whole), os.path.join(out, "dp_model.pt"))


class RunsShell:
    def __reduce__(self):
        return (os.system, (f"touch {os.path.join(out, 'PWNED')}",))


torch.save({"model": RunsShell()}, os.path.join(out, "hostile_model.pt"))

bad = dict(state)
bad["blocks.1.attn.qkv.weight"] = torch.zeros(3, 3)
torch.save(bad, os.path.join(out, "mismatched.pt"))

image, magnitude = rule_inputs(9)
redshift = torch.linspace(0.05, 0.6, 9)
torch.save(TensorDataset(image, magnitude, redshift), os.path.join(out, "inputs.pt"))
# A model trained on CAI's scaled inputs, as `model:train -- --full` stores one: float16, with
# scale_inputs in the metadata and the shared convolution under one name.
scaled = AstroMAE(SMALL).eval()
scaled.load_state_dict({k: v.half().float() for k, v in rule_state_dict(scaled).items()})
save_file(
    {k: v.half().contiguous() for k, v in scaled.state_dict().items() if not k.startswith("inception_model.conv2d_init.")},
    os.path.join(out, "scaled.safetensors"),
    metadata={"scale_inputs": "true"},
)
with torch.no_grad():
    expected = model(image, magnitude)[:, 0]
    expected_scaled = scaled(image, magnitude)[:, 0]
json.dump(
    {"predictions": expected.tolist(), "scaled_predictions": expected_scaled.tolist()},
    open(os.path.join(out, "expected.json"), "w"),
)
