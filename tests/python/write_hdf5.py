"""Writes HDF5 files with h5py for the HDF5 reader's tests, and what h5py reads back.

usage: write_hdf5.py OUT_DIR [big ROWS]
Writes OUT_DIR/<name>.h5 and OUT_DIR/expected.json: for each file, its datasets by path (h5py's visit
order) with dtype (native-endian numpy name), shape, chunks, and the .npy file beside holding the values
as h5py reads them (native-endian), or the reason the reader is expected to skip or refuse one.
With `big ROWS SIDE CHUNK_ROWS`, writes only OUT_DIR/big.h5: uint8 images [ROWS, SIDE, SIDE, 3] chunked
(CHUNK_ROWS, SIDE, SIDE, 3), gzip + shuffle, and ra float64 [ROWS] beside, for row-range reads and timing.
Also writes cycle.h5 (a group linking to its parent), deep.h5 (40 nested groups) and dense.h5 (a libver='latest'
group of 10 members, its links in a fractal heap), which the reader refuses.
"""
import json
import os
import sys

import h5py
import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20261121)


def smooth_images(n, h, w, c, noise=6):
    """Images that compress like sky cutouts: smooth gradients plus noise, not incompressible noise."""
    y, x = np.mgrid[0:h, 0:w]
    base = (np.sin(x / 7.0)[None, :, :, None] + np.cos(y / 5.0)[None, :, :, None]) * 40 + 100
    noise = rng.normal(0, noise, size=(n, h, w, c))
    return np.clip(base + noise + rng.integers(0, 50, size=(n, 1, 1, 1)), 0, 255).astype(np.uint8)


if len(sys.argv) > 2 and sys.argv[2] == "big":
    rows, side, chunk_rows = (int(a) for a in sys.argv[3:6])
    with h5py.File(os.path.join(out, "big.h5"), "w") as f:
        d = f.create_dataset("images", shape=(rows, side, side, 3), dtype="u1", chunks=(chunk_rows, side, side, 3), compression="gzip", shuffle=True)
        for at in range(0, rows, 1024):
            d[at : at + 1024] = smooth_images(min(1024, rows - at), side, side, 3, noise=1.5)
        f["ra"] = np.arange(rows, dtype=np.float64) / 7
        stored = []
        d.id.chunk_iter(lambda chunk: stored.append(chunk.size))
    print(json.dumps({"stored_bytes": sum(stored), "chunks": len(stored)}))
    sys.exit(0)

expected = {}


def record(name, build, **file_kwargs):
    path = os.path.join(out, f"{name}.h5")
    with h5py.File(path, "w", **file_kwargs) as f:
        build(f)
    entries = {}
    with h5py.File(path, "r") as f:

        def each(key, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            entry = {"shape": list(obj.shape), "chunks": list(obj.chunks) if obj.chunks else None}
            kind = obj.dtype.kind
            if obj.shape == () or kind not in "iufb":
                entry["skip"] = True
            elif obj.compression == "lzf":
                entry["refuse"] = "lzf"
            elif name == "latest" and key == "group/resizable":
                entry["refuse"] = "extensible array"
            else:
                values = obj[()]
                values = values.astype(values.dtype.newbyteorder("=")) if values.dtype.byteorder == ">" else values
                entry["dtype"] = "bool" if kind == "b" else str(values.dtype)
                npy = f"{name}.{key.replace('/', '.')}.npy"
                np.save(os.path.join(out, npy), values)
                entry["npy"] = npy
            entries[key] = entry

        f.visititems_links(lambda key, link: each(key, f[key]))
    expected[name] = entries


def galaxy(f):
    # Galaxy10 DECaLS' layout, small: channel-last uint8 images and 1-D labels.
    # The images are written last, so that the file ends in their chunks.
    n = 37
    f["ans"] = rng.integers(0, 10, size=n).astype(np.uint8)
    f["redshift"] = rng.random(n).astype(np.float64)
    f["ra"] = rng.random(n) * 360
    f["dec"] = rng.random(n) * 180 - 90
    f.create_dataset("images", data=smooth_images(n, 16, 16, 3), chunks=(5, 16, 16, 3), compression="gzip", shuffle=True)


record("galaxy", galaxy)


def kinds(f):
    f["contiguous_f32"] = rng.normal(size=(11, 4)).astype(np.float32)
    f["big_endian_f4"] = rng.normal(size=(9, 3)).astype(">f4")
    f["big_endian_f8"] = rng.normal(size=(9,)).astype(">f8")
    f["big_endian_i4"] = rng.integers(-(2**31), 2**31 - 1, size=(7, 2)).astype(">i4")
    f["int16"] = rng.integers(-30000, 30000, size=(13, 5)).astype(np.int16)
    f["uint16"] = rng.integers(0, 65535, size=(13,)).astype(np.uint16)
    f["int64"] = np.array([-(2**62), -1, 0, 2**40 + 3, 2**62], dtype=np.int64)
    f["uint64"] = np.array([0, 2**63 + 5, 2**64 - 1], dtype=np.uint64)
    f["int8"] = np.array([-128, -1, 0, 127], dtype=np.int8)
    f["float16"] = rng.normal(size=(6, 2)).astype(np.float16)
    f["flags"] = rng.random(10) > 0.5
    f["scalar"] = np.float32(3.5)
    f["names"] = np.array([b"alpha", b"beta", b"gamma"])
    f["vlen_names"] = ["one", "two"]
    f["pairs"] = np.array([(1, 2.0), (3, 4.0)], dtype=[("a", "i4"), ("b", "f8")])
    compact = np.arange(12, dtype=np.int32).reshape(6, 2)
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    plist.set_layout(h5py.h5d.COMPACT)
    space = h5py.h5s.create_simple(compact.shape)
    h5py.h5d.create(f.id, b"compact", h5py.h5t.STD_I32LE, space, dcpl=plist).write(h5py.h5s.ALL, h5py.h5s.ALL, compact)


record("kinds", kinds)


def chunking(f):
    # h5py's automatic chunks split every axis; 45 rows leave partial chunks at every edge.
    f.create_dataset("auto", data=smooth_images(45, 40, 36, 2), chunks=True, compression="gzip")
    f.create_dataset("explicit", data=rng.normal(size=(50, 7, 3)).astype(np.float32), chunks=(8, 3, 2), compression="gzip", shuffle=True)
    f.create_dataset("unfiltered", data=rng.integers(0, 1000, size=(30, 6)).astype(np.int32), chunks=(4, 4))
    f.create_dataset("fletcher", data=rng.normal(size=(20, 3)).astype(np.float64), chunks=(6, 3), fletcher32=True, compression="gzip")
    f.create_dataset("big_endian_chunks", data=rng.normal(size=(25, 4)).astype(">f8"), chunks=(7, 4), compression="gzip", shuffle=True)
    sparse = f.create_dataset("sparse", shape=(40, 3), dtype=np.float32, chunks=(10, 3))
    sparse[12:18] = 7.5  # chunks 0 and 2 of 4 are never written: they read as zeros
    f.create_dataset("lzf", data=np.arange(40, dtype=np.float32).reshape(20, 2), chunks=(5, 2), compression="lzf")


record("chunking", chunking)


def nested(f):
    f["top"] = np.arange(5, dtype=np.float32)
    g = f.create_group("cutouts")
    g["flux"] = rng.normal(size=(8, 2, 3)).astype(np.float32)
    deep = g.create_group("deeper").create_group("deepest")
    deep.create_dataset("ids", data=np.arange(9, dtype=np.int64), chunks=(4,), compression="gzip")
    many = f.create_group("many")
    for i in range(40):  # enough entries to split the group's B-tree
        many[f"m{i:02d}"] = np.full(3, i, dtype=np.int16)
    f["alias"] = f["top"]  # a second hard link to the same dataset


record("nested", nested)


def latest(f):
    f["contiguous"] = rng.normal(size=(10, 3)).astype(np.float32)
    f.create_dataset("chunked", data=smooth_images(23, 8, 8, 3), chunks=(4, 8, 8, 3), compression="gzip", shuffle=True)
    f.create_dataset("single_chunk", data=rng.normal(size=(12, 5)), chunks=(12, 5), compression="gzip")
    f.create_dataset("unfiltered", data=np.arange(60, dtype=np.int32).reshape(20, 3), chunks=(6, 2))
    # More chunks than one fixed-array page (1024) holds: the index is paged.
    f.create_dataset("paged", data=np.arange(4100, dtype=np.float32).reshape(2050, 2), chunks=(2, 2), compression="gzip")
    f.create_dataset("paged_plain", data=np.arange(2100, dtype=np.int16).reshape(2100, 1), chunks=(1, 1))
    g = f.create_group("group")
    g["inner"] = np.arange(4, dtype=np.uint8)
    # In a group of few members: a group of more than 8 keeps its links in a fractal heap (see dense.h5).
    # Chunks allocated when the dataset is made, unfiltered: the implicit index (chunks in grid order).
    implicit = np.arange(42, dtype=np.float64).reshape(14, 3)
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    plist.set_chunk((4, 2))
    plist.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    space = h5py.h5s.create_simple(implicit.shape)
    h5py.h5d.create(g.id, b"implicit", h5py.h5t.IEEE_F64LE, space, dcpl=plist).write(h5py.h5s.ALL, h5py.h5s.ALL, implicit)
    # A committed (named) datatype, shared by the dataset's header.
    g["float_type"] = np.dtype("<f4")
    g.create_dataset("committed", data=np.arange(6, dtype=np.float32), dtype=g["float_type"])
    # Resizable: an extensible array indexes its chunks, which the reader refuses.
    g.create_dataset("resizable", data=np.ones((5, 3), dtype=np.float32), maxshape=(None, 3), chunks=(2, 3))


record("latest", latest, libver="latest")


def userblock(f):
    f["values"] = np.arange(20, dtype=np.float64).reshape(10, 2)


record("userblock", userblock, userblock_size=1024)

with h5py.File(os.path.join(out, "dense.h5"), "w", libver="latest") as f:
    for i in range(10):
        f[f"d{i}"] = np.arange(3, dtype=np.float32)

with h5py.File(os.path.join(out, "cycle.h5"), "w") as f:
    f["a/values"] = np.arange(3, dtype=np.float32)
    f["a/b/up"] = f["a"]

with h5py.File(os.path.join(out, "deep.h5"), "w") as f:
    f["/".join(f"g{i}" for i in range(40)) + "/values"] = np.arange(3, dtype=np.float32)

with open(os.path.join(out, "expected.json"), "w") as handle:
    json.dump(expected, handle, indent=1)
