"""Writes Parquet files with pyarrow for the Parquet reader's tests, and what pyarrow reads back.

usage: write_parquet.py OUT_DIR
Writes OUT_DIR/<name>.parquet and OUT_DIR/expected.json. For each file, expected.json names its row
groups' row counts and, for each column the reader should decode, its dtype, shape and the file
(OUT_DIR/<name>.<column>.bin) holding the values pyarrow reads, flattened, little-endian. Columns the
reader should refuse are listed with the words its message should hold.

usage: write_parquet.py OUT_DIR --small
Writes OUT_DIR/small.parquet only: a few rows in two row groups, for mutation fuzzing.

usage: write_parquet.py OUT_DIR --alternating
Writes OUT_DIR/alternating.parquet: a list column of 8 rows whose lengths alternate 3 and 7 (5 on
average, as its footer's counts show).

usage: write_parquet.py OUT_DIR --images ROWS
Writes OUT_DIR/images.parquet: one list<float32> column of 5*64*64 values a row (for timing), and
prints the seconds pyarrow takes to read it into a numpy array of [ROWS, 5*64*64].
"""
import json
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20260101)

ROWS = 100
ROW_GROUP = 16  # 7 row groups, the last of 4 rows
IMAGE = 5 * 16 * 16


def list_of(values, length, fixed):
    flat = pa.array(values.reshape(-1))
    if fixed:
        return pa.FixedSizeListArray.from_arrays(flat, length)
    offsets = pa.array(np.arange(0, len(values) * length + 1, length, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, flat)


def main_table():
    redshift = rng.random(ROWS) * 3
    mag = (rng.normal(size=(ROWS, 5)) + 20).astype(np.float32)
    images = rng.normal(size=(ROWS, IMAGE)).astype(np.float32)
    # A few constant rows, so some pages compress well and dictionaries appear.
    images[10:20] = 0.5
    ints = {
        "int8": rng.integers(-128, 128, ROWS, dtype=np.int8),
        "int16": rng.integers(-32768, 32768, ROWS, dtype=np.int16),
        "int32": rng.integers(-(2**31), 2**31, ROWS, dtype=np.int32),
        "int64": rng.integers(-(2**62), 2**62, ROWS, dtype=np.int64),
        "uint8": rng.integers(0, 256, ROWS, dtype=np.uint8),
        "uint16": rng.integers(0, 65536, ROWS, dtype=np.uint16),
        "uint32": rng.integers(0, 2**32, ROWS, dtype=np.uint32),
        "uint64": rng.integers(2**63, 2**64 - 1, ROWS, dtype=np.uint64),
    }
    flag = rng.random(ROWS) < 0.3
    lengths = rng.integers(3, 8, ROWS)
    lengths[0], lengths[1] = 3, 7
    ragged = pa.array([rng.random(n).astype(np.float32) for n in lengths], type=pa.list_(pa.float32()))
    nullable = redshift.copy().tolist()
    nullable[37] = None
    nullable_list = [list(m) for m in mag.tolist()]
    nullable_list[41] = None
    columns = {
        "redshift": pa.array(redshift),
        "mag": list_of(mag, 5, fixed=True),
        "images": list_of(images, IMAGE, fixed=False),
        "images_fixed": list_of(images, IMAGE, fixed=True),
        **{name: pa.array(v) for name, v in ints.items()},
        "flag": pa.array(flag),
        "name": pa.array([f"object-{i}" for i in range(ROWS)]),
        "blob": pa.array([bytes([i % 256]) * 3 for i in range(ROWS)], type=pa.binary()),
        "ragged": ragged,
        "with_nulls": pa.array(nullable, type=pa.float64()),
        "list_with_null": pa.array(nullable_list, type=pa.list_(pa.float32())),
        "nested": pa.array([[[float(i)] * 2] * 3 for i in range(ROWS)], type=pa.list_(pa.list_(pa.float32()))),
        "meta": pa.StructArray.from_arrays([pa.array(redshift * 2), pa.array([str(i) for i in range(ROWS)])], ["z", "label"]),
        "tags": pa.array([[("k", i)] for i in range(ROWS)], type=pa.map_(pa.string(), pa.int32())),
    }
    return pa.table(columns)


READABLE = {
    "redshift": ("float64", []),
    "mag": ("float32", [5]),
    "images": ("float32", [IMAGE]),
    "images_fixed": ("float32", [IMAGE]),
    "int8": ("int8", []),
    "int16": ("int16", []),
    "int32": ("int32", []),
    "int64": ("int64", []),
    "uint8": ("uint8", []),
    "uint16": ("uint16", []),
    "uint32": ("uint32", []),
    "uint64": ("uint64", []),
    "flag": ("bool", []),
    "meta.z": ("float64", []),
}
REFUSED = {
    "name": "string",
    "blob": "binary",
    "ragged": "ragged (lengths 3..7)",
    "with_nulls": "null at row 37",
    "list_with_null": "null at row 41",
    "nested": "list of lists",
    "meta": "struct",
    "tags": "map",
    "meta.label": "string",
}


def column_values(table, name):
    column = table.column(name.split(".")[0]).combine_chunks()
    if "." in name:
        column = column.field(name.split(".")[1])
    dtype, inner = READABLE[name]
    if inner:
        values = column.flatten().to_numpy(zero_copy_only=False)
    else:
        values = column.to_numpy(zero_copy_only=False)
    return values.astype("bool" if dtype == "bool" else dtype).reshape([len(column), *inner])


def record(expected, name, path):
    back = pq.read_table(path)
    meta = pq.ParquetFile(path).metadata
    entry = {
        "rowGroups": [meta.row_group(i).num_rows for i in range(meta.num_row_groups)],
        "columns": {},
        "refused": REFUSED,
    }
    for column, (dtype, inner) in READABLE.items():
        values = column_values(back, column)
        values.astype("<" + values.dtype.str[1:] if values.dtype.itemsize > 1 else values.dtype).tofile(
            os.path.join(out, f"{name}.{column}.bin")
        )
        chunks = [
            meta.row_group(g).column(c)
            for g in range(meta.num_row_groups)
            for c in range(meta.num_columns)
            if meta.row_group(g).column(c).path_in_schema in (column, f"{column}.list.element")
        ]
        entry["columns"][column] = {
            "dtype": dtype,
            "shape": list(values.shape),
            "chunks": [{"offset": c.dictionary_page_offset or c.data_page_offset, "bytes": c.total_compressed_size} for c in chunks],
        }
    expected[name] = entry


def write_all():
    table = main_table()
    expected = {}
    variants = {
        "snappy": dict(compression="snappy"),
        "gzip": dict(compression="gzip"),
        "zstd": dict(compression="zstd"),
        "brotli": dict(compression="brotli"),
        "lz4": dict(compression="lz4"),
        "uncompressed": dict(compression="none"),
        "v2_pages": dict(compression="zstd", data_page_version="2.0"),
        "plain": dict(compression="snappy", use_dictionary=False),
        "byte_stream_split": dict(compression="snappy", use_dictionary=False, use_byte_stream_split=["redshift", "mag.list.element", "images.list.element"]),
        "small_pages": dict(compression="snappy", data_page_size=4096),
    }
    for name, options in variants.items():
        path = os.path.join(out, f"{name}.parquet")
        pq.write_table(table, path, row_group_size=ROW_GROUP, **options)
        record(expected, name, path)
    # One row group holding every row.
    path = os.path.join(out, "one_group.parquet")
    pq.write_table(table, path, compression="snappy")
    record(expected, "one_group", path)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


def write_small():
    n = 6
    table = pa.table(
        {
            "redshift": pa.array(rng.random(n)),
            "mag": list_of(rng.normal(size=(n, 5)).astype(np.float32), 5, fixed=True),
            "id": pa.array(np.arange(n, dtype=np.int16)),
        }
    )
    pq.write_table(table, os.path.join(out, "small.parquet"), row_group_size=4, compression="snappy")


def write_images(rows):
    length = 5 * 64 * 64
    path = os.path.join(out, "images.parquet")
    values = rng.normal(size=(rows, length)).astype(np.float32)
    pq.write_table(pa.table({"images": list_of(values, length, fixed=False)}), path, row_group_size=128)
    start = time.perf_counter()
    column = pq.read_table(path, columns=["images"]).column("images").combine_chunks()
    array = column.flatten().to_numpy().reshape(rows, length)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "sum": float(array[:, :8].sum()), "bytes": os.path.getsize(path)}))


def write_alternating():
    rows = [np.arange(3 if i % 2 == 0 else 7, dtype=np.float32) for i in range(8)]
    table = pa.table({"alternating": pa.array(rows, type=pa.list_(pa.float32()))})
    pq.write_table(table, os.path.join(out, "alternating.parquet"))


if len(sys.argv) > 2 and sys.argv[2] == "--alternating":
    write_alternating()
elif len(sys.argv) > 2 and sys.argv[2] == "--small":
    write_small()
elif len(sys.argv) > 3 and sys.argv[2] == "--images":
    write_images(int(sys.argv[3]))
else:
    write_all()
