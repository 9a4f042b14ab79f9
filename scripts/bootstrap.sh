#!/usr/bin/env bash
# Create .venv/ in the repository root from the committed lock file and install blur into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
.venv/bin/python -c "import blur, jax; print('blur', blur.__version__, 'on jax', jax.__version__)"
