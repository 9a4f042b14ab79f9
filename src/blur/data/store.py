"""Where data live, the ``.npz`` caches, in-memory data sets, and the validation carve-out.

Data live in ``$BLUR_DATA_DIR`` (default ``~/.cache/blur``), one folder per data set::

  mnist/          train-images-idx3-ubyte[.gz] ... and the cache mnist.npz
  fashion_mnist/  ... fashion_mnist.npz
  kmnist/         ... kmnist.npz
  emnist/         emnist-<split>-train-images-idx3-ubyte[.gz] ... and emnist_<split>.npz
  omniglot/       images_background.zip ... and <subset>-<size>.npz (see blur.data.omniglot)

The ``.npz`` caches (compressed uint8 arrays) are written on import and preferred by the
loaders, so a data directory that holds only the caches works.

Splits. The files hold a ``train`` and a ``test`` split. Meta-training and model selection
must not see the same images, so the *training* file is cut in two (:func:`val_carve_out`):

* ``val``: a fixed, seeded random subset of the training file, :data:`VAL_DENOMINATOR`-th of
  it (``N // 6``: 10,000 of the 60,000 MNIST / Fashion-MNIST / KMNIST training images, the
  usual 50k/10k split; 18,800 of EMNIST balanced's 112,800; 239 of sklearn digits' 1437),
  drawn with ``numpy.random.default_rng(VAL_SEED)``;
* ``train``: the rest of the training file (disjoint from ``val``);
* ``train_full``: the whole training file (``train`` + ``val``);
* ``test``: the test file, untouched.

The size and seed are recorded in :meth:`ImageData.split_label` (``val:10000,seed=0``), which
the task families put into their names.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from blur._atomic import write_bytes_atomic
from blur.data.errors import DataError, DataNotFoundError

Log = Callable[[str], None]
"""A progress printer (``print`` by default in :func:`blur.data.fetch`)."""

DATA_DIR_ENV = "BLUR_DATA_DIR"
DEFAULT_DATA_DIR = "~/.cache/blur"

STORED_SPLITS: tuple[str, ...] = ("train", "test")
"""The splits the files hold."""
SPLITS: tuple[str, ...] = ("train", "val", "test", "train_full")
"""The split names :meth:`ImageData.split` accepts."""
VAL_DENOMINATOR = 6
"""``val`` is ``N // VAL_DENOMINATOR`` of the ``N`` training-file examples."""
VAL_SEED = 0
"""Seed of the ``val`` carve-out (``numpy.random.default_rng``)."""


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``override``, else ``$BLUR_DATA_DIR``, else ``~/.cache/blur``."""
    if override is not None:
        return Path(override).expanduser()
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


# ------------------------------------------------------------------------ validation split


def val_size(num_train: int) -> int:
    """Size of the ``val`` carve-out of a training file with ``num_train`` examples."""
    return num_train // VAL_DENOMINATOR


@functools.lru_cache(maxsize=16)
def val_carve_out(num_train: int, seed: int = VAL_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``range(num_train)`` into the ``train`` and ``val`` index sets.

    Args:
      num_train: Examples in the training file.
      seed: Seed of the permutation (fixed: :data:`VAL_SEED`).

    Returns:
      ``(train_idx, val_idx)``: disjoint, sorted, read-only int64 arrays whose union is
      ``range(num_train)``; ``val_idx`` has :func:`val_size` elements, chosen by
      ``default_rng(seed).permutation(num_train)[:val_size]``.
    """
    n_val = val_size(num_train)
    perm = np.random.default_rng(seed).permutation(num_train)
    train_idx, val_idx = np.sort(perm[n_val:]), np.sort(perm[:n_val])
    for a in (train_idx, val_idx):
        a.setflags(write=False)
    return train_idx, val_idx


@dataclasses.dataclass(frozen=True)
class ImageData:
    """A whole image data set in host memory.

    Attributes:
      name: Canonical data set name.
      images: Stored split (``train``, ``test``) -> [N, H, W] uint8 arrays.
      labels: Stored split -> [N] int32 arrays in ``0..num_classes-1``.
      num_classes: Number of classes.
      max_value: Largest possible pixel value (255; 16 for sklearn digits).
    """

    name: str
    images: Mapping[str, np.ndarray]
    labels: Mapping[str, np.ndarray]
    num_classes: int
    max_value: float = 255.0

    @property
    def splits(self) -> tuple[str, ...]:
        """The split names :meth:`split` accepts."""
        if "train" in self.images:
            return tuple(s for s in SPLITS if s in self.images or s in ("val", "train_full"))
        return tuple(self.images)

    def _carve(self, split: str) -> np.ndarray | None:
        """Indices into the training file for ``train`` / ``val``; None for a stored split."""
        if split not in ("train", "val") or "train" not in self.images:
            return None
        train_idx, val_idx = val_carve_out(self.images["train"].shape[0])
        return train_idx if split == "train" else val_idx

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images [N, H, W] uint8, labels [N] int32)`` of one split (see the module doc)."""
        if split not in self.splits:
            raise ValueError(
                f"{self.name} has no split {split!r}; valid splits: {', '.join(self.splits)}."
            )
        idx = self._carve(split)
        if idx is not None:
            return self.images["train"][idx], self.labels["train"][idx]
        stored = "train" if split == "train_full" else split
        return self.images[stored], self.labels[stored]

    def split_label(self, split: str) -> str:
        """How a split was made, for family names: ``val:10000,seed=0``,
        ``train-val:10000,seed=0``, ``train_full``, ``test``."""
        idx = self._carve(split)
        if idx is None:
            return split
        n_val = val_size(self.images["train"].shape[0])
        return f"{'val' if split == 'val' else 'train-val'}:{n_val},seed={VAL_SEED}"


# ------------------------------------------------------------------------------ npz caches


def write_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write a compressed ``.npz`` through :func:`blur._atomic.write_bytes_atomic`."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())


def read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read the given keys from an ``.npz`` cache, with a clear error if it is unusable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise DataError(
                    f"{path}: cache lacks arrays {missing}. Delete it and re-import the data "
                    "(`blur data fetch NAME --force`)."
                )
            return {k: z[k] for k in keys}
    except (OSError, ValueError, EOFError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(
            f"{path}: unreadable cache ({e}). Delete it and re-import the data "
            "(`blur data fetch NAME --force`)."
        ) from e


def not_found(
    name: str, folder: Path, hint: str, root: Path, detail: str = ""
) -> DataNotFoundError:
    """A :class:`~blur.data.errors.DataNotFoundError` naming the folder and the fetch command.

    Args:
      name: Data set name.
      folder: Where it was looked for.
      hint: The command(s) that import it (a source's ``hint()``).
      root: The data root.
      detail: Extra text after the folder (e.g. which Omniglot subset).
    """
    return DataNotFoundError(
        f"data set {name!r} is not in {folder}{detail}. Import it with {hint}. "
        f"The data root is ${DATA_DIR_ENV} (default {DEFAULT_DATA_DIR}), here {root}."
    )
