#!/usr/bin/env bash
# Create .venv and install modelshield with the extras named in $1 (default: all).
# The library asks for a torch range (pyproject.toml); set-up and CI pin the CPU wheel here (TORCH_PIN), since an
# unpinned resolve would pull a CUDA build. On a GPU machine install your torch first: `pip install -e .` keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
TORCH_PIN="${TORCH_PIN:-torch==2.13.0}"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[${extras}]" "${TORCH_PIN}"
