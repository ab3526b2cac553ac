"""Reads the survey files `cai synth --format` wrote with h5py, astropy and pyarrow and compares them
with the .npz (numpy): prints {"hdf5": same, "fits": same, "parquet": same, "samples": n}."""
import json
import os
import sys

import h5py
import numpy as np
import pyarrow.parquet as pq
from astropy.io import fits

folder = sys.argv[1]
npz = np.load(os.path.join(folder, "survey.npz"))
n = len(npz["redshift"])
with h5py.File(os.path.join(folder, "survey.h5")) as f:
    hdf5 = all(np.array_equal(f[k][:], npz[k]) for k in ("images", "magnitudes", "redshift"))
table = pq.read_table(os.path.join(folder, "survey.parquet"))
images = np.stack(table["images"].to_numpy(zero_copy_only=False)).reshape(-1, 5, 32, 32)
magnitudes = np.stack(table["magnitudes"].to_numpy(zero_copy_only=False))
parquet = (np.array_equal(images, npz["images"]) and np.array_equal(magnitudes, npz["magnitudes"])
           and np.array_equal(table["redshift"].to_numpy(), npz["redshift"]))
with fits.open(os.path.join(folder, "survey.fits")) as hdus:
    catalog = hdus["CATALOG"].data
    fits_same = (np.array_equal(hdus[0].data, npz["images"]) and np.array_equal(catalog["MAG"], npz["magnitudes"])
                 and np.array_equal(catalog["REDSHIFT"], npz["redshift"]))
print(json.dumps({"hdf5": bool(hdf5), "fits": bool(fits_same), "parquet": bool(parquet), "samples": int(n)}))
