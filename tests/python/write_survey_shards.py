"""A survey as the Multimodal Universe keeps one: HDF5 shards under healpix=<n>/ folders, written by
h5py (uint8 channel-last cutouts chunked with gzip and shuffle, a catalogue beside them), one shard large
enough to be run as row ranges, and one truncated shard. Prints {shard: rows}.

usage: write_survey_shards.py <folder> <rows of the large shard>"""
import json
import os
import sys

import h5py
import numpy as np

folder, large = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(7)
shards = {"healpix=1/001-of-002.hdf5": large, "healpix=1/002-of-002.hdf5": 40, "healpix=2/001-of-001.hdf5": 30,
          "healpix=10/001-of-001.hdf5": 20}
for name, rows in shards.items():
    path = os.path.join(folder, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=rng.integers(0, 256, size=(rows, 32, 32, 5), dtype=np.uint8),
                         chunks=(16, 32, 32, 5), compression="gzip", shuffle=True)
        f.create_dataset("catalog/mag", data=rng.uniform(14, 24, size=(rows, 5)))
        f.create_dataset("catalog/redshift", data=rng.uniform(0, 0.6, size=rows))
# A shard cut short in its chunk data, as an interrupted copy leaves one.
whole = open(os.path.join(folder, "healpix=2/001-of-001.hdf5"), "rb").read()
os.makedirs(os.path.join(folder, "healpix=3"), exist_ok=True)
open(os.path.join(folder, "healpix=3/001-of-001.hdf5"), "wb").write(whole[: len(whole) * 2 // 3])
print(json.dumps(shards))
