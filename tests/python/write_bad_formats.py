"""Bad and unsupported files of each format, written by the reference libraries (then cut or edited
where a library would not write them so): the inputs docs/data.md shows the line for.
Prints {name: path}."""
import json
import os
import struct
import sys

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io import fits

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
files = {}
rng = np.random.default_rng(3)
images = rng.random((20, 5, 8, 8), dtype=np.float32)


def path(name):
    files[name] = os.path.join(out, name)
    return files[name]


def cut(name, source):
    data = open(files[source], "rb").read()
    open(path(name), "wb").write(data[: len(data) // 2])


with h5py.File(path("good.h5"), "w") as f:
    f.create_dataset("images", data=images, chunks=(4, 5, 8, 8), compression="gzip")
cut("truncated.h5", "good.h5")
with h5py.File(path("lzf.h5"), "w") as f:
    f.create_dataset("images", data=images, chunks=(4, 5, 8, 8), compression="lzf")

fits.HDUList([fits.PrimaryHDU(images)]).writeto(path("good.fits"))
cut("truncated.fits", "good.fits")
fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(images[0, 0], name="SCI")]).writeto(path("tiled.fits"))
# A header claiming 2^60 objects: astropy writes the cube, then NAXIS4 is edited as a corrupt copy would have it.
data = bytearray(open(files["good.fits"], "rb").read())
at = data.index(b"NAXIS4  =")
data[at:at + 80] = b"NAXIS4  = %20d" % (2 ** 60) + b" " * 50
open(path("absurd.fits"), "wb").write(bytes(data))

table = pa.table({"images": pa.array(list(images.reshape(20, -1)), type=pa.list_(pa.float32())),
                  "ragged": pa.array([[1.0] * (1 + i % 3) for i in range(20)], type=pa.list_(pa.float32())),
                  "with_nulls": pa.array([None if i == 7 else float(i) for i in range(20)])})
pq.write_table(table, path("good.parquet"))
cut("truncated.parquet", "good.parquet")

np.save(path("good.npy"), images)
cut("truncated.npy", "good.npy")
np.save(path("objects.npy"), np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
np.save(path("fortran.npy"), np.asfortranarray(images[:, 0]))

open(path("notes.h5"), "w").write("These are my notes, not an HDF5 file.\n")
print(json.dumps(files))
