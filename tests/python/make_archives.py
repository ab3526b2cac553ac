"""Writes tensor archives with real PyTorch for the decoder tests, and what torch reads back.

usage: make_archives.py OUT_DIR
Writes OUT_DIR/<name>.pt and OUT_DIR/expected.json: for each file, the tensors torch.load sees, in
the order the archive declares them (flattened values, as float64 lists), or the error expected.
"""
import json
import warnings
import os
import sys
from collections import OrderedDict

import torch
from torch.utils.data import TensorDataset

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
g = torch.Generator().manual_seed(1234)
expected = {}


def rand(*shape, dtype=torch.float32):
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


def record(name, obj, tensors, **kwargs):
    torch.save(obj, os.path.join(out, f"{name}.pt"), **kwargs)
    expected[name] = [
        {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "values": t.double().flatten().tolist()}
        for t in tensors
    ]


n = 6
images, mags, z = rand(n, 5, 32, 32), rand(n, 5) + 18, rand(n).abs()
record("dataset", TensorDataset(images, mags, z), [images, mags, z])

# Slices of larger tensors: each storage holds the whole parent, with an offset.
big_images, big_mags, big_z = rand(20, 5, 32, 32), rand(20, 5), rand(20)
sl = (big_images[7:11], big_mags[7:11], big_z[7:11])
record("slices", TensorDataset(*sl), sl)

# Non-contiguous views: strides that are not row-major.
strided_images = rand(5, 4, 32, 32).permute(1, 0, 2, 3)  # [4,5,32,32], stride of dim 0 is 1024
strided_mags = rand(5, 8)[:, ::2].t()  # [4,5], strides (2, 8)
record("strided", TensorDataset(strided_images, strided_mags), [strided_images, strided_mags])

f64_z = rand(n, dtype=torch.float64)
record("float64_labels", TensorDataset(images, mags, f64_z), [images, mags, f64_z])
record("unlabelled", TensorDataset(images[:3], mags[:3]), [images[:3], mags[:3]])
record("tuple", (images, mags, z), [images, mags, z])
record("dict", {"images": images, "magnitudes": mags, "redshift": z}, [images, mags, z])

kinds = OrderedDict(
    float32=rand(3, 2),
    float64=rand(3, 2, dtype=torch.float64),
    float16=rand(3, 2).half(),
    int64=torch.tensor([[-(2**40), 7], [0, 2**40]], dtype=torch.int64),
    int32=torch.tensor([-5, 0, 2**30], dtype=torch.int32),
    uint8=torch.tensor([0, 17, 255], dtype=torch.uint8),
    bool=torch.tensor([True, False, True]),
    scalar=torch.tensor(3.5),
)
record("dtypes", kinds, list(kinds.values()))

torch.save({"x": torch.ones(3, dtype=torch.bfloat16)}, os.path.join(out, "bfloat16.pt"))
expected["bfloat16"] = {"error": "bfloat16"}


class RunsShell:
    """A pickle that asks the loader to run a shell command."""

    def __reduce__(self):
        return (os.system, (f"touch {os.path.join(out, 'PWNED')}",))


torch.save({"payload": RunsShell(), "t": torch.zeros(2)}, os.path.join(out, "os_system.pt"))
expected["os_system"] = {"error": "system"}


class CallsEval:
    def __reduce__(self):
        return (eval, (f"open({os.path.join(out, 'PWNED')!r}, 'w')",))


torch.save([CallsEval()], os.path.join(out, "builtins_eval.pt"))
expected["builtins_eval"] = {"error": "eval"}


class Absurd:
    """A tensor record that claims 10**12 rows of a 10-element storage."""

    def __init__(self, storage):
        self.storage = storage

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, (self.storage, 0, (10**12, 5), (5, 1), False, OrderedDict()))




with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    small_storage = torch.zeros(10).storage()
torch.save(Absurd(small_storage), os.path.join(out, "absurd_shape.pt"))
expected["absurd_shape"] = {"error": "declares shape"}

torch.save(TensorDataset(images, mags, z), os.path.join(out, "legacy.pt"), _use_new_zipfile_serialization=False)
expected["legacy"] = {"error": "legacy"}

with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f)
