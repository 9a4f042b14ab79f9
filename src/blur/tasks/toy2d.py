"""2-D toy classification families (the paper's Fig. 3 functions and a few more).

Inputs are uniform in ``[-1, 1]^2`` (except ``blobs``, see below). Each episode draws one task:
the function's random parameters (centre, radius, rotation, ...) come from the episode key,
and the support and query batches of the episode share them. Labels are integer class ids
(0/1 for the binary functions; "positive" below means label 1).

Label conventions (``x = (x0, x1)``):

================================ =============================================================
name                             label 1 iff / classes
================================ =============================================================
``xor``                          ``(x0 > 0) != (x1 > 0)`` (quadrants II and IV)
``nxor``                         ``(x0 > 0) == (x1 > 0)`` (quadrants I and III)
``and``                          ``x0 > 0 and x1 > 0`` (quadrant I, 25 % positive)
``or``                           ``x0 > 0 or x1 > 0`` (75 % positive)
``qand``                         ``x0 < 0 and x1 > 0`` (quadrant II, 25 % positive)
``circle``                       ``|x - c| < r``, ``c ~ U[-0.5, 0.5]^2``, ``r ~ U[0.5, 0.9]``
``small_centered_circle``        ``|x| < 0.5`` (19.6 % positive)
``centered_circle``              ``|x| < sqrt(2 / pi)`` (half of the square, 50 %)
``two_moons``                    closer to the lower moon than to the upper moon (50 %)
``two_moons_rotated``            ``two_moons`` rotated by ``theta ~ U[0, 2 pi)``
``concentric_circles``           ``floor(3 |x|)`` is odd (alternating rings of width 1/3)
``square``                       ``max|x - c| < h``, ``c ~ U[-0.3, 0.3]^2``, ``h ~ U[0.45, 0.7]``
``checkerboard``                 ``floor(2 (x0 + 1)) + floor(2 (x1 + 1))`` is odd (4x4 cells)
``blobs`` / ``blob5``            k classes (default 5): ``y ~ U{0..k-1}``, ``x ~ N(c_y, s^2)``
                                 clipped to the square, centres ``c ~ U[-0.6, 0.6]^2``, s = 0.15
``cross``                        ``|x0| < w or |x1| < w``, ``w = 1 - sqrt(1/2)`` (50 %)
``triangle``                     inside the triangle (-1,-1), (1,-1), (0,1): ``x1 < 1 - 2|x0|``
``pie``                          ``(atan2(x1, x0) - phi) mod 2 pi < delta``, ``phi ~ U[0, 2 pi)``,
                                 ``delta ~ U[pi/2, pi]`` (an angular slice)
``random_xor``                   xor of the signs of ``z = A (x - c)``: ``A``'s rows are random
                                 unit normals at least 45 degrees apart, ``c ~ U[-0.4, 0.4]^2``
``sine``                         ``x1 > a sin(w x0 + phi)``, ``a ~ U[0.2, 0.6]``,
                                 ``w ~ U[pi/2, 2 pi]``, ``phi ~ U[0, 2 pi)``
================================ =============================================================

``blobs`` is the one family whose inputs are not uniform: like scikit-learn's ``make_blobs``,
labels are uniform and inputs are Gaussian around per-task class centres.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from blur._pytree import pytree_dataclass, static_field
from blur.tasks.base import Episode, check_episode_args, split_flat
from blur.tasks.mixture import Mixture

TOY2D_META_TRAIN: tuple[str, ...] = ("xor", "and", "two_moons")
"""The paper's meta-training toy functions (Fig. 3, left)."""

TOY2D_META_VAL: tuple[str, ...] = (
    "centered_circle",
    "small_centered_circle",
    "pie",
    "blob5",
    "cross",
    "triangle",
)
"""The paper's meta-validation toy functions (Fig. 3, right)."""

_TWO_PI = 2.0 * math.pi
_CROSS_HALF_WIDTH = 1.0 - math.sqrt(0.5)
_CENTERED_RADIUS = math.sqrt(2.0 / math.pi)

Labeler = Callable[[jax.Array, jax.Array], jax.Array]  # (task_key, x [N, 2]) -> y [N] bool/int


def _signs(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return x[:, 0] > 0, x[:, 1] > 0


def _xor(key: jax.Array, x: jax.Array) -> jax.Array:
    a, b = _signs(x)
    return a != b


def _nxor(key: jax.Array, x: jax.Array) -> jax.Array:
    a, b = _signs(x)
    return a == b


def _and(key: jax.Array, x: jax.Array) -> jax.Array:
    a, b = _signs(x)
    return a & b


def _or(key: jax.Array, x: jax.Array) -> jax.Array:
    a, b = _signs(x)
    return a | b


def _qand(key: jax.Array, x: jax.Array) -> jax.Array:
    return (x[:, 0] < 0) & (x[:, 1] > 0)


def _circle(key: jax.Array, x: jax.Array) -> jax.Array:
    kc, kr = jax.random.split(key)
    centre = jax.random.uniform(kc, (2,), minval=-0.5, maxval=0.5)
    radius = jax.random.uniform(kr, (), minval=0.5, maxval=0.9)
    return jnp.linalg.norm(x - centre, axis=-1) < radius


def _small_centered_circle(key: jax.Array, x: jax.Array) -> jax.Array:
    return jnp.linalg.norm(x, axis=-1) < 0.5


def _centered_circle(key: jax.Array, x: jax.Array) -> jax.Array:
    return jnp.linalg.norm(x, axis=-1) < _CENTERED_RADIUS


def _arc_distance(
    x: jax.Array, centre: tuple[float, float], radius: float, upper: bool
) -> jax.Array:
    """Distance from points x [N, 2] to a half circle (upper or lower half)."""
    d = x - jnp.asarray(centre, jnp.float32)
    on_side = d[:, 1] >= 0 if upper else d[:, 1] <= 0
    to_arc = jnp.abs(jnp.linalg.norm(d, axis=-1) - radius)
    ends = jnp.asarray([[radius, 0.0], [-radius, 0.0]], jnp.float32)
    to_ends = jnp.min(jnp.linalg.norm(d[:, None, :] - ends[None], axis=-1), axis=-1)
    return jnp.where(on_side, to_arc, to_ends)


def _moons(x: jax.Array) -> jax.Array:
    # scikit-learn's two moons scaled by 2/3 and centred: the upper moon is the upper half circle
    # of radius 2/3 around (-1/3, -1/6), the lower moon its point reflection through the origin.
    r = 2.0 / 3.0
    upper = _arc_distance(x, (-1.0 / 3.0, -1.0 / 6.0), r, upper=True)
    lower = _arc_distance(x, (1.0 / 3.0, 1.0 / 6.0), r, upper=False)
    return lower < upper


def _two_moons(key: jax.Array, x: jax.Array) -> jax.Array:
    return _moons(x)


def _rotation(theta: jax.Array) -> jax.Array:
    c, s = jnp.cos(theta), jnp.sin(theta)
    return jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])])


def _two_moons_rotated(key: jax.Array, x: jax.Array) -> jax.Array:
    theta = jax.random.uniform(key, (), maxval=_TWO_PI)
    # Rotating the pattern by theta = labelling the inputs rotated by -theta.
    return _moons(x @ _rotation(theta))


def _concentric_circles(key: jax.Array, x: jax.Array) -> jax.Array:
    ring = jnp.floor(3.0 * jnp.linalg.norm(x, axis=-1)).astype(jnp.int32)
    return ring % 2 == 1


def _square(key: jax.Array, x: jax.Array) -> jax.Array:
    kc, kh = jax.random.split(key)
    centre = jax.random.uniform(kc, (2,), minval=-0.3, maxval=0.3)
    half = jax.random.uniform(kh, (), minval=0.45, maxval=0.7)
    return jnp.max(jnp.abs(x - centre), axis=-1) < half


def _checkerboard(key: jax.Array, x: jax.Array) -> jax.Array:
    cells = jnp.floor(2.0 * (x + 1.0)).astype(jnp.int32)
    return (cells[:, 0] + cells[:, 1]) % 2 == 1


def _cross(key: jax.Array, x: jax.Array) -> jax.Array:
    return (jnp.abs(x[:, 0]) < _CROSS_HALF_WIDTH) | (jnp.abs(x[:, 1]) < _CROSS_HALF_WIDTH)


def _triangle(key: jax.Array, x: jax.Array) -> jax.Array:
    return x[:, 1] < 1.0 - 2.0 * jnp.abs(x[:, 0])


def _pie(key: jax.Array, x: jax.Array) -> jax.Array:
    kp, kd = jax.random.split(key)
    phi = jax.random.uniform(kp, (), maxval=_TWO_PI)
    delta = jax.random.uniform(kd, (), minval=math.pi / 2, maxval=math.pi)
    angle = jnp.arctan2(x[:, 1], x[:, 0])
    return jnp.mod(angle - phi, _TWO_PI) < delta


def _random_xor(key: jax.Array, x: jax.Array) -> jax.Array:
    k1, k2, kc = jax.random.split(key, 3)
    theta1 = jax.random.uniform(k1, (), maxval=_TWO_PI)
    theta2 = theta1 + jax.random.uniform(k2, (), minval=math.pi / 4, maxval=3 * math.pi / 4)
    normals = jnp.stack(
        [
            jnp.stack([jnp.cos(theta1), jnp.sin(theta1)]),
            jnp.stack([jnp.cos(theta2), jnp.sin(theta2)]),
        ]
    )  # [2, 2]
    centre = jax.random.uniform(kc, (2,), minval=-0.4, maxval=0.4)
    z = (x - centre) @ normals.T  # = A (x - c), i.e. A x + b with b = -A c
    return (z[:, 0] > 0) != (z[:, 1] > 0)


def _sine(key: jax.Array, x: jax.Array) -> jax.Array:
    ka, kw, kp = jax.random.split(key, 3)
    amp = jax.random.uniform(ka, (), minval=0.2, maxval=0.6)
    freq = jax.random.uniform(kw, (), minval=math.pi / 2, maxval=_TWO_PI)
    phase = jax.random.uniform(kp, (), maxval=_TWO_PI)
    return x[:, 1] > amp * jnp.sin(freq * x[:, 0] + phase)


_LABELERS: dict[str, Labeler] = {
    "xor": _xor,
    "nxor": _nxor,
    "and": _and,
    "or": _or,
    "qand": _qand,
    "circle": _circle,
    "small_centered_circle": _small_centered_circle,
    "centered_circle": _centered_circle,
    "two_moons": _two_moons,
    "two_moons_rotated": _two_moons_rotated,
    "concentric_circles": _concentric_circles,
    "square": _square,
    "checkerboard": _checkerboard,
    "cross": _cross,
    "triangle": _triangle,
    "pie": _pie,
    "random_xor": _random_xor,
    "sine": _sine,
}

TOY2D_KINDS: tuple[str, ...] = (*_LABELERS, "blobs")
"""Every toy function kind (``blob5`` is ``blobs`` with ``num_blobs=5``)."""


@pytree_dataclass
class Toy2D:
    """A family of 2-D toy tasks of one kind (see the module docstring for the conventions).

    All fields are static, so the family is a pytree without leaves and ``sample`` jits and
    vmaps over keys.

    Attributes:
      kind: One of :data:`TOY2D_KINDS`.
      name: Display name (defaults to ``kind``, or ``blob<k>`` for blobs).
      num_classes: 2, or ``num_blobs`` for blobs (filled in automatically).
      num_inputs: Always 2.
      num_blobs: Number of classes of ``blobs``.
      blob_std: Standard deviation of each blob.
    """

    kind: str = static_field()
    name: str = static_field(default="")
    num_classes: int = static_field(default=0)
    num_inputs: int = static_field(default=2)
    num_blobs: int = static_field(default=5)
    blob_std: float = static_field(default=0.15)

    def __post_init__(self) -> None:
        if self.kind not in TOY2D_KINDS:
            raise ValueError(
                f"unknown toy2d kind {self.kind!r}; valid kinds: {', '.join(TOY2D_KINDS)}."
            )
        if self.kind == "blobs" and self.num_blobs < 2:
            raise ValueError(f"blobs needs num_blobs >= 2, got {self.num_blobs}.")
        if self.num_inputs != 2:
            raise ValueError(f"toy2d families have 2 inputs, got num_inputs={self.num_inputs}.")
        if not self.name:
            name = f"blob{self.num_blobs}" if self.kind == "blobs" else self.kind
            object.__setattr__(self, "name", name)
        expected = self.num_blobs if self.kind == "blobs" else 2
        if self.num_classes == 0:
            object.__setattr__(self, "num_classes", expected)
        elif self.num_classes != expected:
            raise ValueError(
                f"{self.kind} has {expected} classes, got num_classes={self.num_classes}."
            )

    def label(self, key: jax.Array, x: jax.Array) -> jax.Array:
        """Labels of given points under the task that ``key`` draws (not for ``blobs``).

        ``draw(key, n)`` returns ``(x, label(key, x))``, so this evaluates an episode's task on
        any points, e.g. a dense grid for plotting decision surfaces.

        Args:
          key: The episode key (as passed to :meth:`draw` / :meth:`sample`).
          x: [N, 2] points.

        Returns:
          [N] int32 labels.
        """
        if self.kind == "blobs":
            raise ValueError("blobs labels are sampled, not a function of x; use draw().")
        k_task, _ = jax.random.split(key)
        x = jnp.asarray(x, jnp.float32)
        return _LABELERS[self.kind](k_task, x).astype(jnp.int32)

    def draw(self, key: jax.Array, num_examples: int) -> tuple[jax.Array, jax.Array]:
        """Draw one task and ``num_examples`` labelled points of it.

        Args:
          key: PRNG key (determines the task parameters and the points).
          num_examples: N (static).

        Returns:
          ``(x, y)``: [N, 2] float32 inputs and [N] int32 labels.
        """
        k_task, k_x = jax.random.split(key)
        if self.kind == "blobs":
            k_y, k_noise = jax.random.split(k_x)
            centres = jax.random.uniform(
                k_task, (self.num_blobs, 2), minval=-0.6, maxval=0.6, dtype=jnp.float32
            )
            y = jax.random.randint(k_y, (num_examples,), 0, self.num_blobs, dtype=jnp.int32)
            noise = jax.random.normal(k_noise, (num_examples, 2), dtype=jnp.float32)
            x = jnp.clip(centres[y] + self.blob_std * noise, -1.0, 1.0)
            return x, y
        x = jax.random.uniform(k_x, (num_examples, 2), minval=-1.0, maxval=1.0, dtype=jnp.float32)
        return x, _LABELERS[self.kind](k_task, x).astype(jnp.int32)

    def sample(
        self,
        key: jax.Array,
        num_steps: int,
        batch_size: int,
        num_query_batches: int = 1,
        query_batch_size: int | None = None,
    ) -> Episode:
        """Draw one task and an episode of it (support [T, B, 2], query [Q, Bq, 2])."""
        T, B, Q, Bq = check_episode_args(num_steps, batch_size, num_query_batches, query_batch_size)
        x, y = self.draw(key, T * B + Q * Bq)
        return split_flat(x, y, T, B, Q, Bq)


def toy2d(name: str, **options: Any) -> Toy2D:
    """Build a toy family by name: a kind from :data:`TOY2D_KINDS` or ``blob<k>`` (e.g. blob5).

    Args:
      name: Kind name, or ``blob<k>`` for ``blobs`` with ``num_blobs=k``.
      **options: Extra :class:`Toy2D` fields (``num_blobs``, ``blob_std``).

    Returns:
      The family.
    """
    if name.startswith("blob") and name[4:].isdigit():
        return Toy2D(kind="blobs", num_blobs=int(name[4:]), **options)
    return Toy2D(kind=name, **options)


def toy2d_group(names: Sequence[str], weights: Sequence[float] | None = None) -> Mixture:
    """A :class:`Mixture` of toy families (e.g. :data:`TOY2D_META_TRAIN`).

    Args:
      names: Toy family names accepted by :func:`toy2d`.
      weights: Optional sampling weights (default uniform).

    Returns:
      The mixture (num_classes is the largest member's, e.g. 5 when blob5 is included).
    """
    return Mixture(tuple(toy2d(n) for n in names), weights)


__all__ = [
    "TOY2D_KINDS",
    "TOY2D_META_TRAIN",
    "TOY2D_META_VAL",
    "Toy2D",
    "toy2d",
    "toy2d_group",
]
