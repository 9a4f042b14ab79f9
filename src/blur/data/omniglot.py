"""Omniglot in the standard ``<set>/<alphabet>/<character>/<drawing>.png`` layout.

Sources are the official zips (``images_background.zip``, ``images_evaluation.zip``), the
repository's small subsets (``images_background_small1.zip``, ``..._small2.zip``), or the same
trees unpacked into folders. A source's *subset* name is its file name without ``images_`` and
``.zip`` (``background``, ``evaluation``, ``background_small1``, ...).

Images are 105x105 binary PNGs with black strokes. They are decoded with Pillow, inverted so
strokes are bright (255, i.e. 1.0 after scaling), and resized with a box filter (area average)
to ``image_size`` (28 by default). A character's class name is ``"<alphabet>/<character>"``;
subsets that share alphabets (the small subsets both contain Greek and Latin) are merged by
dropping drawings already seen, so no image appears twice.

Decoded subsets are cached as ``$BLUR_DATA_DIR/omniglot/<subset>-<size>.npz``, which the loader
prefers over the zips.

Validation split. Omniglot's meta-validation is over *new characters* (classes), so its
``val`` split is a carve-out of characters, not of drawings: a character is in ``val`` iff
``md5("<seed>/<alphabet>/<character>") mod 6 == 0`` (:func:`is_val_character`, seed
:data:`OMNIGLOT_VAL_SEED`), about 1/6 of the characters; ``train`` is the others and ``all``
every character. The rule depends on the character's name only, so a character is on the same
side whichever subsets and alphabets are selected: ``train`` of one selection and ``val`` of
another never share a character. The carve-out is opt-in (``split="all"`` is the default of
:func:`blur.tasks.get_family` ``("omniglot")``), because the usual Omniglot meta-validation
already holds out whole alphabets (``exclude_alphabets``, :data:`OMNIGLOT_SMALL_VAL_ALPHABETS`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import os
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blur.data.errors import DataError, DataNotFoundError
from blur.data.store import Log, data_dir, not_found, read_npz, write_npz_atomic

FOLDER = "omniglot"
DEFAULT_IMAGE_SIZE = 28
PNG_SIZE = 105

OMNIGLOT_MIRRORS: tuple[str, ...] = (
    "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/",
    "https://github.com/brendenlake/omniglot/raw/master/python/",
)
OMNIGLOT_DOWNLOADS: tuple[str, ...] = ("images_background.zip", "images_evaluation.zip")

OMNIGLOT_ZIP_MD5: dict[str, str] = {
    # The official full sets (the MD5s torchvision checks).
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
    # The small background subsets of brendenlake/omniglot@057f034 (python/), as recorded from
    # the copies in shared/data/omniglot.
    "images_background_small1.zip": "e704a628b5459e08445c13499850abc4",
    "images_background_small2.zip": "b75a71a51d3b13f821f212756fe481fd",
}

OMNIGLOT_SMALL_VAL_ALPHABETS: tuple[str, ...] = ("Japanese_(katakana)", "Sanskrit", "Tagalog")
"""Alphabets only in ``background_small2``: a meta-validation side for the two small subsets
whose other side (Balinese, Early_Aramaic, Korean, Greek, Latin) shares no character with it."""

OMNIGLOT_SPLITS: tuple[str, ...] = ("all", "train", "val")
"""Character splits (see the module docstring)."""
OMNIGLOT_VAL_DENOMINATOR = 6
OMNIGLOT_VAL_SEED = 0


def is_val_character(char_name: str, seed: int = OMNIGLOT_VAL_SEED) -> bool:
    """Whether the character ``"<alphabet>/<character>"`` is in the ``val`` carve-out."""
    digest = hashlib.md5(f"{seed}/{char_name}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big") % OMNIGLOT_VAL_DENOMINATOR == 0


def split_label(split: str) -> str:
    """How a character split was made, for family names (``val:chars/6,seed=0``)."""
    if split == "all":
        return split
    tag = "val" if split == "val" else "train-val"
    return f"{tag}:chars/{OMNIGLOT_VAL_DENOMINATOR},seed={OMNIGLOT_VAL_SEED}"


@dataclasses.dataclass(frozen=True)
class OmniglotData:
    """Decoded Omniglot drawings.

    Attributes:
      images: [N, S, S] uint8, strokes bright (255).
      labels: [N] int32 character index into ``char_names``.
      char_names: ``"<alphabet>/<character>"`` per class.
      drawing_names: [N] file names of the drawings (e.g. ``0108_01.png``).
    """

    images: np.ndarray
    labels: np.ndarray
    char_names: tuple[str, ...]
    drawing_names: np.ndarray

    @property
    def num_classes(self) -> int:
        """Number of characters."""
        return len(self.char_names)

    @property
    def alphabets(self) -> tuple[str, ...]:
        """Sorted distinct alphabet names."""
        return tuple(sorted({c.split("/")[0] for c in self.char_names}))

    def select_split(self, split: str) -> OmniglotData:
        """The characters of a split: ``all``, ``train`` or ``val`` (module docstring).

        Raises:
          ValueError: For an unknown split, or one that leaves no characters.
        """
        if split not in OMNIGLOT_SPLITS:
            raise ValueError(
                f"unknown Omniglot split {split!r}; valid splits: {', '.join(OMNIGLOT_SPLITS)} "
                "(the characters are carved out; subsets and alphabets select the pool)."
            )
        if split == "all":
            return self
        want_val = split == "val"
        keep = [i for i, c in enumerate(self.char_names) if is_val_character(c) == want_val]
        if not keep:
            raise ValueError(f"the Omniglot {split!r} split of these characters is empty.")
        return self._keep_characters(keep)

    def _keep_characters(self, keep_chars: Sequence[int]) -> OmniglotData:
        """Keep some characters (indices into ``char_names``), relabelled ``0..C'-1``."""
        lut = np.full(len(self.char_names), -1, np.int64)
        lut[list(keep_chars)] = np.arange(len(keep_chars))
        mapped = lut[self.labels]
        idx = np.nonzero(mapped >= 0)[0]
        return OmniglotData(
            images=self.images[idx],
            labels=mapped[idx].astype(np.int32),
            char_names=tuple(self.char_names[i] for i in keep_chars),
            drawing_names=self.drawing_names[idx],
        )

    def select_alphabets(
        self, include: Sequence[str] | None = None, exclude: Sequence[str] | None = None
    ) -> OmniglotData:
        """Keep the characters of some alphabets (relabelled ``0..C'-1`` in order).

        Args:
          include: Alphabets to keep (None: all).
          exclude: Alphabets to drop.

        Returns:
          The selection.

        Raises:
          ValueError: If a named alphabet is unknown or nothing is left.
        """
        known = set(self.alphabets)
        for group in (include or (), exclude or ()):
            unknown = sorted(set(group) - known)
            if unknown:
                raise ValueError(
                    f"unknown Omniglot alphabets {unknown}; these data have: "
                    f"{', '.join(self.alphabets)}."
                )
        keep_alpha = set(include) if include is not None else known
        keep_alpha -= set(exclude or ())
        keep_chars = [i for i, c in enumerate(self.char_names) if c.split("/")[0] in keep_alpha]
        if not keep_chars:
            raise ValueError("the alphabet selection leaves no Omniglot characters.")
        return self._keep_characters(keep_chars)


def subset_name(path: str | os.PathLike[str]) -> str:
    """``images_background_small1.zip`` -> ``background_small1``."""
    stem = Path(path).name
    stem = stem[: -len(".zip")] if stem.endswith(".zip") else stem
    return stem[len("images_") :] if stem.startswith("images_") else stem


def _png_members(source: Path) -> Iterator[tuple[str, str, str, bytes]]:
    """Yield ``(alphabet, character, drawing, png bytes)`` from a zip or folder."""
    if source.is_file():
        try:
            zf = zipfile.ZipFile(source)
        except zipfile.BadZipFile as e:
            raise DataError(f"{source}: not a valid zip file ({e}).") from e
        with zf:
            bad = zf.testzip()
            if bad is not None:
                raise DataError(f"{source}: corrupt member {bad} (CRC mismatch).")
            for info in zf.infolist():
                parts = info.filename.split("/")
                if info.is_dir() or not parts[-1].lower().endswith(".png"):
                    continue
                if "__MACOSX" in parts or parts[-1].startswith("._") or len(parts) < 3:
                    continue
                yield parts[-3], parts[-2], parts[-1], zf.read(info)
    elif source.is_dir():
        for png in sorted(source.rglob("*.png")):
            rel = png.relative_to(source).parts
            if len(rel) < 3 or "__MACOSX" in rel or png.name.startswith("._"):
                continue
            yield rel[-3], rel[-2], rel[-1], png.read_bytes()
    else:
        raise DataError(f"{source}: no such Omniglot zip or folder.")


def decode_png(data: bytes, image_size: int, origin: str) -> np.ndarray:
    """Decode one Omniglot PNG: invert (strokes -> 255) and box-resize to ``image_size``.

    Args:
      data: PNG bytes.
      image_size: Output side.
      origin: Name for error messages.

    Returns:
      [image_size, image_size] uint8 array.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.size != (PNG_SIZE, PNG_SIZE):
                raise DataError(
                    f"{origin}: image is {im.size[0]}x{im.size[1]}, Omniglot drawings are "
                    f"{PNG_SIZE}x{PNG_SIZE}."
                )
            gray = 255 - np.asarray(im.convert("L"), np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{origin}: cannot decode PNG ({e}).") from e
    if image_size != PNG_SIZE:
        gray = np.asarray(
            Image.fromarray(gray).resize((image_size, image_size), Image.Resampling.BOX), np.uint8
        )
    return gray


def read_subset(
    source: str | os.PathLike[str], image_size: int = DEFAULT_IMAGE_SIZE
) -> OmniglotData:
    """Decode every drawing of one Omniglot zip or folder.

    Args:
      source: A zip or folder in the standard layout.
      image_size: Output side.

    Returns:
      The drawings, sorted by alphabet, character and file name.

    Raises:
      DataError: On a bad zip, an undecodable PNG, a wrong image size, or no drawings.
    """
    source = Path(source)
    entries = sorted(_png_members(source), key=lambda e: e[:3])
    if not entries:
        raise DataError(
            f"{source}: no drawings found; expected <set>/<alphabet>/<character>/<drawing>.png "
            "(the layout of images_background.zip)."
        )
    char_names: list[str] = []
    char_index: dict[str, int] = {}
    images = np.empty((len(entries), image_size, image_size), np.uint8)
    labels = np.empty(len(entries), np.int32)
    drawings = []
    for i, (alphabet, character, drawing, data) in enumerate(entries):
        name = f"{alphabet}/{character}"
        if name not in char_index:
            char_index[name] = len(char_names)
            char_names.append(name)
        images[i] = decode_png(data, image_size, f"{source}:{name}/{drawing}")
        labels[i] = char_index[name]
        drawings.append(drawing)
    return OmniglotData(images, labels, tuple(char_names), np.asarray(drawings))


def cache_path(root: Path, subset: str, image_size: int) -> Path:
    """Path of a subset's ``.npz`` cache."""
    return root / FOLDER / f"{subset}-{image_size}.npz"


def write_cache(data: OmniglotData, path: Path) -> None:
    """Write decoded drawings as an ``.npz`` cache (atomic)."""
    write_npz_atomic(
        path,
        {
            "images": data.images,
            "labels": data.labels,
            "char_names": np.asarray(data.char_names),
            "drawing_names": data.drawing_names,
        },
    )


def raw_sources(folder: Path) -> dict[str, Path]:
    """Omniglot sources (``images_*.zip`` files and ``images_*`` folders) directly in ``folder``."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for p in sorted(folder.iterdir()):
        if not p.name.startswith("images_") or p.name.startswith("."):
            continue
        if (p.is_file() and p.suffix == ".zip") or p.is_dir():
            found.setdefault(subset_name(p), p)
    return found


def available_subsets(root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Subsets present under the data root: ``subset -> 'cached'`` or ``'raw'``."""
    folder = data_dir(root) / FOLDER
    out = {name: "raw" for name in raw_sources(folder)}
    if folder.is_dir():
        for p in folder.glob("*-*.npz"):
            out[p.name.rsplit("-", 1)[0]] = "cached"
    return dict(sorted(out.items()))


@functools.lru_cache(maxsize=8)
def _load_subset(subset: str, image_size: int, root: Path) -> OmniglotData:
    cache = cache_path(root, subset, image_size)
    if cache.is_file():
        z = read_npz(cache, ("images", "labels", "char_names", "drawing_names"))
        data = OmniglotData(
            z["images"],
            z["labels"].astype(np.int32),
            tuple(str(c) for c in z["char_names"]),
            z["drawing_names"],
        )
    else:
        sources = raw_sources(root / FOLDER)
        if subset not in sources:
            have = available_subsets(root)
            detail = f" (subset {subset!r}; present: {', '.join(have) or 'none'})"
            raise OMNIGLOT.missing(root, detail)
        data = read_subset(sources[subset], image_size)
        write_cache(data, cache)
    if data.images.ndim != 3 or data.images.shape[1:] != (image_size, image_size):
        raise DataError(f"{cache}: bad cache (images {data.images.shape}); delete it.")
    for a in (data.images, data.labels, data.drawing_names):
        a.setflags(write=False)
    return data


def load_subset(
    subset: str, image_size: int = DEFAULT_IMAGE_SIZE, root: str | os.PathLike[str] | None = None
) -> OmniglotData:
    """Load one subset (``background``, ``evaluation``, ``background_small1``, ...).

    Prefers the ``.npz`` cache, else decodes the zip/folder and writes the cache.

    Raises:
      DataNotFoundError: If the subset is not in ``$BLUR_DATA_DIR/omniglot``.
    """
    return _load_subset(subset, image_size, data_dir(root).resolve())


def merge(parts: Sequence[OmniglotData]) -> OmniglotData:
    """Union of subsets: characters merged by name, repeated drawings dropped."""
    char_index: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    rows: list[tuple[int, int]] = []  # (part, example)
    labels: list[int] = []
    for p_i, part in enumerate(parts):
        for j in range(part.images.shape[0]):
            name = part.char_names[int(part.labels[j])]
            key = (name, str(part.drawing_names[j]))
            if key in seen:
                continue
            seen.add(key)
            labels.append(char_index.setdefault(name, len(char_index)))
            rows.append((p_i, j))
    images = (
        np.stack([parts[p].images[j] for p, j in rows]) if rows else np.zeros((0, 1, 1), np.uint8)
    )
    drawings = np.asarray([str(parts[p].drawing_names[j]) for p, j in rows])
    return OmniglotData(images, np.asarray(labels, np.int32), tuple(char_index), drawings)


def load_omniglot(
    subsets: Sequence[str] | str = ("background",),
    image_size: int = DEFAULT_IMAGE_SIZE,
    alphabets: Sequence[str] | None = None,
    exclude_alphabets: Sequence[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    split: str = "all",
) -> OmniglotData:
    """Load and merge Omniglot subsets, optionally restricted to some alphabets.

    Args:
      subsets: Subset names, e.g. ``("background", "evaluation")`` for all 1623 characters or
        ``("background_small1", "background_small2")`` for the small subsets (242 characters).
      image_size: Side of the decoded images.
      alphabets: Keep only these alphabets.
      exclude_alphabets: Drop these alphabets (e.g. :data:`OMNIGLOT_SMALL_VAL_ALPHABETS`).
      root: Data root.
      split: ``all`` characters, or the ``train`` / ``val`` character carve-out (module doc).

    Returns:
      The merged drawings; labels index the merged ``char_names``.
    """
    if isinstance(subsets, str):
        subsets = (subsets,)
    parts = [load_subset(s, image_size, root) for s in subsets]
    data = parts[0] if len(parts) == 1 else merge(parts)
    if alphabets is not None or exclude_alphabets:
        data = data.select_alphabets(alphabets, exclude_alphabets)
    return data.select_split(split)


def clear_caches() -> None:
    """Forget memoised subsets."""
    _load_subset.cache_clear()


# -------------------------------------------------------------------------------- source


@dataclasses.dataclass(frozen=True)
class OmniglotSource:
    """Omniglot: its zips / folders / caches under ``$BLUR_DATA_DIR/omniglot``."""

    name: str = "omniglot"
    title: str = "Omniglot"
    folder: str = FOLDER

    @property
    def fetch_name(self) -> str:
        """The name given to ``blur data fetch``."""
        return self.name

    def status(self, root: Path) -> tuple[str, str]:
        """``(status, location)``: ``cached`` if any subset is decoded, else ``raw files`` or
        ``missing``; the location lists each subset's status."""
        subsets = available_subsets(root)
        where = str(root / self.folder)
        if not subsets:
            return "missing", where
        status = "cached" if "cached" in subsets.values() else "raw files"
        return status, where + " (" + ", ".join(f"{k}: {v}" for k, v in subsets.items()) + ")"

    def hint(self) -> str:
        """The commands that import Omniglot, for error messages."""
        return (
            "`blur data fetch omniglot` (downloads images_background.zip and "
            "images_evaluation.zip) or `blur data fetch omniglot --from DIR` (a folder with "
            "images_*.zip files or unpacked images_* folders)"
        )

    def missing(self, root: Path, detail: str = "") -> DataNotFoundError:
        """The error raised when a subset is not in ``root``."""
        return not_found(self.name, root / self.folder, self.hint(), root, detail)

    def load(self, root: Path, **options: Any) -> OmniglotData:
        """:func:`load_omniglot` under ``root`` (options: subsets, image_size, alphabets,
        exclude_alphabets, split)."""
        return load_omniglot(root=root, **options)

    def fetch(
        self, source: Path | None, mirror: str | None, root: Path, force: bool, log: Log
    ) -> list[Path]:
        """Import zips / folders from ``source``, or download the two official zips; see
        :mod:`blur.data.fetching` (imported here, only when fetching)."""
        from blur.data import fetching

        return fetching.fetch_omniglot(source, mirror, root, force, log)


OMNIGLOT = OmniglotSource()
