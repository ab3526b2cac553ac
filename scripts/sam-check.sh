#!/usr/bin/env bash
# `sam validate --lint`, cfn-lint of the template as SAM's transform expands it (what CloudFormation
# checks, dependency cycles among them, which `sam validate --lint` does not see), and `sam build`,
# with aws-sam-cli from .venv-sam (scripts/sam-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/sam-env.sh
export SAM_CLI_TELEMETRY=0
.venv-sam/bin/sam validate --lint
mkdir -p .aws-sam
.venv-sam/bin/python tests/python/sam_translate.py . > .aws-sam/transformed.json
.venv-sam/bin/cfn-lint .aws-sam/transformed.json || { echo "sam-check: cfn-lint refuses the transformed template (.aws-sam/transformed.json)" >&2; exit 1; }
echo "sam-check: the transformed template passes cfn-lint (no dependency cycle)"
.venv-sam/bin/sam build --build-dir .aws-sam/build > .aws-sam-build.log 2>&1 || { cat .aws-sam-build.log >&2; exit 1; }
echo "sam-check: sam build succeeded; inference artifact $(du -sh .aws-sam/build/InferenceFunction | cut -f1) unzipped"
