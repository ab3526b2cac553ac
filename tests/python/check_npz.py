"""Loads an .npz with numpy (never unpickling) and prints each array's dtype, shape and values as JSON.

usage: check_npz.py <file.npz>
Integers are printed as strings so that 64-bit values survive JSON; floats as float64 values.
"""

import json
import sys

import numpy as np

with np.load(sys.argv[1], allow_pickle=False) as npz:
    out = {}
    for name in npz.files:
        array = npz[name]
        values = array.ravel()
        listed = [str(v) for v in values.tolist()] if array.dtype.kind in "iub" else values.astype(np.float64).tolist()
        out[name] = {"dtype": array.dtype.str, "shape": list(array.shape), "values": listed}
    print(json.dumps(out))
