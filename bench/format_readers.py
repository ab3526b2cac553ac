"""The survey-formats benchmark's Python side (`npm run bench:formats`, bench/formats.ts).

usage:
  format_readers.py write <partition.pt> <out folder>
      Loads one partition written by `cai synth` (a TensorDataset: image float32 [N, 5, 32, 32],
      magnitude [N, 5], redshift [N]) and writes the same galaxies in each survey format by its
      reference library (torch.save, h5py, astropy, pyarrow, numpy), as surveys store them. Prints one
      JSON line: {"variants": [{"name", "format", "file", "card"}]}, each card feeding the default model.
  format_readers.py serve
      A long-lived reader (no start-up in the timings): answers "ready", then for each request line
      {"name", "file"} reads that variant's arrays into native float32 numpy arrays, every row, as
      the card feeds them (the uint8 variant made channel-first and scaled), and answers
      {"seconds", "checksum"}.
"""
import json
import os
import sys
import time

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from astropy.io import fits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "model"))
from cards import redshift_card  # noqa: E402
from torch.utils.data import TensorDataset

torch.serialization.add_safe_globals([TensorDataset])
torch.set_num_threads(1)

# Parquet rows per row group: about 20 MiB of images per group, several per 100 MiB file, as a
# catalogue with cutouts is written in pieces (pyarrow's default would make the whole file one group).
PARQUET_ROW_GROUP = 1024
# HDF5 chunks of 16 objects (h5py's usual size for cutouts; Galaxy10 DECaLS uses such chunks).
HDF5_CHUNK_ROWS = 16
SCALE_U8 = 1 / 255




def write(source, out):
    os.makedirs(out, exist_ok=True)
    image, magnitude, redshift = (t.numpy() for t in torch.load(source, weights_only=True).tensors)
    n = image.shape[0]
    named = redshift_card("image", "magnitude", "redshift")
    variants = []

    def add(name, fmt, file, variant_card):
        variants.append({"name": name, "format": fmt, "file": file, "card": variant_card})

    path = os.path.join(out, "torch-save.pt")
    torch.save(TensorDataset(*(torch.from_numpy(a) for a in (image, magnitude, redshift))), path)
    add("pt, torch.save", "torch", path, redshift_card(0, 1, 2))

    path = os.path.join(out, "contiguous.h5")
    with h5py.File(path, "w") as f:
        for key, data in (("image", image), ("magnitude", magnitude), ("redshift", redshift)):
            f.create_dataset(key, data=data)
    add("hdf5, contiguous", "hdf5", path, named)

    path = os.path.join(out, "gzip.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("image", data=image, chunks=(HDF5_CHUNK_ROWS, *image.shape[1:]), compression="gzip", shuffle=True)
        f.create_dataset("magnitude", data=magnitude, chunks=(min(n, 4096), 5), compression="gzip", shuffle=True)
        f.create_dataset("redshift", data=redshift, chunks=(min(n, 4096),), compression="gzip", shuffle=True)
    add("hdf5, chunked gzip+shuffle", "hdf5", path, named)

    # As surveys keep cutouts (Galaxy10 DECaLS): 8-bit, channel-last, gzip chunks; a float64 catalogue.
    scaled = np.clip(image / np.percentile(image, 99.9) * 255, 0, 255).round().astype(np.uint8)
    path = os.path.join(out, "survey-u8.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "images", data=np.ascontiguousarray(scaled.transpose(0, 2, 3, 1)), chunks=(HDF5_CHUNK_ROWS, 32, 32, 5), compression="gzip", shuffle=True
        )
        f.create_dataset("catalog/mag", data=magnitude.astype(">f8"))
        f.create_dataset("catalog/redshift", data=redshift.astype("f8"))
    add("hdf5, uint8 channel-last gzip", "hdf5", path, redshift_card("images", "catalog/mag", "catalog/redshift", channelsLast=True, scale=SCALE_U8))

    # FITS: the cube in the primary HDU (big-endian float32, as FITS is), the catalogue a binary table.
    path = os.path.join(out, "survey.fits")
    table = fits.BinTableHDU.from_columns(
        [fits.Column(name="MAG", format="5E", array=magnitude), fits.Column(name="REDSHIFT", format="E", array=redshift)], name="CATALOG"
    )
    fits.HDUList([fits.PrimaryHDU(image), table]).writeto(path, overwrite=True)
    add("fits, cube + bintable", "fits", path, redshift_card(0, "CATALOG/MAG", "CATALOG/REDSHIFT"))

    # Parquet: a catalogue with cutouts, each image a list<float> of 5120 values read as [5, 32, 32].
    arrow = pa.table(
        {
            "image": pa.ListArray.from_arrays(pa.array(np.arange(0, n * 5120 + 1, 5120, dtype=np.int32)), pa.array(image.reshape(-1))),
            "magnitude": pa.FixedSizeListArray.from_arrays(pa.array(magnitude.reshape(-1)), 5),
            "redshift": pa.array(redshift),
        }
    )
    for codec in ("snappy", "zstd"):
        path = os.path.join(out, f"{codec}.parquet")
        pq.write_table(arrow, path, compression=codec, row_group_size=PARQUET_ROW_GROUP)
        add(f"parquet, {codec}", "parquet", path, redshift_card("image", "magnitude", "redshift", shape=[5, 32, 32]))

    path = os.path.join(out, "stored.npz")
    np.savez(path, image=image, magnitude=magnitude, redshift=redshift)
    add("npz, stored (np.savez)", "numpy", path, named)
    path = os.path.join(out, "deflated.npz")
    np.savez_compressed(path, image=image, magnitude=magnitude, redshift=redshift)
    add("npz, deflated (np.savez_compressed)", "numpy", path, named)
    print(json.dumps({"variants": variants}), flush=True)


def as_image(stored, name):
    """An image array as the card feeds it: float32, and for the uint8 variant channel-first and scaled."""
    if name.startswith("hdf5, uint8"):
        return np.ascontiguousarray(stored.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(SCALE_U8)
    return np.ascontiguousarray(stored, dtype=np.float32)


def read_arrays(name, path):
    """The variant's image, magnitude and redshift as native float32 numpy arrays, every row."""
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    if name.startswith("pt"):
        return [t.numpy() for t in torch.load(path, weights_only=True).tensors]
    if name.startswith("hdf5"):
        with h5py.File(path, "r") as f:
            if name.startswith("hdf5, uint8"):
                return [as_image(f["images"][...], name), f32(f["catalog/mag"][...]), f32(f["catalog/redshift"][...])]
            return [as_image(f["image"][...], name), f32(f["magnitude"][...]), f32(f["redshift"][...])]
    if name.startswith("fits"):
        with fits.open(path) as hdus:
            catalog = hdus["CATALOG"].data
            return [f32(hdus[0].data), f32(catalog["MAG"]), f32(catalog["REDSHIFT"])]
    if name.startswith("parquet"):
        table = pq.read_table(path, columns=["image", "magnitude", "redshift"])
        flat = lambda column: np.concatenate([chunk.flatten().to_numpy() for chunk in column.chunks])  # noqa: E731
        n = table.num_rows
        return [f32(flat(table["image"])).reshape(n, 5, 32, 32), f32(flat(table["magnitude"])).reshape(n, 5), f32(table["redshift"].to_numpy())]
    if name.startswith("npz"):
        with np.load(path) as z:
            return [f32(z["image"]), f32(z["magnitude"]), f32(z["redshift"])]
    raise ValueError(f"no reader for {name}")


def serve():
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        start = time.perf_counter()
        arrays = read_arrays(request["name"], request["file"])
        checksum = float(sum(float(a.reshape(-1)[-1]) for a in arrays))  # every array is in memory by now
        seconds = time.perf_counter() - start
        rows = int(arrays[0].shape[0])
        del arrays
        print(json.dumps({"seconds": seconds, "checksum": checksum, "rows": rows}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["write"] and len(sys.argv) == 4:
        write(sys.argv[2], sys.argv[3])
    elif sys.argv[1:] == ["serve"]:
        serve()
    else:
        sys.exit(__doc__)
