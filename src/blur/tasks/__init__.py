"""Tasks and data: jit-able task families that sample episodes of support and query batches.

Quick start::

  import jax
  from blur.tasks import get_family, sample_episodes

  fam = get_family("xor")                           # or "toy2d_train", "mnist:0-4", "omniglot"
  ep = fam.sample(jax.random.key(0), num_steps=10, batch_size=128)
  ep.support.x.shape                                # (10, 128, 2)
  eps = sample_episodes(fam, jax.random.split(jax.random.key(1), 8), 10, 128)  # meta-batch

Image data are imported once with ``blur data fetch NAME`` into ``$BLUR_DATA_DIR``
(default ``~/.cache/blur``); storage, fetching and loading live in :mod:`blur.data`, which this
package imports (never the reverse). The data names below (``load_dataset``, ``fetch``, the
errors, ...) are re-exported from :mod:`blur.data` for existing callers; new code imports them
from there.
"""

from blur.data import (
    DATA_DIR_ENV,
    EMNIST_SPLITS,
    FETCHABLE,
    IMAGE_DATASETS,
    OMNIGLOT_SMALL_VAL_ALPHABETS,
    ChecksumError,
    DataError,
    DataNotFoundError,
    DownloadError,
    IDXFormatError,
    ImageData,
    OmniglotData,
    data_dir,
    data_status,
    encode_idx,
    fetch,
    load_dataset,
    load_omniglot,
    parse_idx,
    read_idx,
)
from blur.tasks.base import (
    Batch,
    Episode,
    TaskFamily,
    check_episode_args,
    sample_episode,
    sample_episodes,
    split_flat,
)
from blur.tasks.images import ImageClassification, NWayEpisodes, load_split, pixel_stats
from blur.tasks.mixture import Mixture
from blur.tasks.registry import describe_families, get_family, list_families, register_family
from blur.tasks.toy2d import (
    TOY2D_KINDS,
    TOY2D_META_TRAIN,
    TOY2D_META_VAL,
    Toy2D,
    toy2d,
    toy2d_group,
)

__all__ = [
    "DATA_DIR_ENV",
    "EMNIST_SPLITS",
    "FETCHABLE",
    "IMAGE_DATASETS",
    "OMNIGLOT_SMALL_VAL_ALPHABETS",
    "TOY2D_KINDS",
    "TOY2D_META_TRAIN",
    "TOY2D_META_VAL",
    "Batch",
    "ChecksumError",
    "DataError",
    "DataNotFoundError",
    "DownloadError",
    "Episode",
    "IDXFormatError",
    "ImageClassification",
    "ImageData",
    "Mixture",
    "NWayEpisodes",
    "OmniglotData",
    "TaskFamily",
    "Toy2D",
    "check_episode_args",
    "data_dir",
    "data_status",
    "describe_families",
    "encode_idx",
    "fetch",
    "get_family",
    "list_families",
    "load_dataset",
    "load_omniglot",
    "load_split",
    "parse_idx",
    "pixel_stats",
    "read_idx",
    "register_family",
    "sample_episode",
    "sample_episodes",
    "split_flat",
    "toy2d",
    "toy2d_group",
]
