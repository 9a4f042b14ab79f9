"""Task families by name: ``get_family("xor")``, ``get_family("mnist:0-4", resolution=10)``.

A name may carry a class range suffix, ``"<name>:<classes>"`` (e.g. ``mnist:5-9``,
``emnist:10-19``), which is the same as passing ``classes="5-9"``.

Image families are registered from the data sources of :mod:`blur.data` (one classification
family and one N-way family per data set, plus ``omniglot``); data set aliases (``fashion``,
``emnist``) come from :data:`blur.data.ALIASES`, the one alias table of data set names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from blur.data import ALIASES as DATA_ALIASES
from blur.data import SOURCES, OmniglotSource
from blur.tasks.base import TaskFamily
from blur.tasks.images import ImageClassification, NWayEpisodes
from blur.tasks.mixture import Mixture
from blur.tasks.toy2d import TOY2D_KINDS, TOY2D_META_TRAIN, TOY2D_META_VAL, toy2d, toy2d_group


@dataclasses.dataclass(frozen=True)
class _Entry:
    factory: Callable[..., TaskFamily]
    description: str


_REGISTRY: dict[str, _Entry] = {}
_ALIASES: dict[str, str] = {
    "angular_slice": "pie",
    "pieslice": "pie",
    "centercirc": "centered_circle",
    "smallcentercirc": "small_centered_circle",
    "circ": "circle",
    "two_moon": "two_moons",
    "twomoon": "two_moons",
    "blob5x1": "blob5",
    "squares": "checkerboard",
    **DATA_ALIASES,
}


def register_family(
    name: str, factory: Callable[..., TaskFamily], description: str = "", *, replace: bool = False
) -> None:
    """Add a named family factory (``factory(**options) -> TaskFamily``) to the registry.

    Raises:
      ValueError: If the name is taken (pass ``replace=True`` to override).
    """
    if not replace and (name in _REGISTRY or name in _ALIASES):
        raise ValueError(f"task family {name!r} is already registered.")
    _REGISTRY[name] = _Entry(factory, description)


def list_families() -> tuple[str, ...]:
    """All registered family names (aliases not included), sorted."""
    return tuple(sorted(_REGISTRY))


def describe_families() -> dict[str, str]:
    """``name -> one-line description`` for every registered family."""
    return {name: _REGISTRY[name].description for name in list_families()}


def get_family(name: str, **options: Any) -> TaskFamily:
    """Build a task family by name.

    Args:
      name: A name from :func:`list_families` (or an alias such as ``pieslice``), optionally
        with a class suffix ``:<classes>`` for image families (``mnist:0-4``).
      **options: Passed to the family's factory, e.g. ``resolution=10``, ``standardize=True``,
        ``permute=True``, ``rotate=30.0``, ``num_ways=5``, ``split="test"``, ``num_blobs=3``.

    Returns:
      The family.

    Raises:
      ValueError: For an unknown name (the message lists the valid names) or bad options.
      DataNotFoundError: If an image family's data are not imported.
    """
    base, sep, classes = name.partition(":")
    base = base.strip().lower().replace("-", "_")
    base = _ALIASES.get(base, base)
    if base not in _REGISTRY:
        raise ValueError(
            f"unknown task family {name!r}; valid names: {', '.join(list_families())} "
            f"(aliases: {', '.join(sorted(_ALIASES))}; image families also take a class "
            "suffix such as 'mnist:0-4')."
        )
    if sep:
        if "classes" in options:
            raise ValueError(f"{name!r} gives classes twice (in the name and as an option).")
        options["classes"] = classes
    try:
        return _REGISTRY[base].factory(**options)
    except TypeError as e:
        raise ValueError(f"bad options {sorted(options)} for task family {base!r}: {e}") from e


# ------------------------------------------------------------------------ registrations


def _toy_factory(kind: str) -> Callable[..., TaskFamily]:
    def make(**options: Any) -> TaskFamily:
        return toy2d(kind, **options)

    return make


for _kind in TOY2D_KINDS:
    register_family(_kind, _toy_factory(_kind), f"2-D toy function {_kind} (see blur.tasks.toy2d)")
register_family("blob5", _toy_factory("blob5"), "2-D toy: 5 Gaussian blobs (the paper's blob5x1)")
register_family(
    "toy2d_train",
    lambda weights=None: toy2d_group(TOY2D_META_TRAIN, weights),
    f"mixture of the paper's meta-training toy functions {TOY2D_META_TRAIN}",
)
register_family(
    "toy2d_val",
    lambda weights=None: toy2d_group(TOY2D_META_VAL, weights),
    f"mixture of the paper's meta-validation toy functions {TOY2D_META_VAL}",
)


def _image_factory(dataset: str) -> Callable[..., TaskFamily]:
    def make(split: str = "train", **options: Any) -> TaskFamily:
        return ImageClassification.from_dataset(dataset, split, **options)

    return make


def _nway_factory(dataset: str) -> Callable[..., TaskFamily]:
    def make(num_ways: int = 5, split: str = "train", **options: Any) -> TaskFamily:
        return NWayEpisodes.from_dataset(dataset, num_ways, split, **options)

    return make


for _name, _source in SOURCES.items():
    if isinstance(_source, OmniglotSource):
        continue
    _title = f"{_source.title} ({_source.num_classes} classes)"  # type: ignore[attr-defined]
    register_family(
        _name,
        _image_factory(_name),
        f"{_title} classification; options: split (train, val, test, train_full), classes, "
        "resolution, standardize, permute, rotate, shuffle_labels",
    )
    register_family(_name + "_nway", _nway_factory(_name), f"{_title} N-way episodes (num_ways=5)")


def _omniglot(num_ways: int = 10, subsets: Any = ("background",), **options: Any) -> TaskFamily:
    return NWayEpisodes.from_omniglot(num_ways, subsets, **options)


register_family(
    "omniglot",
    _omniglot,
    "Omniglot N-way episodes (num_ways=10, subsets, alphabets, exclude_alphabets, image_size, "
    "split: all, train, val characters)",
)


def _mnist_meta_train(resolution: int | None = 10, **options: Any) -> TaskFamily:
    members = [
        ImageClassification.from_dataset("mnist", classes=c, resolution=resolution, **options)
        for c in (None, "0-4", "5-9")
    ]
    return Mixture(tuple(members), name="mnist_meta_train")


register_family(
    "mnist_meta_train",
    _mnist_meta_train,
    "the paper's MNIST meta-training mixture: digits 0-9, 0-4, 5-9 at 10x10 (20x20 crop)",
)
