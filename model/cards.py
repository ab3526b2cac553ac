"""Model cards: what a CAI model reads from a partition and what its outputs mean.

  python model/cards.py MODEL.onnx CARD.json      check the card against the graph, embed it

A card (`model/<name>.card.json`) names each ONNX graph input with the partition tensor it takes
(by position in a TensorDataset, by key in a dict partition) and the dtype the graph wants, and
each graph output with its task: `regression` (one value per object), `classification` (class
names, and whether the output is logits or probabilities) or `score` (one number per object, high
= unusual), each with an optional label tensor to evaluate against. The card is also embedded in
the ONNX file's metadata under `cai.card`, so that a model file alone says how to run it.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile

CARD_KEY = "cai.card"
TASKS = ("regression", "classification", "score")
# ONNX TensorProto element types, as card dtypes name them.
ONNX_DTYPES = {1: "float32", 2: "uint8", 6: "int32", 7: "int64", 10: "float16", 11: "float64"}


class CardError(ValueError):
    pass


def redshift_card(image, magnitude, label, **image_options) -> dict:
    """A card feeding the default redshift model (AstroMAE) from the arrays a survey file names, in
    its own terms (a dataset path, a column, an HDU, an array name); `image_options` are the input's
    transforms (channelsLast, scale, offset, shape)."""
    return {
        "inputs": {
            "image": {"tensor": image, "dtype": "float32", **image_options},
            "magnitude": {"tensor": magnitude, "dtype": "float32"},
        },
        "outputs": {"redshift": {"task": "regression", "label": label}},
    }


def check_card(card: dict, model=None) -> None:
    """Raises CardError naming the first thing wrong with the card, or with it against the graph."""
    for key in ("inputs", "outputs"):
        if not isinstance(card.get(key), dict) or not card[key]:
            raise CardError(f"a card needs a non-empty object `{key}`")
    for name, spec in card["inputs"].items():
        if not isinstance(spec.get("tensor"), (int, str)) or isinstance(spec.get("tensor"), bool):
            raise CardError(f"input {name}: `tensor` is a position (integer) or a key (string)")
        if spec.get("dtype") not in ONNX_DTYPES.values():
            raise CardError(f"input {name}: dtype {spec.get('dtype')!r} is not one of {', '.join(ONNX_DTYPES.values())}")
    for name, spec in card["outputs"].items():
        if spec.get("task") not in TASKS:
            raise CardError(f"output {name}: task {spec.get('task')!r} is not one of {', '.join(TASKS)}")
        if spec["task"] == "classification":
            if not isinstance(spec.get("classes"), list) or len(spec["classes"]) < 2:
                raise CardError(f"output {name}: a classification needs `classes`, two or more names")
            if spec.get("scores") not in ("logits", "probabilities"):
                raise CardError(f"output {name}: `scores` is \"logits\" or \"probabilities\"")
    if "batchSize" in card and not (isinstance(card["batchSize"], int) and card["batchSize"] > 0):
        raise CardError("batchSize is a positive integer")
    if model is None:
        return
    graph_inputs = {i.name: i for i in model.graph.input}
    graph_outputs = {o.name: o for o in model.graph.output}
    if set(card["inputs"]) != set(graph_inputs):
        raise CardError(f"the card's inputs {sorted(card['inputs'])} are not the graph's {sorted(graph_inputs)}")
    for name, spec in card["inputs"].items():
        dtype = ONNX_DTYPES.get(graph_inputs[name].type.tensor_type.elem_type)
        if dtype != spec["dtype"]:
            raise CardError(f"input {name}: the card says {spec['dtype']}, the graph wants {dtype}")
    for name, spec in card["outputs"].items():
        if name not in graph_outputs:
            raise CardError(f"output {name} is not an output of the graph ({', '.join(graph_outputs)})")
        dims = graph_outputs[name].type.tensor_type.shape.dim
        if spec["task"] == "classification" and (len(dims) != 2 or dims[1].dim_value != len(spec["classes"])):
            raise CardError(f"output {name}: {len(spec['classes'])} classes, but the graph's output is not [B, {len(spec['classes'])}]")
        if spec["task"] != "classification" and len(dims) != 1:
            raise CardError(f"output {name}: a {spec['task']} output is one value per object, [B]")


def read_card(path: str) -> dict:
    with open(path) as f:
        card = json.load(f)
    check_card(card)
    return card


def embed_card(model, card: dict) -> None:
    """Puts the card into the model's metadata_props (replacing an earlier one), after checking it."""
    check_card(card, model)
    for prop in list(model.metadata_props):
        if prop.key == CARD_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_KEY, json.dumps(card, separators=(",", ":"))


def embedded_card(path: str) -> dict | None:
    import onnx

    props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    return json.loads(props[CARD_KEY]) if CARD_KEY in props else None


def main() -> int:
    import onnx

    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, card_path = sys.argv[1:]
    try:
        card = read_card(card_path)
        model = onnx.load(path)
        embed_card(model, card)
        onnx.checker.check_model(model)
    except (CardError, OSError, json.JSONDecodeError) as error:
        print(f"cards: {error}", file=sys.stderr)
        return 1
    handle, partial = tempfile.mkstemp(suffix=".onnx.partial", dir=os.path.dirname(os.path.abspath(path)))
    os.close(handle)
    onnx.save(model, partial)
    os.chmod(partial, os.stat(path).st_mode & 0o777)
    os.replace(partial, path)
    print(json.dumps({"model": path, "card": card_path, "bytes": os.path.getsize(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
