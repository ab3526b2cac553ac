"""Times torch.load for the decode benchmark, in one long-lived process (no start-up in the timing).

Reads one path per line on stdin; answers one line per path: seconds for
torch.load(path, weights_only=True) with every tensor materialised.
"""
import sys
import time

import torch
from torch.utils.data import TensorDataset

torch.serialization.add_safe_globals([TensorDataset])
torch.set_num_threads(1)
print("ready", flush=True)
for line in sys.stdin:
    path = line.strip()
    start = time.perf_counter()
    data = torch.load(path, weights_only=True)
    checksum = sum(float(t.view(-1)[-1]) for t in data.tensors)  # every tensor is in memory by now
    elapsed = time.perf_counter() - start
    del data
    print(f"{elapsed:.6f} {checksum}", flush=True)
