"""Writes small ONNX models with the onnx library for the signature and card tests.

usage: make_onnx_models.py OUT_DIR
Writes OUT_DIR/<name>.onnx and OUT_DIR/expected.json: for each model, its inputs and outputs as
onnx itself reads them (name, element type, shape) and its metadata, which readOnnxSignature must
match. Each graph is small and runs in onnxruntime; `weighty` carries 24 MB of weights the reader
must skip without reading.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
expected = {}

ELEMENT = {TensorProto.FLOAT: "float32", TensorProto.INT64: "int64", TensorProto.FLOAT16: "float16"}


def dims(value):
    shape = []
    for d in value.type.tensor_type.shape.dim:
        shape.append(d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param") else None)
    return shape


def save(name, graph, metadata=None, initializers_as_inputs=False):
    if initializers_as_inputs:
        # Older exporters list every weight among the graph's inputs as well.
        graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in graph.initializer)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for key, value in (metadata or {}).items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, f"{name}.onnx"))
    fed = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    expected[name] = {
        "inputs": [{"name": i.name, "dtype": ELEMENT[i.type.tensor_type.elem_type], "shape": dims(i)} for i in fed],
        "outputs": [{"name": o.name, "dtype": ELEMENT[o.type.tensor_type.elem_type], "shape": dims(o)} for o in model.graph.output],
        "metadata": {p.key: p.value for p in model.metadata_props},
    }


def value(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


REDSHIFT_CARD = {
    "name": "tiny-redshift",
    "version": "3",
    "inputs": {"image": {"tensor": 0, "dtype": "float32"}, "magnitude": {"tensor": 1, "dtype": "float32"}},
    "outputs": {"redshift": {"task": "regression", "label": 2}},
}

# redshift = mean(magnitude) * w, w an initializer (listed among the inputs, as old exports do); image unused but fed.
w = numpy_helper.from_array(np.array([0.01], dtype=np.float32), "w")
save(
    "redshift",
    helper.make_graph(
        [
            helper.make_node("ReduceMean", ["magnitude"], ["m"], axes=[1], keepdims=0),
            helper.make_node("ReduceMean", ["image"], ["im"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Mul", ["im", "w"], ["im0"]),
            helper.make_node("Sub", ["im0", "im0"], ["zero"]),
            helper.make_node("Mul", ["m", "w"], ["m1"]),
            helper.make_node("Add", ["m1", "zero"], ["redshift"]),
        ],
        "redshift",
        [value("image", TensorProto.FLOAT, ["batch", 5, 32, 32]), value("magnitude", TensorProto.FLOAT, ["batch", 5])],
        [value("redshift", TensorProto.FLOAT, ["batch"])],
        [w],
    ),
    metadata={"cai.card": json.dumps(REDSHIFT_CARD), "producer_note": "tests"},
    initializers_as_inputs=True,
)

# A three-class classifier of the image: logits = mean of bands 0..2 each.
save(
    "classifier",
    helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image"], ["per_band"], axes=[2, 3], keepdims=0),
            helper.make_node("Slice", ["per_band", "starts", "ends", "axes"], ["logits"]),
        ],
        "classifier",
        [value("image", TensorProto.FLOAT, [None, 5, 32, 32])],
        [value("logits", TensorProto.FLOAT, [None, 3])],
        [
            numpy_helper.from_array(np.array([0], dtype=np.int64), "starts"),
            numpy_helper.from_array(np.array([3], dtype=np.int64), "ends"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
        ],
    ),
)

# An int64 input, and an output CAI cannot read (int64).
save(
    "int64_output",
    helper.make_graph(
        [helper.make_node("Identity", ["ids"], ["ids_out"])],
        "int64_output",
        [value("ids", TensorProto.INT64, ["n", 4])],
        [value("ids_out", TensorProto.INT64, ["n", 4])],
    ),
)

# An int64 input (token ids, say) to a float32 score.
save(
    "int64_input",
    helper.make_graph(
        [
            helper.make_node("Cast", ["ids"], ["ids_f"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMean", ["ids_f"], ["score"], axes=[1], keepdims=0),
        ],
        "int64_input",
        [value("ids", TensorProto.INT64, ["n", 5])],
        [value("score", TensorProto.FLOAT, ["n"])],
    ),
)

# 24 MB of weights before the graph's inputs and outputs are declared: read by their lengths, never loaded.
big = numpy_helper.from_array(np.zeros((6, 1024, 1024), dtype=np.float32), "big")
save(
    "weighty",
    helper.make_graph(
        [
            helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
            helper.make_node("ReduceMean", ["magnitude"], ["m"], axes=[1], keepdims=0),
            helper.make_node("Add", ["m", "total"], ["score"]),
        ],
        "weighty",
        [value("magnitude", TensorProto.FLOAT, ["batch", 5])],
        [value("score", TensorProto.FLOAT, ["batch"])],
        [big],
    ),
    metadata={"cai.card": json.dumps({"inputs": {"magnitude": {"tensor": 1, "dtype": "float32"}}, "outputs": {"score": {"task": "score"}}})},
)

with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
print(json.dumps(sorted(expected)))
