#!/usr/bin/env bash
# Lint and type-check the tree the way CI does: ruff check, ruff format --check, mypy (config in pyproject.toml).
# Runs all three and exits non-zero if any failed, so one run shows every problem.
#   scripts/lint.sh            check
#   scripts/lint.sh --counts   also print the number of problems per package
set -uo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
[ -x "$bin/ruff" ] && [ -x "$bin/mypy" ] || { echo "ruff and mypy come with the test extra: scripts/setup.sh test" >&2; exit 2; }
status=0
echo "==> ruff check"
"$bin/ruff" check modelshield tests bench || status=1
echo "==> ruff format --check"
"$bin/ruff" format --check modelshield tests bench || status=1
echo "==> mypy"
"$bin/mypy" | tee /tmp/modelshield-mypy.$$ || status=1
if [ "${1:-}" = "--counts" ]; then
  echo "==> problems per package (ruff check / files ruff format would change / mypy errors)"
  for pkg in modelshield/*/ modelshield/*.py; do
    name=${pkg%/}
    lint=$("$bin/ruff" check "$name" --output-format concise -q 2>/dev/null | grep -c ':[0-9]*:[0-9]*: ')
    fmt=$("$bin/ruff" format --check "$name" 2>/dev/null | grep -oE '^[0-9]+ files? would be reformatted' | cut -d' ' -f1)
    types=$(grep -c "^$name[/.].*: error:" /tmp/modelshield-mypy.$$)
    printf '%-28s %5s %5s %5s\n' "$name" "$lint" "${fmt:-0}" "$types"
  done
fi
rm -f /tmp/modelshield-mypy.$$
exit $status
