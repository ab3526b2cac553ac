#!/usr/bin/env bash
# The AWS CLI (PyPI awscli) in .venv-awscli, once: tests drive the served local stack with the same
# commands a user runs against AWS. A venv of its own, as its botocore pin differs from aws-sam-cli's.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-awscli/bin/aws ] && exit 0
echo "awscli-env: installing the AWS CLI into .venv-awscli (first run only)" >&2
python3 -m venv .venv-awscli
.venv-awscli/bin/pip install --quiet --disable-pip-version-check 'awscli==1.*' 2>&1 | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
.venv-awscli/bin/aws --version >/dev/null
