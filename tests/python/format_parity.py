"""One survey sample written by each format's reference library (h5py, astropy, pyarrow, numpy), in
the ways those surveys store it, each with the card that feeds it to the default model, and the
model's predictions by onnxruntime in Python on the same values as the card makes of them.
Prints one JSON object: {format: {file, card, predictions}}.

usage: format_parity.py <out folder> <model.onnx> <samples>"""
import json
import os
import sys

import h5py
import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io import fits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "model"))
from cards import redshift_card  # noqa: E402

out, model_path, samples = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(27)
# A survey's cutouts as many keep them: 8-bit, channel-last (Galaxy10 DECaLS's layout), five bands.
images_u8 = rng.integers(0, 256, size=(samples, 32, 32, 5), dtype=np.uint8)
magnitudes = rng.uniform(14, 24, size=(samples, 5))
redshift = rng.uniform(0, 0.6, size=samples)
as_model = np.ascontiguousarray(images_u8.transpose(0, 3, 1, 2)).astype(np.float32) * np.float32(1 / 255)
mags32 = magnitudes.astype(np.float32)

session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])


def predict(image, magnitude):
    return session.run(["redshift"], {"image": image.astype(np.float32), "magnitude": magnitude.astype(np.float32)})[0].reshape(-1).tolist()




channel_last = {"channelsLast": True, "scale": 1 / 255}
result = {}

# HDF5 as Galaxy10 DECaLS: uint8 channel-last images chunked with gzip and shuffle, a group for the catalogue.
path = os.path.join(out, "survey.h5")
with h5py.File(path, "w") as f:
    f.create_dataset("images", data=images_u8, chunks=(16, 32, 32, 5), compression="gzip", shuffle=True)
    f.create_dataset("catalog/mag", data=magnitudes.astype(">f8"))
    f.create_dataset("catalog/redshift", data=redshift)
result["hdf5"] = {"file": path, "card": redshift_card("images", "catalog/mag", "catalog/redshift", **channel_last),
                  "predictions": predict(as_model, magnitudes)}

# FITS: a cube of float32 cutouts [N, 5, 32, 32] (big-endian, as FITS is) and a binary table catalogue.
path = os.path.join(out, "survey.fits")
cube = fits.PrimaryHDU(as_model)
table = fits.BinTableHDU.from_columns(
    [fits.Column(name="MAG", format="5E", array=mags32), fits.Column(name="REDSHIFT", format="D", array=redshift)], name="CATALOG")
fits.HDUList([cube, table]).writeto(path, overwrite=True)
result["fits"] = {"file": path, "card": redshift_card(0, "CATALOG/MAG", "CATALOG/REDSHIFT"), "predictions": predict(as_model, mags32)}

# Parquet as a catalogue with cutouts: images flattened into list<float> rows, magnitudes a fixed-size list, zstd, several row groups.
path = os.path.join(out, "survey.parquet")
flat = as_model.reshape(samples, -1)
table = pa.table({
    "images": pa.array(list(flat), type=pa.list_(pa.float32())),
    "mag": pa.FixedSizeListArray.from_arrays(pa.array(mags32.reshape(-1)), 5),
    "redshift": pa.array(redshift),
})
pq.write_table(table, path, compression="zstd", row_group_size=max(1, samples // 3))
result["parquet"] = {"file": path, "card": redshift_card("images", "mag", "redshift", shape=[5, 32, 32]), "predictions": predict(as_model, mags32)}

# NumPy: an .npz of images uint8 channel-last and big-endian float64 magnitudes.
path = os.path.join(out, "survey.npz")
np.savez(path, images=images_u8, mag=magnitudes.astype(">f8"), redshift=redshift)
result["numpy"] = {"file": path, "card": redshift_card("images", "mag", "redshift", **channel_last), "predictions": predict(as_model, magnitudes)}

print(json.dumps(result))
