#!/usr/bin/env bash
# `sam validate --lint` and `sam build` of template.yaml, with aws-sam-cli from PyPI in .venv-sam
# (installed on first use; a venv of its own, as its pins differ from PyTorch's).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-sam/bin/sam ]; then
  echo "sam-check: installing aws-sam-cli into .venv-sam (first run only)" >&2
  python3 -m venv .venv-sam
  .venv-sam/bin/pip install --quiet --disable-pip-version-check aws-sam-cli 2>&1 | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
fi
export SAM_CLI_TELEMETRY=0
.venv-sam/bin/sam validate --lint
.venv-sam/bin/sam build --build-dir .aws-sam/build > .aws-sam-build.log 2>&1 || { cat .aws-sam-build.log >&2; exit 1; }
echo "sam-check: sam build succeeded; inference artifact $(du -sh .aws-sam/build/InferenceFunction | cut -f1) unzipped"
