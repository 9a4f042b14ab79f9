"""Pure, exact image and label transforms.

The image transforms are JAX functions over ``[..., H, W]`` arrays (any leading batch dims), so
they run per sampled batch inside ``jit``. The label / index helpers run once on the host
(numpy) when a task family is built.

Resolutions follow the paper: 28x28 is the identity, 14x14 is a 2x2 average pool, and 10x10
is a 20x20 centre crop followed by a 2x2 average pool. In general, resizing an ``S x S`` image
to ``R x R`` crops the centre ``kR x kR`` with ``k = S // R`` and average-pools ``k x k``
blocks (:func:`resize_plan`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

# ----------------------------------------------------------------------------- images (JAX)


def center_crop(images: jax.Array, size: int) -> jax.Array:
    """Crop the central ``size x size`` window.

    When ``H - size`` is odd, the extra row/column is dropped at the bottom/right.

    Args:
      images: [..., H, W] array.
      size: Output side; ``size <= min(H, W)``.

    Returns:
      [..., size, size] array.
    """
    H, W = images.shape[-2:]
    if not 0 < size <= min(H, W):
        raise ValueError(f"center_crop: size {size} must be in 1..{min(H, W)} for {H}x{W} images.")
    top, left = (H - size) // 2, (W - size) // 2
    return images[..., top : top + size, left : left + size]


def avg_pool(images: jax.Array, factor: int) -> jax.Array:
    """Average non-overlapping ``factor x factor`` blocks.

    Args:
      images: [..., H, W] array with H and W divisible by ``factor``.
      factor: Block side (>= 1).

    Returns:
      [..., H // factor, W // factor] array (float dtype preserved; ints become float32).
    """
    H, W = images.shape[-2:]
    if factor < 1 or H % factor or W % factor:
        raise ValueError(
            f"avg_pool: factor {factor} must be >= 1 and divide the image size {H}x{W}."
        )
    if factor == 1:
        return images
    x = images if jnp.issubdtype(images.dtype, jnp.floating) else images.astype(jnp.float32)
    # A sum of factor**2 strided slices: exact block sums, and much faster on CPU than a
    # reshape-and-mean (which XLA lowers to a slow strided reduction).
    total = None
    for i in range(factor):
        for j in range(factor):
            part = x[..., i::factor, j::factor]
            total = part if total is None else total + part
    return total / (factor * factor)


def resize_plan(source: int, resolution: int) -> tuple[int, int]:
    """How :func:`resize` maps ``source x source`` images to ``resolution x resolution``.

    Args:
      source: Input side.
      resolution: Output side, ``1 <= resolution <= source``.

    Returns:
      ``(crop, factor)``: centre-crop to ``crop x crop``, then average-pool ``factor x factor``;
      ``crop = factor * resolution`` and ``factor = source // resolution``. E.g. 28 -> 10 gives
      (20, 2) (the paper's 10x10 variant), 28 -> 14 gives (28, 2), 28 -> 28 gives (28, 1).
    """
    if not 1 <= resolution <= source:
        raise ValueError(
            f"resolution {resolution} is not valid for {source}x{source} images: pick a value "
            f"in 1..{source} (e.g. 28, 14 or 10 for 28x28 data), or None for the native size."
        )
    factor = source // resolution
    return factor * resolution, factor


def resize(images: jax.Array, resolution: int | None) -> jax.Array:
    """Crop-and-pool square images to ``resolution x resolution`` (see :func:`resize_plan`).

    Args:
      images: [..., S, S] array.
      resolution: Output side, or None for the identity.

    Returns:
      [..., resolution, resolution] array.
    """
    if resolution is None:
        return images
    H, W = images.shape[-2:]
    if H != W:
        raise ValueError(f"resize: expected square images, got {H}x{W}.")
    crop, factor = resize_plan(H, resolution)
    return avg_pool(center_crop(images, crop), factor)


def output_side(source: int, resolution: int | None) -> int:
    """Side of the images :func:`resize` returns for ``source x source`` inputs."""
    if resolution is None:
        return source
    resize_plan(source, resolution)
    return resolution


def to_unit(images: jax.Array, max_value: float = 255.0) -> jax.Array:
    """Scale integer pixels in ``[0, max_value]`` to float32 in ``[0, 1]``.

    Args:
      images: Integer (or float) array of any shape.
      max_value: The largest possible pixel value (255 for 8-bit images, 16 for sklearn digits).

    Returns:
      float32 array of the same shape.
    """
    return images.astype(jnp.float32) / jnp.float32(max_value)


def standardize(x: jax.Array, mean: float | jax.Array, std: float | jax.Array) -> jax.Array:
    """Return ``(x - mean) / std`` in float32 (scalar or broadcastable statistics)."""
    return (x.astype(jnp.float32) - mean) / std


def flatten_images(images: jax.Array) -> jax.Array:
    """Flatten the last two (spatial) axes: [..., H, W] -> [..., H * W]."""
    return images.reshape(*images.shape[:-2], images.shape[-2] * images.shape[-1])


def permute_pixels(x: jax.Array, perm: jax.Array) -> jax.Array:
    """Reorder the features of flattened inputs: ``out[..., i] = x[..., perm[i]]``.

    Args:
      x: [..., n] array.
      perm: [n] integer permutation of ``range(n)``.

    Returns:
      [..., n] array.
    """
    return jnp.take(x, perm, axis=-1)


def rotate(images: jax.Array, angle: float | jax.Array) -> jax.Array:
    """Rotate images counter-clockwise (as displayed) about their centre; bilinear, zero fill.

    A rotation by ``pi / 2`` equals ``np.rot90(image)`` (up to float rounding), and 0 is the
    identity. ``angle`` may be a traced scalar, so one jitted function serves every angle.

    Args:
      images: [..., H, W] array.
      angle: Scalar angle in radians.

    Returns:
      [..., H, W] float32 array.
    """
    H, W = images.shape[-2:]
    x = images.astype(jnp.float32)
    cy, cx = (H - 1) / 2.0, (W - 1) / 2.0
    rows, cols = jnp.meshgrid(
        jnp.arange(H, dtype=jnp.float32), jnp.arange(W, dtype=jnp.float32), indexing="ij"
    )
    # Output pixel -> "display" coordinates (x right, y up) -> inverse rotation -> input pixel.
    px, py = cols - cx, cy - rows
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    src_c = cos * px + sin * py + cx
    src_r = cy - (-sin * px + cos * py)
    r0, c0 = jnp.floor(src_r), jnp.floor(src_c)
    fr, fc = src_r - r0, src_c - c0
    r0, c0 = r0.astype(jnp.int32), c0.astype(jnp.int32)
    out = jnp.zeros_like(x)
    for dr, dc, w in (
        (0, 0, (1 - fr) * (1 - fc)),
        (0, 1, (1 - fr) * fc),
        (1, 0, fr * (1 - fc)),
        (1, 1, fr * fc),
    ):
        r, c = r0 + dr, c0 + dc
        valid = (r >= 0) & (r < H) & (c >= 0) & (c < W)
        v = x[..., jnp.clip(r, 0, H - 1), jnp.clip(c, 0, W - 1)]
        out = out + jnp.where(valid, w, 0.0) * v
    return out


# ------------------------------------------------------------------ labels and indices (host)


def parse_classes(spec: str | int | Sequence[int] | range | None) -> tuple[int, ...] | None:
    """Normalise a class selection to a tuple of class ids.

    Args:
      spec: None (all classes), an int ``n`` (classes ``0..n-1``), a sequence/range of ids, or a
        string like ``"0-4"``, ``"5-9"``, ``"10-19"`` (inclusive ranges) or ``"0-4,7,9"``.

    Returns:
      The class ids in the order given (this order defines the remapped labels), or None.
    """
    if spec is None:
        return None
    if isinstance(spec, int):
        return tuple(range(spec))
    if isinstance(spec, str):
        out: list[int] = []
        for part in spec.replace(" ", "").split(","):
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if not m:
                raise ValueError(
                    f"bad class spec {spec!r}: use comma-separated ids or inclusive ranges, e.g. "
                    "'0-4' or '0-4,7'."
                )
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            if hi < lo:
                raise ValueError(f"bad class range {part!r} in {spec!r}: end is before start.")
            out.extend(range(lo, hi + 1))
        spec = out
    classes = tuple(int(c) for c in spec)
    if len(set(classes)) != len(classes):
        raise ValueError(f"class selection {classes} has duplicates.")
    if not classes:
        raise ValueError("class selection is empty.")
    return classes


def select_classes(
    labels: np.ndarray, classes: Sequence[int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Pick the examples of some classes and remap their labels to ``0..len(classes)-1``.

    Args:
      labels: [N] integer labels.
      classes: Class ids to keep; ``classes[i]`` becomes label ``i``. None keeps everything.

    Returns:
      ``(indices, new_labels)``: [M] int64 indices into ``labels`` (in original order) and
      [M] int32 remapped labels.

    Raises:
      ValueError: If a requested class has no examples.
    """
    labels = np.asarray(labels)
    if classes is None:
        return np.arange(labels.shape[0]), labels.astype(np.int32)
    present = set(np.unique(labels).tolist())
    missing = [c for c in classes if c not in present]
    if missing:
        raise ValueError(
            f"classes {missing} have no examples; the data have classes "
            f"{min(present)}..{max(present)} ({len(present)} distinct)."
        )
    lut = np.full(int(max(int(labels.max()), max(classes))) + 1, -1, np.int64)
    lut[list(classes)] = np.arange(len(classes))
    mapped = lut[labels]
    indices = np.nonzero(mapped >= 0)[0]
    return indices, mapped[indices].astype(np.int32)


def class_index_table(labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Group example indices by class for episode sampling.

    Args:
      labels: [N] labels in ``0..num_classes-1``.
      num_classes: C.

    Returns:
      ``(table, counts)``: [C, M] int32 table whose row ``c`` starts with the indices of class
      ``c`` (in original order) padded with -1 up to ``M = max count``, and [C] int32 counts.
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes).astype(np.int32)
    table = np.full((num_classes, int(counts.max(initial=0))), -1, np.int32)
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for c in range(num_classes):
        table[c, : counts[c]] = order[starts[c] : starts[c] + counts[c]]
    return table, counts


def holdout_split(
    num_examples: int, holdout_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(num_examples)`` into disjoint support and held-out (query) index sets.

    The split is a fixed, seeded random permutation, so it is the same in every process.

    Args:
      num_examples: N.
      holdout_fraction: Fraction in (0, 1) of examples held out for queries.
      seed: numpy seed of the permutation.

    Returns:
      ``(support_idx, query_idx)``: disjoint sorted int64 arrays covering ``range(N)``.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}.")
    if num_examples < 2:
        raise ValueError(f"need at least 2 examples for a support/query split, got {num_examples}.")
    n_query = min(max(1, math.floor(num_examples * holdout_fraction)), num_examples - 1)
    perm = np.random.default_rng(seed).permutation(num_examples)
    return np.sort(perm[n_query:]), np.sort(perm[:n_query])
