#!/usr/bin/env bash
# Make Fashion-MNIST available: an existing copy (data-dir, $VAEKIT_DATA, cache, /usr/share/datasets),
# else the official download (checksums verified), else Debian's dataset-fashion-mnist package
# when apt-get is there and we are root (machines whose network reaches only package registries).
set -euo pipefail
PY=${1:-python3}
if "$PY" -m vaekit data fetch fashion-mnist; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "vaekit: installing Debian's dataset-fashion-mnist package instead" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    "$PY" -m vaekit data fetch fashion-mnist
else
    echo "vaekit: could not get Fashion-MNIST; download it to ~/.cache/vaekit/fashion-mnist" >&2
    exit 1
fi
