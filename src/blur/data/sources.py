"""Every data set by name: one source object per data set, the one alias table, and the
functions that dispatch on them (status, fetch, load, hint).

A *source* (:class:`Source`) owns one data set's status, fetch (download or ``--from DIR``
import), load and the hint shown when its data are missing. There are three kinds:
:class:`~blur.data.idx_source.IDXSource` (MNIST, Fashion-MNIST, KMNIST, the EMNIST splits),
:class:`~blur.data.omniglot.OmniglotSource` and :class:`~blur.data.digits.DigitsSource`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from blur.data import omniglot
from blur.data.digits import DigitsSource
from blur.data.errors import DataNotFoundError
from blur.data.idx_source import EMNIST_SPLITS, IDX_SOURCES
from blur.data.omniglot import OMNIGLOT, OmniglotSource
from blur.data.store import ImageData, Log, data_dir, val_carve_out


@runtime_checkable
class Source(Protocol):
    """One data set: where it lives, whether it is there, how to import and load it."""

    name: str
    title: str
    folder: str

    @property
    def fetch_name(self) -> str:
        """The name ``blur data fetch`` takes for it."""
        ...

    def status(self, root: Path) -> tuple[str, str]:
        """``(status, location)`` under the data root, for ``blur data list``."""
        ...

    def hint(self) -> str:
        """The command(s) that import it, for the error raised when it is missing."""
        ...

    def load(self, root: Path, **options: Any) -> Any:
        """The data, from the data root (raises ``DataNotFoundError`` with :meth:`hint`)."""
        ...

    def fetch(
        self, source: Path | None, mirror: str | None, root: Path, force: bool, log: Log
    ) -> list[Path]:
        """Import it into the data root; returns the files written."""
        ...


SOURCES: dict[str, Source] = {**IDX_SOURCES, "digits": DigitsSource(), "omniglot": OMNIGLOT}
"""Every data set by canonical name."""

ALIASES: dict[str, str] = {
    "fashion": "fashion_mnist",
    "fmnist": "fashion_mnist",
    "emnist": "emnist_byclass",
}
"""The one alias table of data set names (task family names use it too)."""

IMAGE_DATASETS: tuple[str, ...] = tuple(SOURCES)
"""Every data set name accepted by :func:`get_source` (aliases aside)."""

FETCHABLE: tuple[str, ...] = tuple(
    dict.fromkeys(s.fetch_name for s in SOURCES.values() if not isinstance(s, DigitsSource))
)
"""Names accepted by ``blur data fetch`` (``emnist`` imports every EMNIST split)."""


def canonical_name(name: str) -> str:
    """Resolve aliases (``fashion`` -> ``fashion_mnist``, ``emnist`` -> ``emnist_byclass``).

    Raises:
      ValueError: For an unknown name (the message lists the valid names and aliases).
    """
    key = name.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in SOURCES:
        raise ValueError(
            f"unknown data set {name!r}; valid names: {', '.join(IMAGE_DATASETS)} "
            f"(aliases: {', '.join(ALIASES)})."
        )
    return key


def get_source(name: str) -> Source:
    """The source object of a data set name (aliases allowed)."""
    return SOURCES[canonical_name(name)]


def fetch_command(name: str) -> str:
    """The command(s) that import a data set, for error messages."""
    return get_source(name).hint()


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, root: Path) -> ImageData:
    return SOURCES[name].load(root)


def load_dataset(name: str, root: str | os.PathLike[str] | None = None) -> ImageData:
    """Load a whole IDX data set (or sklearn ``digits``) into host memory.

    Prefers the ``.npz`` cache; builds it from the raw IDX files when only those exist.
    Results are memoised per (name, data root); arrays are read-only. Splits: see
    :meth:`~blur.data.store.ImageData.split` (``train``, ``val``, ``test``, ``train_full``).

    Args:
      name: A name from :data:`IMAGE_DATASETS` except ``omniglot`` (aliases allowed).
      root: Data root (default :func:`~blur.data.store.data_dir`).

    Returns:
      The :class:`~blur.data.store.ImageData`. ``digits`` uses the first 1437 images as the
      training file and the last 360 as test.

    Raises:
      DataNotFoundError: If the data are not there (the message gives the fetch command).
      ValueError: For ``omniglot`` (use :func:`~blur.data.omniglot.load_omniglot`).
    """
    key = canonical_name(name)
    if isinstance(SOURCES[key], OmniglotSource):
        raise ValueError(
            "omniglot has alphabet/character structure: use blur.data.load_omniglot "
            "or blur.tasks.load_split('omniglot', '<subset>')."
        )
    return _load_cached(key, data_dir(root).resolve())


def clear_caches() -> None:
    """Forget memoised data sets (e.g. after re-importing them)."""
    _load_cached.cache_clear()
    omniglot.clear_caches()
    val_carve_out.cache_clear()


def data_status(root: str | os.PathLike[str] | None = None) -> list[tuple[str, str, str]]:
    """``(name, status, location)`` rows for ``blur data list``, one per data set."""
    root_path = data_dir(root)
    return [(name, *src.status(root_path)) for name, src in SOURCES.items()]


def fetch(
    name: str,
    source: str | os.PathLike[str] | None = None,
    mirror: str | None = None,
    root: str | os.PathLike[str] | None = None,
    force: bool = False,
    log: Log = print,
) -> list[Path]:
    """Import a data set into the data root (``blur data fetch NAME [--from DIR]``).

    The network and import code (:mod:`blur.data.fetching`) is imported only here.

    Args:
      name: One of :data:`FETCHABLE` (aliases such as ``fashion`` and any EMNIST split work;
        ``digits`` is bundled and logs that there is nothing to fetch).
      source: Import from this local folder instead of downloading.
      mirror: Base URL to download from instead of the official mirrors (``file://`` works).
      root: Data root (default ``$BLUR_DATA_DIR`` or ``~/.cache/blur``).
      force: Re-import even if the data set is already present.
      log: Progress printer.

    Returns:
      The files written (data files and caches).

    Raises:
      ValueError: For an unknown name.
      DataNotFoundError: If ``source`` lacks the files.
      ChecksumError: If a file fails its MD5 check (nothing is left behind).
      DownloadError: If no mirror could serve a file.
      IDXFormatError / DataError: If a file is malformed.
    """
    src_obj = get_source(name)
    root_path = data_dir(root)
    src = None if source is None else Path(source).expanduser()
    if src is not None and not src.exists():
        raise DataNotFoundError(f"--from {src}: no such file or folder.")
    written = src_obj.fetch(src, mirror, root_path, force, log)
    clear_caches()
    return written


__all__ = [
    "ALIASES",
    "EMNIST_SPLITS",
    "FETCHABLE",
    "IMAGE_DATASETS",
    "SOURCES",
    "Source",
    "canonical_name",
    "clear_caches",
    "data_status",
    "fetch",
    "fetch_command",
    "get_source",
    "load_dataset",
]
