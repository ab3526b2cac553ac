#!/usr/bin/env bash
# moto's server (PyPI) in .venv-moto, once: its Step Functions interpreter, independent of the local
# stack's, runs the deployed state machine definition in tests, and its CloudFormation takes `sam
# deploy` (with SAM's translator, which runs the template's transform as CloudFormation does: see
# tests/python/moto_deploy.py). A venv of its own, as its boto3 pin differs from those of aws-sam-cli
# and the AWS CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
requirements=('moto[server]==5.2.5' 'aws-sam-translator==1.115.0')
requirement="${requirements[*]}"
stamp=.venv-moto/.requirement
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$requirement" ] && exit 0
echo "moto-env: installing $requirement into .venv-moto (first run only)" >&2
python3 -m venv .venv-moto
.venv-moto/bin/pip install --quiet --disable-pip-version-check "${requirements[@]}" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
.venv-moto/bin/python -c "import moto.server, boto3, samtranslator" # fails loudly if the install did not complete
echo "$requirement" > "$stamp"
