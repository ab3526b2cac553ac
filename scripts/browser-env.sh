#!/usr/bin/env bash
# Debian's chromium, once: tests open `cai report`'s HTML in a real headless browser (driven by
# playwright-core, which downloads no browser of its own). CAI_CHROMIUM names another binary.
set -euo pipefail
CHROMIUM="${CAI_CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "browser-env: $CHROMIUM is missing; install Debian's chromium (apt-get install chromium) or set CAI_CHROMIUM" >&2
  exit 1
fi
echo "browser-env: installing chromium with apt-get (first run only)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium >&2
"$CHROMIUM" --version >/dev/null
