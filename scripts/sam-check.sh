#!/usr/bin/env bash
# `sam validate --lint` and `sam build` of template.yaml, with aws-sam-cli from .venv-sam (scripts/sam-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/sam-env.sh
export SAM_CLI_TELEMETRY=0
.venv-sam/bin/sam validate --lint
.venv-sam/bin/sam build --build-dir .aws-sam/build > .aws-sam-build.log 2>&1 || { cat .aws-sam-build.log >&2; exit 1; }
echo "sam-check: sam build succeeded; inference artifact $(du -sh .aws-sam/build/InferenceFunction | cut -f1) unzipped"
