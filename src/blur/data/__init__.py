"""Data sets: where they live, how they are fetched (download or local import), and loading.

Quick start::

  from blur.data import fetch, load_dataset, load_omniglot, data_status

  fetch("mnist", source="/path/to/idx/files")     # or fetch("mnist") to download
  data = load_dataset("mnist")
  x_train, y_train = data.split("train")            # 50,000: the training file minus "val"
  x_val, y_val = data.split("val")                  # 10,000: a fixed, seeded carve-out

One source object per data set (:data:`SOURCES`, :func:`get_source`) owns its status, fetch,
load and the hint shown when it is missing: :class:`IDXSource` (MNIST, Fashion-MNIST, KMNIST,
EMNIST splits), :class:`OmniglotSource` and :class:`DigitsSource`.

This package imports nothing from the rest of blur except :mod:`blur._atomic`; the task
families (:mod:`blur.tasks`) import it, never the reverse. The network code
(:mod:`blur.data.fetching`, which imports ``urllib.request``) is imported only when something
is fetched.
"""

from blur.data.digits import DigitsSource
from blur.data.errors import (
    ChecksumError,
    DataError,
    DataNotFoundError,
    DownloadError,
    IDXFormatError,
)
from blur.data.idx import encode_idx, parse_idx, read_idx
from blur.data.idx_source import EMNIST_SPLITS, IDX_SOURCES, IDXFile, IDXSource
from blur.data.omniglot import (
    OMNIGLOT_SMALL_VAL_ALPHABETS,
    OMNIGLOT_SPLITS,
    OmniglotData,
    OmniglotSource,
    load_omniglot,
)
from blur.data.sources import (
    ALIASES,
    FETCHABLE,
    IMAGE_DATASETS,
    SOURCES,
    Source,
    canonical_name,
    clear_caches,
    data_status,
    fetch,
    fetch_command,
    get_source,
    load_dataset,
)
from blur.data.store import (
    DATA_DIR_ENV,
    SPLITS,
    VAL_DENOMINATOR,
    VAL_SEED,
    ImageData,
    data_dir,
    val_carve_out,
    val_size,
)

__all__ = [
    "ALIASES",
    "DATA_DIR_ENV",
    "EMNIST_SPLITS",
    "FETCHABLE",
    "IDX_SOURCES",
    "IMAGE_DATASETS",
    "OMNIGLOT_SMALL_VAL_ALPHABETS",
    "OMNIGLOT_SPLITS",
    "SOURCES",
    "SPLITS",
    "VAL_DENOMINATOR",
    "VAL_SEED",
    "ChecksumError",
    "DataError",
    "DataNotFoundError",
    "DigitsSource",
    "DownloadError",
    "IDXFile",
    "IDXFormatError",
    "IDXSource",
    "ImageData",
    "OmniglotData",
    "OmniglotSource",
    "Source",
    "canonical_name",
    "clear_caches",
    "data_dir",
    "data_status",
    "encode_idx",
    "fetch",
    "fetch_command",
    "get_source",
    "load_dataset",
    "load_omniglot",
    "parse_idx",
    "read_idx",
    "val_carve_out",
    "val_size",
]
