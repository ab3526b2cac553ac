#!/usr/bin/env bash
# Creates .venv with model/requirements.txt once; later runs return at once unless the
# requirements changed. Tests and the model exporter run Python from here.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.requirements
if [ -f "$stamp" ] && cmp -s model/requirements.txt "$stamp"; then exit 0; fi
echo "python-env: installing model/requirements.txt into .venv (first run only)" >&2
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r model/requirements.txt 2>&1 | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
.venv/bin/python -c "import torch, numpy" # fails loudly if the install did not complete
cp model/requirements.txt "$stamp"
