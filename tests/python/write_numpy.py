"""Writes .npy and .npz files with numpy, and what numpy reads back from them, for the NumPy reader's tests.

usage: write_numpy.py <dir> [--bench <MB>]

Each readable array's values are written as native little-endian C-order bytes (<file>.<array>.bin);
manifest.json lists every file: its arrays (name, dtype, shape) or the error the reader must give.
With --bench, writes bench.npy and bench.npz (float32 [N, 5, 64, 64], about <MB> each) instead.
"""

import json
import os
import sys
import time

import numpy as np

NAMES = {
    "float16": "float16", "float32": "float32", "float64": "float64",
    "int8": "int8", "int16": "int16", "int32": "int32", "int64": "int64",
    "uint8": "uint8", "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "bool": "bool",
}


class OpensAFile:
    """Unpickled, this creates a file: the sign that a reader executed a pickle."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def bench(folder, megabytes):
    rows = max(1, int(megabytes * 1e6 // (5 * 64 * 64 * 4)))
    images = np.random.default_rng(1).standard_normal((rows, 5, 64, 64), dtype=np.float32)
    np.save(os.path.join(folder, "bench.npy"), images)
    np.savez(os.path.join(folder, "bench.npz"), images=images)
    batch = 128
    timings = {}
    for name, load in (
        ("npy", lambda: np.load(os.path.join(folder, "bench.npy"), mmap_mode="r")),
        # np.load ignores mmap_mode for an .npz: the member is read whole on access, once here.
        ("npz", lambda: np.load(os.path.join(folder, "bench.npz"), mmap_mode="r")["images"]),
    ):
        began = time.perf_counter()
        array = load()
        total = 0
        for start in range(0, rows, batch):
            total += np.array(array[start:start + batch]).nbytes
        timings[name] = {"seconds": time.perf_counter() - began, "bytes": total}
    print(json.dumps({"rows": rows, "numpy": timings}))


def main():
    folder = sys.argv[1]
    if "--bench" in sys.argv:
        bench(folder, float(sys.argv[sys.argv.index("--bench") + 1]))
        return
    rng = np.random.default_rng(20261121)
    n = 7
    manifest = {}

    def expect(file, arrays):
        entries = []
        for name, array in arrays.items():
            native = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
            native.tofile(os.path.join(folder, f"{file}.{name}.bin"))
            entries.append({"name": name, "dtype": NAMES[array.dtype.name], "shape": list(array.shape)})
        manifest[file] = {"arrays": entries}

    def refuse(file, error, says):
        manifest[file] = {"error": error, "says": says}

    def save(file, array, **kwargs):
        np.save(os.path.join(folder, file), array, **kwargs)

    images = rng.standard_normal((n, 5, 16, 16), dtype=np.float32)
    save("images_f32.npy", images)
    expect("images_f32.npy", {"images_f32": images})

    big = rng.standard_normal((n, 3)).astype(">f8")
    save("big_endian_f8.npy", big)
    expect("big_endian_f8.npy", {"big_endian_f8": big})

    ints = rng.integers(-30000, 30000, size=(n, 4), dtype=np.int16)
    save("int16.npy", ints)
    expect("int16.npy", {"int16": ints})

    channel_last = rng.integers(0, 256, size=(n, 16, 16, 5), dtype=np.uint8)
    save("uint8_hwc.npy", channel_last)
    expect("uint8_hwc.npy", {"uint8_hwc": channel_last})

    for version in ((2, 0), (3, 0)):
        file = f"version{version[0]}.npy"
        with open(os.path.join(folder, file), "wb") as f:
            np.lib.format.write_array(f, images[:3], version=version)
        expect(file, {f"version{version[0]}": images[:3]})

    dtypes = {
        "f2": rng.standard_normal((n, 2)).astype("<f2"),
        "f4be": rng.standard_normal((n, 2)).astype(">f4"),
        "f2be": rng.standard_normal((n, 2)).astype(">f2"),
        "i1": rng.integers(-128, 128, size=(n, 2), dtype=np.int8),
        "i2be": rng.integers(-30000, 30000, size=(n, 2)).astype(">i2"),
        "i4": rng.integers(-2**31, 2**31, size=(n, 2), dtype=np.int32),
        "i4be": rng.integers(-2**31, 2**31, size=(n, 2)).astype(">i4"),
        "i8": rng.integers(-2**62, 2**62, size=(n, 2), dtype=np.int64),
        "i8be": rng.integers(-2**62, 2**62, size=(n, 2)).astype(">i8"),
        "u2": rng.integers(0, 2**16, size=(n, 2)).astype("<u2"),
        "u2be": rng.integers(0, 2**16, size=(n, 2)).astype(">u2"),
        "u4": rng.integers(0, 2**32, size=(n, 2)).astype("<u4"),
        "u8": rng.integers(0, 2**63, size=(n, 2)).astype("<u8") * 2 + 1,
        "u8be": rng.integers(0, 2**63, size=(n, 2)).astype(">u8"),
        "b1": rng.integers(0, 2, size=(n, 2)).astype(bool),
        "vector": rng.standard_normal(n).astype("<f4"),
        "empty": np.zeros((0, 3), dtype="<f4"),
    }
    np.savez(os.path.join(folder, "dtypes.npz"), **dtypes)
    expect("dtypes.npz", dtypes)

    catalogue = {
        "images": images,
        "redshift": rng.uniform(0, 3, n),
        "mag": rng.uniform(15, 25, (n, 5)).astype(np.float32),
    }
    np.savez(os.path.join(folder, "catalogue.npz"), **catalogue)
    expect("catalogue.npz", catalogue)

    # Random floats barely compress, so this entry spans many inflate steps; zeros compress 1000:1.
    compressed = {
        "images": rng.standard_normal((40, 5, 16, 16), dtype=np.float32),
        "redshift": rng.uniform(0, 3, 40),
        "zeros": np.zeros((40, 50000), dtype=np.float32),
    }
    np.savez_compressed(os.path.join(folder, "compressed.npz"), **compressed)
    expect("compressed.npz", compressed)

    small = {"images": images[:3], "redshift": catalogue["redshift"][:3]}
    np.savez_compressed(os.path.join(folder, "small_compressed.npz"), **small)
    expect("small_compressed.npz", small)

    save("fortran.npy", np.asfortranarray(images[:, :, :, 0]))
    refuse("fortran.npy", "UnsupportedTensorError", "Fortran-order")

    marker = os.path.join(folder, "pickle-was-executed")
    payload = np.array([OpensAFile(marker), None], dtype=object)
    save("object.npy", payload, allow_pickle=True)
    refuse("object.npy", "UnsupportedTensorError", "object array")
    np.savez(os.path.join(folder, "mixed.npz"), images=images, payload=payload)
    expect("mixed.npz", {"images": images})
    manifest["mixed.npz"]["refused"] = {"payload": "object array"}

    save("structured.npy", np.zeros(n, dtype=[("flux", "<f4"), ("id", "<i8")]))
    refuse("structured.npy", "UnsupportedTensorError", "structured")
    save("strings.npy", np.array(["a", "bc"]))
    refuse("strings.npy", "UnsupportedTensorError", "unicode string")
    save("complex.npy", np.zeros((n, 2), dtype=np.complex64))
    refuse("complex.npy", "UnsupportedTensorError", "complex")
    save("scalar.npy", np.float32(1.5))
    refuse("scalar.npy", "UnsupportedTensorError", "0-d array")

    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
