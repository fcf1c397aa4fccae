#!/usr/bin/env bash
# The main job. For now: a summary of the data that training reads.
set -euo pipefail
PY=${1:-.venv/bin/python}
"$PY" -m vaekit data info fashion-mnist
