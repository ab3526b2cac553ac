"""Writes a tiny ONNX model with a classification and a score output, for the report's test.

usage: make_task_model.py OUT.onnx WEIGHTS_JSON
WEIGHTS_JSON: {"W": 5x3 matrix, "b": 3 values}. The model takes image [N, 5, 32, 32] and magnitude
[N, 5] (CAI's partitions) and gives
  kind   = magnitude @ W + b                 (logits over 3 classes)
  oddity = mean of the image's pixels        (a score: a bright trail across an image raises it)
"""
import json
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out, weights = sys.argv[1], json.loads(sys.argv[2])
W = numpy_helper.from_array(np.array(weights["W"], dtype=np.float32), "W")
b = numpy_helper.from_array(np.array(weights["b"], dtype=np.float32), "b")

graph = helper.make_graph(
    [
        helper.make_node("MatMul", ["magnitude", "W"], ["scaled"]),
        helper.make_node("Add", ["scaled", "b"], ["kind"]),
        helper.make_node("ReduceMean", ["image"], ["oddity"], axes=[1, 2, 3], keepdims=0),
    ],
    "report_tasks",
    [
        helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 5, 32, 32]),
        helper.make_tensor_value_info("magnitude", TensorProto.FLOAT, ["N", 5]),
    ],
    [
        helper.make_tensor_value_info("kind", TensorProto.FLOAT, ["N", 3]),
        helper.make_tensor_value_info("oddity", TensorProto.FLOAT, ["N"]),
    ],
    initializer=[W, b],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
onnx.checker.check_model(model)
onnx.save(model, out)
