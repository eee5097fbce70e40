#!/usr/bin/env bash
# One command for the tests: set up (with test extras and data), then run the fast suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export DEEPCLUSTER_REQUIRE_DATA="${DEEPCLUSTER_REQUIRE_DATA:-1}"
export TF_CPP_MIN_LOG_LEVEL=2
set +e
.venv/bin/python -m pytest -m "not slow and not gpu" -p no:cacheprovider tests "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$code"
