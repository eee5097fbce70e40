#!/usr/bin/env bash
# Create .venv (Python 3.10-3.13), install the project with its Cython kernel, fetch the data.
# Usage: bash scripts/setup.sh [--test] [--no-data]
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0; want_data=1
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    --no-data) want_data=0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3.12 python3.10 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON="$candidate"; break; fi
  done
fi
[ -n "$PYTHON" ] || { echo "setup.sh: no python3 found" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install --quiet --upgrade pip setuptools wheel
if [ "$want_test" = 1 ]; then
  "$VPY" -m pip install --quiet -r requirements-test.txt
else
  "$VPY" -m pip install --quiet -r requirements.txt
fi
# --no-build-isolation: build the Cython extension against the numpy just installed
"$VPY" -m pip install --quiet --no-build-isolation --no-deps -e .
"$VPY" -c "import core; print('core', core.__version__, '- convert_idxs backend:', core.CONVERT_IDXS_BACKEND)"

if [ "$want_data" = 1 ]; then
  bash scripts/fetch_data.sh
fi
