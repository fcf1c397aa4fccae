#!/usr/bin/env bash
# System packages the tests use: headless Chromium (the report is checked the way a person sees it).
# Installed from Debian's packages when missing and we are root; otherwise those tests skip.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "vaekit: installing Debian's chromium for the browser tests" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
else
    echo "vaekit: chromium is missing and cannot be installed here; browser tests will skip" >&2
fi
