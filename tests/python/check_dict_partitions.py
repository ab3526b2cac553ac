"""Loads dict partitions with real PyTorch the safe way and compares them with TensorDataset ones.

usage: check_dict_partitions.py DICT_DIR DATASET_DIR
Both folders are `cai synth` output of the same seed. Prints one JSON object: the dict's keys,
dtypes and shapes, counts of each morphology class and of anomalies, and the largest |difference|
of images, magnitudes and redshift from the TensorDataset partitions.
"""
import json
import os
import sys

import torch
from torch.utils.data import TensorDataset


def load(folder):
    manifest = json.load(open(os.path.join(folder, "partitions.json")))
    return [torch.load(os.path.join(folder, p["key"]), weights_only=True) for p in manifest["partitions"]]


dicts = load(sys.argv[1])
assert all(type(p) is dict for p in dicts), "a partition is not a dict"
joined = {key: torch.cat([p[key] for p in dicts]) for key in dicts[0]}
torch.serialization.add_safe_globals([TensorDataset])
dataset = [torch.cat(tensors) for tensors in zip(*(p.tensors for p in load(sys.argv[2])))]
report = {
    "keys": list(joined),
    "dtypes": {k: str(t.dtype) for k, t in joined.items()},
    "shapes": {k: list(t.shape) for k, t in joined.items()},
    "max_abs_diff": {
        k: float((joined[k].double() - t.double()).abs().max()) for k, t in zip(("images", "magnitudes", "redshift"), dataset)
    },
    "morphology_counts": torch.bincount(joined["morphology"], minlength=3).tolist(),
}
if "anomaly" in joined:
    report["anomalies"] = int(joined["anomaly"].sum())
print(json.dumps(report))
