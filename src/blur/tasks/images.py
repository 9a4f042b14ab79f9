"""Image task families (whole data sets, class subsets, N-way episodes) and evaluation splits.

Both families keep the images on the device as uint8 ``[N, H, W]`` leaves and do all the
per-batch work inside ``sample`` (gather, scale to [0, 1], optional per-task rotation, crop and
pool to the resolution, flatten, optional standardisation and per-task pixel permutation), so
sampling is pure JAX and runs under ``jit`` / ``vmap`` / ``lax.scan``.

Support/query separation:

* :class:`ImageClassification` built on a split (``train`` by default) holds out a fixed,
  seeded random fraction of that split (``holdout_fraction``, default 1/6) as the query pool.
  Support batches are drawn only from the rest and query batches only from the held-out
  part, in every episode, so queries are never trained on. With ``query_split`` (e.g.
  ``mnist?split=train&query_split=test``) the support pool is the whole ``split`` and the query
  pool the whole other split, drawn without replacement: a query of 10,000 scores every MNIST
  test image once.

Splits (:class:`blur.data.ImageData`): ``train`` is the training file minus the ``val``
carve-out (a fixed, seeded sixth of it: 10,000 of MNIST's 60,000), ``val`` is that carve-out,
``train_full`` both, ``test`` the official test file. So a family on ``split="val"`` never
shares an image with one on ``split="train"``; the carve-out's size and seed are in the family
name (``mnist[val:10000,seed=0]``). Omniglot carves out characters instead
(:mod:`blur.data.omniglot`).
* :class:`NWayEpisodes` picks N classes per episode and, per class, a fresh random partition
  of its examples into support (``support_fraction``) and query parts; support and query
  batches are drawn from their own parts, so no example is in both.

Batches are drawn with replacement (uniform over the allowed examples).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from blur._pytree import pytree_dataclass, static_field
from blur.data import ImageData, OmniglotSource, get_source, load_dataset, load_omniglot
from blur.data.omniglot import DEFAULT_IMAGE_SIZE
from blur.data.omniglot import split_label as omniglot_split_label
from blur.tasks import transforms as tf
from blur.tasks.base import Episode, check_episode_args, split_flat

_STATS_CHUNK = 8192


def _prepare(
    images: jax.Array,
    *,
    max_value: float,
    resolution: int | None,
    mean: float,
    std: float,
    angle: jax.Array | None,
    perm: jax.Array | None,
) -> jax.Array:
    """uint8 [..., H, W] -> float32 [..., n_in] (scale, rotate, resize, flatten, standardise,
    permute)."""
    x = tf.to_unit(images, max_value)
    if angle is not None:
        x = tf.rotate(x, angle)
    x = tf.flatten_images(tf.resize(x, resolution))
    if mean != 0.0 or std != 1.0:
        x = tf.standardize(x, mean, std)
    if perm is not None:
        x = tf.permute_pixels(x, perm)
    return x


def pixel_stats(
    images: np.ndarray, max_value: float, resolution: int | None
) -> tuple[float, float]:
    """Mean and std of all pixels after scaling to [0, 1] and resizing (host, chunked).

    Args:
      images: [N, H, W] integer images.
      max_value: Largest pixel value.
      resolution: As in :func:`~blur.tasks.transforms.resize`.

    Returns:
      ``(mean, std)`` as Python floats (std is at least 1e-6).
    """
    total, total_sq, count = 0.0, 0.0, 0
    for start in range(0, images.shape[0], _STATS_CHUNK):
        chunk = np.asarray(images[start : start + _STATS_CHUNK], np.float64) / max_value
        chunk = np.asarray(tf.resize(chunk, resolution))
        total += float(chunk.sum())
        total_sq += float(np.square(chunk).sum())
        count += chunk.size
    mean = total / max(count, 1)
    var = max(total_sq / max(count, 1) - mean * mean, 0.0)
    return mean, max(math.sqrt(var), 1e-6)


def _task_params(
    key: jax.Array, n_in: int, permute: bool, rotate: float
) -> tuple[jax.Array | None, jax.Array | None]:
    k_perm, k_rot = jax.random.split(key)
    perm = jax.random.permutation(k_perm, n_in) if permute else None
    angle = None
    if rotate > 0:
        max_rad = math.radians(rotate)
        angle = jax.random.uniform(k_rot, (), minval=-max_rad, maxval=max_rad)
    return angle, perm


def _check_variant_options(rotate: float, resolution: int | None, side: int) -> None:
    if not 0.0 <= rotate <= 180.0:
        raise ValueError(f"rotate is a maximum angle in degrees in [0, 180], got {rotate}.")
    tf.output_side(side, resolution)


@pytree_dataclass
class ImageClassification:
    """Classification on one image data set split, with optional per-task variants.

    One episode = one task: with ``permute`` a fresh pixel permutation, with ``rotate`` a
    fresh rotation angle in ``[-rotate, rotate]`` degrees, with ``shuffle_labels`` a fresh
    label permutation; otherwise every episode is the same task with new batches. Support
    and query come from disjoint parts of the split (see the module docstring).

    Build with :meth:`from_dataset` (or :meth:`from_arrays`).

    Attributes:
      support_images: [Ns, H, W] uint8 pool for support batches.
      support_labels: [Ns] int32.
      query_images: [Nq, H, W] uint8 pool for query batches (disjoint from the support pool).
      query_labels: [Nq] int32.
      name / num_inputs / num_classes: The ``TaskFamily`` fields.
      resolution: Output side (None: native).
      max_value: Pixel scale (255, or 16 for digits).
      mean, std: Standardisation constants (0 and 1 when off).
      permute: Per-task pixel permutation.
      rotate: Per-task rotation range in degrees (0: off).
      shuffle_labels: Per-task label permutation.
      query_whole: Query draws without replacement (a separate query set, ``query_split``).
    """

    support_images: jax.Array
    support_labels: jax.Array
    query_images: jax.Array
    query_labels: jax.Array
    name: str = static_field()
    num_inputs: int = static_field()
    num_classes: int = static_field()
    resolution: int | None = static_field(default=None)
    max_value: float = static_field(default=255.0)
    mean: float = static_field(default=0.0)
    std: float = static_field(default=1.0)
    permute: bool = static_field(default=False)
    rotate: float = static_field(default=0.0)
    shuffle_labels: bool = static_field(default=False)
    query_whole: bool = static_field(default=False)

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        name: str = "images",
        num_classes: int | None = None,
        classes: str | int | Sequence[int] | None = None,
        resolution: int | None = None,
        standardize: bool = False,
        permute: bool = False,
        rotate: float = 0.0,
        shuffle_labels: bool = False,
        holdout_fraction: float = 1.0 / 6.0,
        max_value: float = 255.0,
        seed: int = 0,
        query_images: np.ndarray | None = None,
        query_labels: np.ndarray | None = None,
    ) -> ImageClassification:
        """Build from host arrays.

        Args:
          images: [N, H, W] integer images in ``[0, max_value]``.
          labels: [N] integer labels.
          name: Family name.
          num_classes: Class count (default ``labels.max() + 1``; with ``classes``, their
            number).
          classes: Class subset (see :func:`~blur.tasks.transforms.parse_classes`), relabelled
            ``0..len-1`` in the given order, e.g. ``"5-9"`` -> labels 0..4.
          resolution: Output side (e.g. 28, 14, 10), None for the native size.
          standardize: Subtract the support pool's pixel mean and divide by its std.
          permute: Per-task random pixel permutation.
          rotate: Per-task rotation range in degrees (0 = off).
          shuffle_labels: Per-task random label permutation.
          holdout_fraction: Fraction of the examples held out as the query pool.
          max_value: Largest pixel value.
          seed: Seed of the fixed support/query split.
          query_images, query_labels: A separate query set (e.g. a whole test split): then
            every support image is a support image, nothing is held out, and the query draws
            are without replacement (``query_whole``), so a query of the set's size scores
            each of its images exactly once.

        Returns:
          The family (arrays moved to the default device).
        """
        images = np.asarray(images)
        if images.ndim != 3:
            raise ValueError(f"images must be [N, H, W], got shape {images.shape}.")
        _check_variant_options(rotate, resolution, images.shape[1])
        class_ids = tf.parse_classes(classes)
        idx, y = tf.select_classes(np.asarray(labels), class_ids)
        if class_ids is not None:
            n_classes = len(class_ids)
        else:
            n_classes = int(num_classes if num_classes is not None else y.max() + 1)
        x = images[idx]
        if (query_images is None) != (query_labels is None):
            raise ValueError("query_images and query_labels must be given together")
        if query_images is None:
            s_idx, q_idx = tf.holdout_split(x.shape[0], holdout_fraction, seed)
            xs, ys, xq, yq = x[s_idx], y[s_idx], x[q_idx], y[q_idx]
        else:
            q_images = np.asarray(query_images)
            if q_images.shape[1:] != images.shape[1:]:
                raise ValueError(
                    f"query images have shape {q_images.shape[1:]} but the support images "
                    f"{images.shape[1:]}; both must come from the same data set"
                )
            q_sel, yq = tf.select_classes(np.asarray(query_labels), class_ids)
            xs, ys, xq = x, y, q_images[q_sel]
        mean, std = pixel_stats(xs, max_value, resolution) if standardize else (0.0, 1.0)
        side = tf.output_side(images.shape[1], resolution)
        return cls(
            support_images=jnp.asarray(xs),
            support_labels=jnp.asarray(ys),
            query_images=jnp.asarray(xq),
            query_labels=jnp.asarray(yq),
            name=name,
            num_inputs=side * side,
            num_classes=n_classes,
            resolution=resolution,
            max_value=float(max_value),
            mean=mean,
            std=std,
            permute=permute,
            rotate=float(rotate),
            shuffle_labels=shuffle_labels,
            query_whole=query_images is not None,
        )

    @classmethod
    def from_dataset(
        cls,
        dataset: str,
        split: str = "train",
        *,
        classes: str | int | Sequence[int] | None = None,
        resolution: int | None = None,
        standardize: bool = False,
        permute: bool = False,
        rotate: float = 0.0,
        shuffle_labels: bool = False,
        holdout_fraction: float = 1.0 / 6.0,
        seed: int = 0,
        query_split: str | None = None,
        root: str | os.PathLike[str] | None = None,
        name: str | None = None,
    ) -> ImageClassification:
        """Build from a data set split (e.g. ``("mnist", "train")``); options as in
        :meth:`from_arrays`. ``split`` is ``train`` (the training file minus ``val``),
        ``val``, ``test`` or ``train_full`` (module docstring).

        With ``query_split`` (e.g. ``"test"``) support batches come from the whole ``split``
        and query batches from the whole ``query_split``, without replacement: the usual
        "train on the training set, score the full test set" protocol
        (``mnist?split=train&query_split=test``; a query of 10,000 is MNIST's whole test set).

        Raises:
          DataNotFoundError: If the data set is not imported (the message gives the command).
        """
        if query_split == split:
            raise ValueError(
                f"query_split={query_split!r} equals split: support and query would share "
                "images; leave query_split out to hold out a query pool of the split instead"
            )
        data = load_dataset(dataset, root)
        images, labels = data.split(split)
        q_images, q_labels = data.split(query_split) if query_split is not None else (None, None)
        if name is None:
            label = data.split_label(split)
            if query_split is not None:
                label += f"|query={data.split_label(query_split)}"
            name = _family_name(data.name, label, classes, resolution, permute, rotate)
        return cls.from_arrays(
            images,
            labels,
            name=name,
            num_classes=data.num_classes,
            classes=classes,
            resolution=resolution,
            standardize=standardize,
            permute=permute,
            rotate=rotate,
            shuffle_labels=shuffle_labels,
            holdout_fraction=holdout_fraction,
            max_value=data.max_value,
            seed=seed,
            query_images=q_images,
            query_labels=q_labels,
        )

    def _draw(
        self,
        key: jax.Array,
        images: jax.Array,
        labels: jax.Array,
        n: int,
        angle: jax.Array | None,
        perm: jax.Array | None,
        label_perm: jax.Array | None,
        whole: bool = False,
    ) -> tuple[jax.Array, jax.Array]:
        if whole:  # without replacement: a shuffled pass over the pool, repeated if n > N
            order = jax.random.permutation(key, images.shape[0])
            idx = order[jnp.arange(n) % images.shape[0]]
        else:
            idx = jax.random.randint(key, (n,), 0, images.shape[0])
        x = _prepare(
            images[idx],
            max_value=self.max_value,
            resolution=self.resolution,
            mean=self.mean,
            std=self.std,
            angle=angle,
            perm=perm,
        )
        y = labels[idx]
        if label_perm is not None:
            y = label_perm[y]
        return x, y

    def sample(
        self,
        key: jax.Array,
        num_steps: int,
        batch_size: int,
        num_query_batches: int = 1,
        query_batch_size: int | None = None,
    ) -> Episode:
        """One task (variant parameters from ``key``) and an episode of it.

        Returns:
          Support x [T, B, n_in] from the support pool, query x [Q, Bq, n_in] from the held-out
          pool; float32 inputs and int32 labels.
        """
        T, B, Q, Bq = check_episode_args(num_steps, batch_size, num_query_batches, query_batch_size)
        k_task, k_labels, k_s, k_q = jax.random.split(key, 4)
        angle, perm = _task_params(k_task, self.num_inputs, self.permute, self.rotate)
        label_perm = (
            jax.random.permutation(k_labels, self.num_classes).astype(jnp.int32)
            if self.shuffle_labels
            else None
        )
        xs, ys = self._draw(
            k_s, self.support_images, self.support_labels, T * B, angle, perm, label_perm
        )
        xq, yq = self._draw(
            k_q,
            self.query_images,
            self.query_labels,
            Q * Bq,
            angle,
            perm,
            label_perm,
            whole=self.query_whole,
        )
        return split_flat(jnp.concatenate([xs, xq]), jnp.concatenate([ys, yq]), T, B, Q, Bq)


@pytree_dataclass
class NWayEpisodes:
    """N-way episodes: each episode picks ``num_ways`` classes from a pool and relabels them.

    Per episode: N distinct classes are drawn uniformly from the pool and given labels
    ``0..N-1`` in draw order; each chosen class's examples are randomly split into a support
    part (``support_fraction``, at least one example) and a query part (at least one); support
    batches draw (class uniform, example uniform in its support part) and query batches
    likewise from the query parts, so support and query never share an example.

    Build with :meth:`from_arrays`, :meth:`from_dataset` or :meth:`from_omniglot`.

    Attributes:
      images: [N, H, W] uint8 pool.
      class_table: [C, M] int32 example indices per pool class (padded with -1).
      class_counts: [C] int32 number of examples per pool class.
      name / num_inputs / num_classes: ``num_classes`` is ``num_ways``.
      num_pool_classes: C.
      support_fraction: Fraction of each class's examples used for support.
      resolution, max_value, mean, std, permute, rotate: As in :class:`ImageClassification`.
    """

    images: jax.Array
    class_table: jax.Array
    class_counts: jax.Array
    name: str = static_field()
    num_inputs: int = static_field()
    num_classes: int = static_field()
    num_pool_classes: int = static_field()
    support_fraction: float = static_field(default=0.5)
    resolution: int | None = static_field(default=None)
    max_value: float = static_field(default=255.0)
    mean: float = static_field(default=0.0)
    std: float = static_field(default=1.0)
    permute: bool = static_field(default=False)
    rotate: float = static_field(default=0.0)

    @property
    def num_ways(self) -> int:
        """N, the number of classes per episode."""
        return self.num_classes

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray,
        labels: np.ndarray,
        num_ways: int,
        *,
        name: str = "nway",
        classes: str | int | Sequence[int] | None = None,
        support_fraction: float = 0.5,
        resolution: int | None = None,
        standardize: bool = False,
        permute: bool = False,
        rotate: float = 0.0,
        max_value: float = 255.0,
    ) -> NWayEpisodes:
        """Build from host arrays.

        Args:
          images: [N, H, W] integer images.
          labels: [N] integer class ids (the pool).
          num_ways: Classes per episode (2 <= num_ways <= pool classes).
          name: Family name.
          classes: Restrict the pool to these classes.
          support_fraction: Fraction in (0, 1) of each class's examples for support.
          resolution: Output side (None: native).
          standardize: Standardise with the pool's pixel mean/std.
          permute: Per-episode random pixel permutation.
          rotate: Per-episode rotation range in degrees.
          max_value: Largest pixel value.

        Returns:
          The family.
        """
        images = np.asarray(images)
        if images.ndim != 3:
            raise ValueError(f"images must be [N, H, W], got shape {images.shape}.")
        _check_variant_options(rotate, resolution, images.shape[1])
        if not 0.0 < support_fraction < 1.0:
            raise ValueError(f"support_fraction must be in (0, 1), got {support_fraction}.")
        idx, y = tf.select_classes(np.asarray(labels), tf.parse_classes(classes))
        x = images[idx]
        # Compact the class ids so that every pool class has examples.
        present, y = np.unique(y, return_inverse=True)
        table, counts = tf.class_index_table(y, len(present))
        if not 2 <= num_ways <= len(present):
            raise ValueError(
                f"num_ways={num_ways} must be between 2 and the number of pool classes "
                f"({len(present)})."
            )
        if counts.min() < 2:
            raise ValueError(
                f"every class needs at least 2 examples for disjoint support and query; class "
                f"{int(present[counts.argmin()])} has {int(counts.min())}."
            )
        mean, std = pixel_stats(x, max_value, resolution) if standardize else (0.0, 1.0)
        side = tf.output_side(images.shape[1], resolution)
        return cls(
            images=jnp.asarray(x),
            class_table=jnp.asarray(table),
            class_counts=jnp.asarray(counts),
            name=name,
            num_inputs=side * side,
            num_classes=num_ways,
            num_pool_classes=len(present),
            support_fraction=float(support_fraction),
            resolution=resolution,
            max_value=float(max_value),
            mean=mean,
            std=std,
            permute=permute,
            rotate=float(rotate),
        )

    @classmethod
    def from_dataset(
        cls,
        dataset: str,
        num_ways: int,
        split: str = "train",
        *,
        classes: str | int | Sequence[int] | None = None,
        root: str | os.PathLike[str] | None = None,
        name: str | None = None,
        **options: Any,
    ) -> NWayEpisodes:
        """N-way episodes over a data set split (e.g. 5-way MNIST; splits as in
        :meth:`ImageClassification.from_dataset`); options as in :meth:`from_arrays`."""
        data = load_dataset(dataset, root)
        images, labels = data.split(split)
        return cls.from_arrays(
            images,
            labels,
            num_ways,
            name=name or f"{data.name}_{num_ways}way[{data.split_label(split)}]",
            classes=classes,
            max_value=data.max_value,
            **options,
        )

    @classmethod
    def from_omniglot(
        cls,
        num_ways: int = 10,
        subsets: Sequence[str] | str = ("background",),
        *,
        alphabets: Sequence[str] | None = None,
        exclude_alphabets: Sequence[str] | None = None,
        image_size: int = DEFAULT_IMAGE_SIZE,
        split: str = "all",
        root: str | os.PathLike[str] | None = None,
        name: str | None = None,
        **options: Any,
    ) -> NWayEpisodes:
        """Omniglot N-way episodes (10-way by default, as in the paper) over some subsets and
        alphabets; every character is a class. ``split`` is ``all`` characters of that pool,
        or its ``train`` / ``val`` character carve-out (:mod:`blur.data.omniglot`). Options as
        in :meth:`from_arrays`."""
        data = load_omniglot(subsets, image_size, alphabets, exclude_alphabets, root, split)
        subset_label = "+".join([subsets] if isinstance(subsets, str) else subsets)
        if name is None:
            name = f"omniglot_{num_ways}way_{subset_label}"
            if split != "all":
                name += f"[{omniglot_split_label(split)}]"
        return cls.from_arrays(
            data.images,
            data.labels,
            num_ways,
            name=name,
            **options,
        )

    def sample(
        self,
        key: jax.Array,
        num_steps: int,
        batch_size: int,
        num_query_batches: int = 1,
        query_batch_size: int | None = None,
    ) -> Episode:
        """One N-way task and an episode of it (labels ``0..N-1``; disjoint support/query)."""
        T, B, Q, Bq = check_episode_args(num_steps, batch_size, num_query_batches, query_batch_size)
        k_cls, k_split, k_task, k_sl, k_sp, k_ql, k_qp = jax.random.split(key, 7)
        N, M = self.num_classes, self.class_table.shape[1]
        chosen = jax.random.choice(k_cls, self.num_pool_classes, (N,), replace=False)
        rows = self.class_table[chosen]  # [N, M]
        counts = self.class_counts[chosen]  # [N]
        # A random order of each chosen class's examples: valid slots first, shuffled.
        keys = jax.random.uniform(k_split, (N, M))
        keys = jnp.where(jnp.arange(M)[None, :] < counts[:, None], keys, 2.0)
        order = jnp.take_along_axis(rows, jnp.argsort(keys, axis=1), axis=1)  # [N, M]
        n_sup = jnp.clip(jnp.round(counts * self.support_fraction), 1, counts - 1).astype(jnp.int32)

        def draw(
            k_label: jax.Array, k_pos: jax.Array, n: int, query: bool
        ) -> tuple[jax.Array, jax.Array]:
            y = jax.random.randint(k_label, (n,), 0, N, dtype=jnp.int32)
            u = jax.random.uniform(k_pos, (n,))
            lo = jnp.where(query, n_sup[y], 0)
            size = jnp.where(query, counts[y] - n_sup[y], n_sup[y])
            pos = lo + jnp.minimum(jnp.floor(u * size).astype(jnp.int32), size - 1)
            return order[y, pos], y

        angle, perm = _task_params(k_task, self.num_inputs, self.permute, self.rotate)
        idx_s, ys = draw(k_sl, k_sp, T * B, False)
        idx_q, yq = draw(k_ql, k_qp, Q * Bq, True)
        idx = jnp.concatenate([idx_s, idx_q])
        x = _prepare(
            self.images[idx],
            max_value=self.max_value,
            resolution=self.resolution,
            mean=self.mean,
            std=self.std,
            angle=angle,
            perm=perm,
        )
        return split_flat(x, jnp.concatenate([ys, yq]), T, B, Q, Bq)


def _family_name(
    dataset: str,
    split_label: str,
    classes: str | int | Sequence[int] | None,
    resolution: int | None,
    permute: bool,
    rotate: float,
) -> str:
    name = dataset
    if classes is not None:
        spec = classes if isinstance(classes, str | int) else ",".join(map(str, classes))
        name += f":{spec}"
    if resolution is not None:
        name += f"@{resolution}x{resolution}"
    if permute:
        name += "+permuted"
    if rotate:
        name += f"+rotated{rotate:g}"
    return name + f"[{split_label}]"


def load_split(
    name: str,
    split: str = "test",
    *,
    resolution: int | None = None,
    classes: str | int | Sequence[int] | None = None,
    standardize: bool = False,
    image_size: int = DEFAULT_IMAGE_SIZE,
    root: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A whole split as flat arrays, for evaluation.

    Args:
      name: Data set name (``mnist``, ``fashion_mnist``, ``kmnist``, ``emnist[_<split>]``,
        ``digits``, or ``omniglot`` whose ``split`` is a subset name such as ``evaluation``).
      split: ``train`` (the training file minus ``val``), ``val``, ``test`` or
        ``train_full`` (Omniglot: the subset).
      resolution: Output side (None: native, e.g. 28).
      classes: Class subset, relabelled ``0..len-1``.
      standardize: Standardise with the ``train`` split's pixel mean/std at this resolution
        (Omniglot: the subset's own).
      image_size: Omniglot decode size.
      root: Data root.

    Returns:
      ``(x, y)``: host arrays, x [N, n_in] float32 in [0, 1] (or standardised), y [N] int32.

    Raises:
      DataNotFoundError: If the data set is not imported.
    """
    source = get_source(name)
    if isinstance(source, OmniglotSource):
        o = load_omniglot(split, image_size, root=root)
        data = ImageData(source.name, {split: o.images}, {split: o.labels}, o.num_classes)
        stats_split = split
    else:
        data = load_dataset(name, root)
        stats_split = "train"
    images, labels = data.split(split)
    idx, y = tf.select_classes(labels, tf.parse_classes(classes))
    images = images[idx]
    chunks = []
    for start in range(0, images.shape[0], _STATS_CHUNK):
        chunk = np.asarray(images[start : start + _STATS_CHUNK], np.float32) / np.float32(
            data.max_value
        )
        chunks.append(np.asarray(tf.flatten_images(tf.resize(chunk, resolution)), np.float32))
    x = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
    if standardize:
        mean, std = pixel_stats(data.split(stats_split)[0], data.max_value, resolution)
        x = (x - np.float32(mean)) / np.float32(std)
    return x, y.astype(np.int32)
