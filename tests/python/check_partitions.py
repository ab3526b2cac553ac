"""Loads partitions with real PyTorch the safe way and compares them with the file they came from.

usage: check_partitions.py PARTITION_DIR ORIGINAL.pt
Prints one JSON object: partition count, samples, largest |difference| per tensor.
"""
import json
import os
import sys

import torch
from torch.utils.data import TensorDataset

torch.serialization.add_safe_globals([TensorDataset])
folder, original = sys.argv[1], sys.argv[2]
manifest = json.load(open(os.path.join(folder, "partitions.json")))
parts = [torch.load(os.path.join(folder, p["key"]), weights_only=True) for p in manifest["partitions"]]
assert all(isinstance(p, TensorDataset) for p in parts), "a partition is not a TensorDataset"
joined = [torch.cat([p.tensors[i] for p in parts]) for i in range(len(parts[0].tensors))]
source = torch.load(original, weights_only=True)
print(json.dumps({
    "partitions": len(parts),
    "samples": int(joined[0].shape[0]),
    "sizes": [len(p) for p in parts],
    "dtypes": [str(t.dtype) for t in joined],
    "max_abs_diff": [float((a.double() - b.double()).abs().max()) for a, b in zip(joined, source.tensors)],
}))
