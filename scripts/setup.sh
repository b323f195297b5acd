#!/usr/bin/env bash
# Create .venv and install modelshield with the extras named in $1 (default: all), saying what each step does.
# The library asks for a torch range (pyproject.toml); set-up and CI pin the CPU wheel here (TORCH_PIN), since an
# unpinned resolve would pull a CUDA build. On a GPU machine install your torch first: `pip install -e .` keeps it.
# pip prints one line per package (no progress bars), so logs and CI show where a slow install is.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all}"
TORCH_PIN="${TORCH_PIN:-torch==2.13.0}"
start=$SECONDS

step() { printf '==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if [ -x .venv/bin/python ]; then
  step "reusing .venv ($(.venv/bin/python --version))"
else
  step "creating .venv with $(python3 --version)"
  python3 -m venv .venv
fi
. .venv/bin/activate
step "upgrading pip"
python -m pip install --quiet --upgrade pip
step "installing modelshield[${extras}] and its dependencies (the CPU torch wheel included: about 1.8 GB and several minutes on a first install)"
# stdout filtered to one line per package; pip's errors (stderr) pass through untouched.
set +e
python -m pip install --progress-bar off --disable-pip-version-check -e ".[${extras}]" "${TORCH_PIN}" \
  | grep --line-buffered -E '^(Collecting|Successfully installed)'
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  step "pip install failed (exit $status)"
  exit "$status"
fi
step "done in $((SECONDS - start)) s: $(.venv/bin/modelshield version 2>/dev/null || echo 'modelshield not importable')"
