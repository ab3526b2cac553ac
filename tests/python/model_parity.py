"""The project's PyTorch AstroMAE against the parity fixture: prints one JSON object with the
outputs for the fixture's inputs, and those of a control model with one qkv weight scaled by 1.01
(which a meaningful tolerance must tell apart)."""
import json
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "model"))
from astromae import FULL, AstroMAE, parameter_count  # noqa: E402
from fixture_weights import rule_inputs, rule_state_dict  # noqa: E402

fixture = json.load(open(sys.argv[1]))
model = AstroMAE(FULL).eval()
model.load_state_dict(rule_state_dict(model))
image, magnitude = rule_inputs(4)
with torch.no_grad():
    output = model(image, magnitude)
    model.blocks[5].attn.qkv.weight.mul_(1.01)
    control = model(image, magnitude)
print(json.dumps({
    "state_dict": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in model.state_dict().items()],
    "parameter_count": parameter_count(model),
    "output": output.tolist(),
    "control_output": control.tolist(),
}))
