"""Writes FITS files with astropy for the FITS reader's tests, and what astropy reads back.

usage: write_fits.py OUT_DIR
Writes OUT_DIR/survey.fits (every kind of HDU and column the reader decodes or refuses),
OUT_DIR/small.fits (a few KB, the fuzz test's seed) and OUT_DIR/expected.json: for each tensor
astropy reads, in file order, its name as CAI names it, its dtype, its shape and a little-endian
.npy file of its values (as astropy gives them: scaled, offset, shaped in numpy's order).
"""
import json
import os
import sys

import numpy as np
from astropy.io import fits

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20260301)
N = 7


def survey():
    cube = rng.normal(10, 3, size=(N, 5, 64, 64)).astype(np.float32)
    primary = fits.PrimaryHDU(cube)

    # int16 stored with BSCALE/BZERO: astropy quantizes the floats and reads back physical values. A
    # scale of 0.1 is not exact in float32, so reading in float64 and rounding once would differ.
    scaled = fits.ImageHDU(rng.normal(50, 20, size=(N, 3, 8)).astype(np.float32), name="SCALED")
    scaled.scale("int16", bscale=0.1, bzero=40.03)
    unsigned = fits.ImageHDU(rng.integers(0, 65536, size=(N, 4, 4)).astype(np.uint16), name="COUNTS")
    bytes_ = fits.ImageHDU(rng.integers(0, 256, size=(N, 6)).astype(np.uint8))  # no EXTNAME: "3"
    sci = fits.ImageHDU(rng.normal(0, 1e6, size=(N, 2, 3)), name="SCI")
    signed = fits.ImageHDU(rng.integers(-128, 128, size=(N, 5)).astype(np.int8), name="SIGNED")
    ids = fits.ImageHDU(rng.integers(-(2**40), 2**40, size=(N,)).astype(np.int64), name="IDS")
    wide = fits.ImageHDU(rng.integers(0, 2**32, size=(N, 2)).astype(np.uint32), name="WIDE")
    # BITPIX 32 with a scale: astropy gives float64.
    flux = fits.ImageHDU(rng.normal(0, 1e4, size=(N, 3)), name="FLUX32")
    flux.scale("int32", bscale=0.001, bzero=-5.0)

    cutouts = rng.normal(size=(N, 2, 3, 4)).astype(np.float32)
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="REDSHIFT", format="D", array=rng.uniform(0, 3, N)),
            fits.Column(name="MAG", format="5E", array=rng.normal(20, 2, (N, 5)).astype(np.float32)),
            fits.Column(name="NAME", format="8A", array=np.array([f"gal{i}" for i in range(N)])),
            fits.Column(name="CUTOUT", format="24E", dim="(4,3,2)", array=cutouts),
            fits.Column(name="SPECTRUM", format="PE()", array=[np.arange(i + 1, dtype=np.float32) for i in range(N)]),
            fits.Column(name="FLAG", format="L", array=rng.integers(0, 2, N).astype(bool)),
            fits.Column(name="COUNT", format="I", bzero=32768, array=rng.integers(0, 65536, N).astype(np.uint16)),
            fits.Column(name="ObjId", format="K", array=rng.integers(-(2**60), 2**60, N)),
            fits.Column(name="SCALED", format="J", array=rng.integers(-1000, 1000, N).astype(np.int32)),
            fits.Column(name="BITS", format="3X", array=np.zeros((N, 3), dtype=bool)),
            fits.Column(name="BAND", format="B", array=rng.integers(0, 256, N).astype(np.uint8)),
        ],
        name="CATALOG",
    )
    packed = fits.CompImageHDU(rng.integers(0, 1000, size=(N, 16, 16)).astype(np.int32), name="PACKED", compression_type="RICE_1")
    hdus = fits.HDUList([primary, scaled, unsigned, bytes_, sci, signed, ids, wide, flux, table, packed])
    path = os.path.join(out, "survey.fits")
    hdus.writeto(path, overwrite=True)
    # astropy 8 cannot write a column scaled to non-integers (its scale-back divides in place into
    # int32), so the raw integers are written and the scale added to the header after.
    with fits.open(path, mode="update") as written:
        header = written["CATALOG"].header
        n = [header[f"TTYPE{i}"] for i in range(1, header["TFIELDS"] + 1)].index("SCALED") + 1
        header.insert(f"TFORM{n}", (f"TSCAL{n}", 0.5), after=True)
        header.insert(f"TSCAL{n}", (f"TZERO{n}", 100), after=True)


def small():
    primary = fits.PrimaryHDU(rng.normal(size=(3, 2, 4, 4)).astype(np.float32))
    scaled = fits.ImageHDU(rng.normal(50, 20, size=(3, 4)).astype(np.float32), name="SCALED")
    scaled.scale("int16", bscale=0.5, bzero=10.0)
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="REDSHIFT", format="D", array=rng.uniform(0, 3, 3)),
            fits.Column(name="MAG", format="5E", dim="(5)", array=rng.normal(20, 2, (3, 5)).astype(np.float32)),
            fits.Column(name="COUNT", format="I", bzero=32768, array=np.array([0, 1, 65535], dtype=np.uint16)),
            fits.Column(name="FLAG", format="L", array=np.array([True, False, True])),
        ],
        name="CATALOG",
    )
    fits.HDUList([primary, scaled, table]).writeto(os.path.join(out, "small.fits"), overwrite=True)


def tables():
    """An empty primary, a table without EXTNAME, and two images sharing one EXTNAME."""
    table = fits.BinTableHDU.from_columns([fits.Column(name="redshift", format="D", array=rng.uniform(0, 3, 4))])
    twins = [fits.ImageHDU(rng.normal(size=(4, 2)).astype(np.float32), name="SCI", ver=v) for v in (1, 2)]
    fits.HDUList([fits.PrimaryHDU(), table, *twins]).writeto(os.path.join(out, "tables.fits"), overwrite=True)


def expected(path, stem):
    """Every tensor astropy reads from the file, named as CAI names it."""
    tensors = []
    with fits.open(path) as hdus:
        extnames = [hdu.header.get("EXTNAME") for hdu in hdus]
        for index, hdu in enumerate(hdus):
            extname = extnames[index]
            hdu_name = extname if extname and extnames.count(extname) == 1 else str(index)
            if isinstance(hdu, fits.CompImageHDU):
                continue
            if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU)):
                if hdu.data is not None:
                    tensors.append((hdu_name, np.asarray(hdu.data)))
            elif isinstance(hdu, fits.BinTableHDU):
                for column in hdu.columns:
                    if column.format.format in "LBIJKED" and not column.format.p_format and column.format.repeat:
                        tensors.append((f"{hdu_name}/{column.name}", np.asarray(hdu.data[column.name])))
    listed = []
    for i, (name, data) in enumerate(tensors):
        data = data.astype(data.dtype.newbyteorder("<"))
        file = f"{stem}-{i}.npy"
        np.save(os.path.join(out, file), data)
        listed.append({"name": name, "dtype": str(data.dtype), "shape": list(data.shape), "file": file})
    return listed


survey()
small()
tables()
json.dump(
    {stem: expected(os.path.join(out, f"{stem}.fits"), stem) for stem in ("survey", "small", "tables")},
    open(os.path.join(out, "expected.json"), "w"),
    indent=1,
)
