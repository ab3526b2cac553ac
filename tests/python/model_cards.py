"""Reads the card embedded in each ONNX model and checks it against the graph and the card file beside it.

usage: model_cards.py MODEL.onnx ...
Prints one JSON object: per model, the embedded card and whether it equals model/<name>.card.json.
"""
import json
import os
import sys

import onnx

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "model"))
from cards import check_card, embedded_card  # noqa: E402

report = {}
for path in sys.argv[1:]:
    card = embedded_card(path)
    check_card(card, onnx.load(path))
    with open(path[: -len(".onnx")] + ".card.json") as f:
        beside = json.load(f)
    report[os.path.basename(path)] = {"card": card, "sameAsFile": card == beside}
print(json.dumps(report))
