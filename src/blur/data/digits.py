"""scikit-learn's 8x8 handwritten digits: bundled with scikit-learn, so never fetched."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from blur.data.errors import DataNotFoundError
from blur.data.store import ImageData, Log

DIGITS_NUM_TRAIN = 1437
"""The first 1437 images (80 %) are the training file; the last 360 are the test split."""


@dataclasses.dataclass(frozen=True)
class DigitsSource:
    """The ``digits`` data set (1797 images of 8x8 pixels with values 0..16, 10 classes)."""

    name: str = "digits"
    title: str = "scikit-learn digits"
    folder: str = "digits"
    num_classes: int = 10

    @property
    def fetch_name(self) -> str:
        """Not fetchable: the name is only used in messages."""
        return self.name

    def status(self, root: Path) -> tuple[str, str]:
        """Always ``bundled`` (the data ship with scikit-learn)."""
        del root
        return "bundled", "scikit-learn (sklearn.datasets.load_digits)"

    def hint(self) -> str:
        """How to get the data: install scikit-learn."""
        return "`pip install scikit-learn`"

    def load(self, root: Path, **options: Any) -> ImageData:
        """The images as uint8 (``max_value`` 16): train = first 1437, test = last 360."""
        del root
        if options:
            raise ValueError(f"digits: unexpected load options {sorted(options)}.")
        try:
            from sklearn.datasets import load_digits
        except ImportError as e:  # pragma: no cover - scikit-learn is a dependency
            raise DataNotFoundError(f"sklearn digits need scikit-learn: {self.hint()}.") from e
        bunch = load_digits()
        images = np.asarray(bunch.images, np.uint8)  # values 0..16
        labels = np.asarray(bunch.target, np.int32)
        n = DIGITS_NUM_TRAIN
        out_i = {"train": images[:n], "test": images[n:]}
        out_l = {"train": labels[:n], "test": labels[n:]}
        for a in (*out_i.values(), *out_l.values()):
            a.setflags(write=False)
        return ImageData(self.name, out_i, out_l, self.num_classes, max_value=16.0)

    def fetch(
        self, source: Path | None, mirror: str | None, root: Path, force: bool, log: Log
    ) -> list[Path]:
        """Nothing to fetch: logs that and returns no files."""
        del source, mirror, root, force
        log("digits: bundled with scikit-learn; nothing to fetch.")
        return []
