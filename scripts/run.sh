#!/usr/bin/env bash
# One command for a new user: set everything up, then evaluate the shipped MNIST checkpoint.
# Extra arguments go to applications/run.py (e.g. --method kmeans, --train).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd src
exec ../.venv/bin/python applications/run.py --dset mnist --out ../out/mnist "$@"
