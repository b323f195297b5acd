#!/usr/bin/env bash
# Create .venv and install modelshield with the extras named in $1 (default: all).
# torch is pinned to 2.13.0 in pyproject.toml: that is the CPU wheel; an unpinned torch would pull CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[${extras}]"
