"""Loading AstroMAE weights from what users have: a state_dict (.pt or .safetensors, with or without
the `module.` prefix of a DataParallel save) or the published form, a torch.save of the whole
nn.DataParallel(ViT_Astro) object.

The whole-model pickle names the research code's classes. CAI does not import that code, and
never lets a pickle pick what runs: a restricted unpickler maps each allowlisted class path onto
CAI's own ModuleRecord, which only keeps the state it is given, and refuses every other global.
The weights are then read out of the records by module path."""
from __future__ import annotations

import dataclasses
import pickle
import types
from collections import OrderedDict

import torch

from astromae import AstroMAE, AstroMAEConfig, CheckpointError, infer_config

# Class paths a published whole-model checkpoint refers to (shared/fixtures: pickled_checkpoint_globals).
MODULE_CLASSES = {
    "blocks.model_vit_inception.ViT_Astro",
    "blocks.photoz.ConvBlock",
    "blocks.photoz.InceptionBlock",
    "blocks.photoz.Input_Mix_Model",
    "timm.models.layers.mlp.Mlp",
    "timm.models.layers.patch_embed.PatchEmbed",
    "timm.models.vision_transformer.Attention",
    "timm.models.vision_transformer.Block",
    "torch.nn.modules.activation.GELU",
    "torch.nn.modules.activation.ReLU",
    "torch.nn.modules.batchnorm.BatchNorm2d",
    "torch.nn.modules.container.Sequential",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.modules.conv.Conv2d",
    "torch.nn.modules.dropout.Dropout",
    "torch.nn.modules.flatten.Flatten",
    "torch.nn.modules.linear.Identity",
    "torch.nn.modules.linear.Linear",
    "torch.nn.modules.normalization.LayerNorm",
    "torch.nn.modules.pooling.AvgPool2d",
    "torch.nn.modules.pooling.MaxPool2d",
    "torch.nn.parallel.data_parallel.DataParallel",
}

STORAGE_CLASSES = {f"torch.{t}Storage" for t in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")}

# Plain values and tensor reconstruction: what torch's own weights_only loader also allows.
VALUE_GLOBALS = {
    "collections.OrderedDict": OrderedDict,
    "__builtin__.set": set,
    "builtins.set": set,
    "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
    "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
    "torch.device": torch.device,  # a module saved on a GPU machine records where it ran
}


class ModuleRecord:
    """Stands in for a module class of a pickled model: keeps the pickled state, runs nothing."""

    class_path = "?"

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {}


_records = {path: type(path.rsplit(".", 1)[1], (ModuleRecord,), {"class_path": path}) for path in MODULE_CLASSES}


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        path = f"{module}.{name}"
        if path in _records:
            return _records[path]
        if path in VALUE_GLOBALS:
            return VALUE_GLOBALS[path]
        if path in STORAGE_CLASSES:
            return getattr(torch, name)
        raise CheckpointError(f"refused pickle global {path}: not a class an AstroMAE checkpoint needs; nothing was executed")


# torch.load takes a pickle module; this one differs from `pickle` only in its Unpickler.
restricted_pickle = types.SimpleNamespace(Unpickler=RestrictedUnpickler, load=pickle.load, __name__="restricted_pickle")


def _tensors_of(record: ModuleRecord, prefix: str, out: dict) -> None:
    state = record.state
    for name, value in (state.get("_parameters") or {}).items():
        if value is not None:
            out[prefix + name] = value
    skipped = state.get("_non_persistent_buffers_set") or set()
    for name, value in (state.get("_buffers") or {}).items():
        if value is not None and name not in skipped:
            out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, ModuleRecord):
            _tensors_of(child, f"{prefix}{name}.", out)


def read_state_dict(path: str) -> dict:
    """Name → tensor from any supported checkpoint file, names as the bare model has them."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted_pickle)
        except CheckpointError:
            raise
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as error:
            raise CheckpointError(f"{path}: not a readable torch checkpoint ({error})") from None
        if isinstance(loaded, ModuleRecord):
            state = {}
            _tensors_of(loaded, "", state)
        elif isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
            state = loaded["state_dict"]
        elif isinstance(loaded, dict):
            state = loaded
        else:
            raise CheckpointError(f"{path}: holds a {type(loaded).__name__}, not a state_dict or a model")
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state_dict of tensors")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    # The published model shares one convolution under two names; the forward pass uses it as
    # vis_inception.0, so that name's values are the ones that count.
    for suffix in ("weight", "bias"):
        shared = f"inception_model.vis_inception.0.{suffix}"
        if shared in state:
            state[f"inception_model.conv2d_init.{suffix}"] = state[shared]
    return state


def stored_scale_inputs(path: str) -> bool:
    """Whether a safetensors checkpoint says it was trained on CAI's scaled inputs (its metadata)."""
    if not path.endswith(".safetensors"):
        return False
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return (f.metadata() or {}).get("scale_inputs") == "true"


def load_model(path: str, num_heads: int = 3, config: AstroMAEConfig | None = None) -> AstroMAE:
    """An eval-mode AstroMAE with a checkpoint's weights; a mismatch names the first bad entry."""
    state = read_state_dict(path)
    if config is None:
        config = dataclasses.replace(infer_config(state, num_heads), scale_inputs=stored_scale_inputs(path))
    model = AstroMAE(config).eval()
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise CheckpointError(f"{path}: does not fit AstroMAE: missing {name} {list(tensor.shape)}")
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{path}: does not fit AstroMAE: {name} has shape {list(state[name].shape)}, expected {list(tensor.shape)}"
            )
    for name in state:
        if name not in expected:
            raise CheckpointError(f"{path}: does not fit AstroMAE: unexpected entry {name}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model
