"""Reads a FITS file with astropy, for the FITS writer's test: what astropy sees in it.

usage: read_fits.py FILE
Prints JSON: the file's verification by astropy ("ok" or its complaint), and for each HDU its
EXTNAME, and the shape, dtype and SHA-256 of its data (images) or of each column (tables), the
values made little-endian first so that they compare with the writer's typed arrays.
"""
import hashlib
import json
import sys

import numpy as np
from astropy.io import fits


def digest(array):
    array = np.ascontiguousarray(array)
    array = array.astype(array.dtype.newbyteorder("<"))
    return {"shape": list(array.shape), "dtype": str(array.dtype), "sha256": hashlib.sha256(array.tobytes()).hexdigest()}


with fits.open(sys.argv[1]) as hdus:
    try:
        hdus.verify("exception")
        verified = "ok"
    except Exception as error:  # astropy raises VerifyError and friends
        verified = str(error)
    described = []
    for hdu in hdus:
        entry = {"extname": hdu.header.get("EXTNAME"), "type": type(hdu).__name__}
        if isinstance(hdu, fits.BinTableHDU):
            entry["columns"] = {c.name: digest(hdu.data[c.name]) for c in hdu.columns}
        elif hdu.data is not None:
            entry["data"] = digest(hdu.data)
        described.append(entry)
print(json.dumps({"verified": verified, "hdus": described}))
