#!/usr/bin/env bash
# One command for the tests: set up (with test extras and data), then run the fast suite.
# The test files run in parallel, one pytest-xdist worker per core (at most 8), each worker's
# TensorFlow on one thread: on 2 cores 753 s against 1064 s for one process on both (2026-12-07).
# PYTEST_WORKERS=0 runs them in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export DEEPCLUSTER_REQUIRE_DATA="${DEEPCLUSTER_REQUIRE_DATA:-1}"
export TF_CPP_MIN_LOG_LEVEL=2
cores=$(nproc 2>/dev/null || echo 2)
workers="${PYTEST_WORKERS:-$(( cores < 8 ? cores : 8 ))}"
parallel=()
if [ "$workers" -gt 1 ]; then
  # each worker's TensorFlow and BLAS on one thread, so that the workers do not oversubscribe
  export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
  # whole files per worker: module fixtures (e.g. a trained model) are built once
  parallel=(-n "$workers" --dist loadfile)
fi
set +e
.venv/bin/python -m pytest -m "not slow and not gpu" -p no:cacheprovider "${parallel[@]}" tests "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$code"
