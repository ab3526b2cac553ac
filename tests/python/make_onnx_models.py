"""Writes small ONNX models with the onnx library for the signature and card tests.

usage: make_onnx_models.py OUT_DIR [LIMITS_JSON]
Writes OUT_DIR/<name>.onnx and OUT_DIR/expected.json: for each model, its inputs and outputs as
onnx itself reads them (name, element type, shape), its metadata, IR version, operator sets and
local functions' domains, which readOnnxSignature must match. Each graph is small and runs in
onnxruntime, but for `opset_too_new` and `unknown_domain`, which the inference function's ONNX
Runtime cannot load; `weighty` carries 24 MB of weights the reader must skip without reading.
With LIMITS_JSON ({"irVersion": n, "opsets": {domain: n}}: what the packed ONNX Runtime loads), it
also writes limit_<domain>_<version>.onnx at each limit and one past it, and limit_ir_<n>.onnx.
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


def save(name, graph, metadata=None, initializers_as_inputs=False, opsets=(("", 17),), functions=(), ir_version=8, check=True):
    if initializers_as_inputs:
        # Older exporters list every weight among the graph's inputs as well.
        graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in graph.initializer)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets], ir_version=ir_version, functions=list(functions)
    )
    for key, value in (metadata or {}).items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, f"{name}.onnx"))
    fed = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    expected[name] = {
        "inputs": [{"name": i.name, "dtype": ELEMENT[i.type.tensor_type.elem_type], "shape": dims(i)} for i in fed],
        "outputs": [{"name": o.name, "dtype": ELEMENT[o.type.tensor_type.elem_type], "shape": dims(o)} for o in model.graph.output],
        "metadata": {p.key: p.value for p in model.metadata_props},
        "irVersion": model.ir_version,
        "opsets": [{"domain": o.domain, "version": o.version} for o in model.opset_import],
        "functionDomains": list(dict.fromkeys(f.domain for f in model.functions)),
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


def magnitude_redshift(name, nodes=None, opset_nodes=None):
    """redshift = magnitude[:, 0] * 0.01, image fed but unused: a graph of operators unchanged since opset 13."""
    return helper.make_graph(
        nodes
        or [
            helper.make_node("Gather", ["magnitude", "first"], ["m0"], axis=1),
            helper.make_node("Mul", ["m0", "w"], ["redshift"]),
        ],
        name,
        [value("image", TensorProto.FLOAT, ["batch", 5, 32, 32]), value("magnitude", TensorProto.FLOAT, ["batch", 5])],
        [value("redshift", TensorProto.FLOAT, ["batch"])],
        [numpy_helper.from_array(np.array(0, dtype=np.int64), "first"), numpy_helper.from_array(np.array([0.01], dtype=np.float32), "w")],
    )


CARD = {"cai.card": json.dumps({**REDSHIFT_CARD, "name": "tiny-magnitude"})}

# Stamped with an opset newer than the packed ONNX Runtime's (ai.onnx 27: onnx knows it, ORT 1.30 stops at 26).
save("opset_too_new", magnitude_redshift("opset_too_new"), metadata=CARD, opsets=(("", 27),))

# An operator of a domain no runtime here has (a custom op): onnx checks nothing of it, ORT cannot load it.
save(
    "unknown_domain",
    magnitude_redshift(
        "unknown_domain",
        [
            helper.make_node("Gather", ["magnitude", "first"], ["m0"], axis=1),
            helper.make_node("Redshift", ["m0", "w"], ["redshift"], domain="cai.custom"),
        ],
    ),
    metadata=CARD,
    opsets=(("", 17), ("cai.custom", 1)),
)

# An operator the model defines itself (a local function, as PyTorch's dynamo exporter writes): its domain is the model's own.
scale = helper.make_function(
    "cai.local", "Scale", ["x", "k"], ["y"], [helper.make_node("Mul", ["x", "k"], ["y"])], [helper.make_opsetid("", 17)]
)
save(
    "local_function",
    magnitude_redshift(
        "local_function",
        [
            helper.make_node("Gather", ["magnitude", "first"], ["m0"], axis=1),
            helper.make_node("Scale", ["m0", "w"], ["redshift"], domain="cai.local"),
        ],
    ),
    metadata=CARD,
    opsets=(("", 17), ("cai.local", 1)),
    functions=[scale],
)

if len(sys.argv) > 2:
    # At each of the runtime's limits and one past it: what it loads and what it refuses.
    limits = json.loads(sys.argv[2])
    for domain, top in limits["opsets"].items():
        for version in (top, top + 1):
            opsets = (("", 17), (domain, version)) if domain else (("", version),)
            save(f"limit_{domain or 'ai.onnx'}_{version}", magnitude_redshift("limit"), opsets=opsets, check=False)
    for ir in (limits["irVersion"], limits["irVersion"] + 1):
        save(f"limit_ir_{ir}", magnitude_redshift("limit"), ir_version=ir, check=False)

with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
print(json.dumps(sorted(expected)))
