"""The task interface: a task family samples episodes of support and query batches from a key.

Everything here is pure JAX over arrays already on the device, so that sampling runs inside
``jit`` / ``vmap`` / ``lax.scan`` with no Python per step (learned_optimization's ``TaskFamily``,
made jit-able end to end).

Shapes (one episode, unbatched over tasks):
  support.x: [T, B, n_in] float32     support.y: [T, B] int32 in [0, num_classes)
  query.x:   [Q, Bq, n_in] float32    query.y:   [Q, Bq] int32
"""

from __future__ import annotations

import functools
from typing import Protocol, runtime_checkable

import jax

from blur._pytree import pytree_dataclass


@pytree_dataclass
class Batch:
    """Inputs ``x`` [..., B, n_in] float32 and integer class ids ``y`` [..., B] int32."""

    x: jax.Array
    y: jax.Array


@pytree_dataclass
class Episode:
    """Support batches for inner training and held-out query batches for the meta-objective."""

    support: Batch  # x [T, B, n_in], y [T, B]
    query: Batch  # x [Q, Bq, n_in], y [Q, Bq]


@runtime_checkable
class TaskFamily(Protocol):
    """A distribution over classification tasks with a fixed input width and class count.

    ``sample`` must be a pure function of ``key`` (the shape arguments are static Python ints),
    so that ``jax.vmap(lambda k: fam.sample(k, ...))(keys)`` draws a meta-batch of episodes.
    """

    name: str
    num_inputs: int
    num_classes: int

    def sample(
        self,
        key: jax.Array,
        num_steps: int,
        batch_size: int,
        num_query_batches: int = 1,
        query_batch_size: int | None = None,
    ) -> Episode:
        """Draw one task and one episode of it: ``num_steps`` support and query batches."""
        ...


# ------------------------------------------------------------------------------ helpers


def check_episode_args(
    num_steps: int,
    batch_size: int,
    num_query_batches: int = 1,
    query_batch_size: int | None = None,
) -> tuple[int, int, int, int]:
    """Validate the static shape arguments of ``sample`` and fill in ``query_batch_size``.

    Args:
      num_steps: T, support batches per episode (>= 1).
      batch_size: B, examples per support batch (>= 1).
      num_query_batches: Q, query batches per episode (>= 0).
      query_batch_size: Bq, examples per query batch; None means ``batch_size``.

    Returns:
      ``(T, B, Q, Bq)`` as Python ints.

    Raises:
      TypeError: If a shape argument is not a Python int (e.g. a traced value: mark the shape
        arguments static under ``jit``).
      ValueError: If a shape argument is out of range.
    """
    if query_batch_size is None:
        query_batch_size = batch_size
    names = ("num_steps", "batch_size", "num_query_batches", "query_batch_size")
    values = (num_steps, batch_size, num_query_batches, query_batch_size)
    for name, value in zip(names, values, strict=True):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(
                f"{name} must be a Python int, got {type(value).__name__} {value!r}; under "
                "jax.jit pass shape arguments as static (static_argnames) or close over them."
            )
    if num_steps < 1 or batch_size < 1 or query_batch_size < 1 or num_query_batches < 0:
        raise ValueError(
            f"need num_steps >= 1, batch_size >= 1, query_batch_size >= 1 and "
            f"num_query_batches >= 0; got {values}."
        )
    return num_steps, batch_size, num_query_batches, query_batch_size


def split_flat(
    x: jax.Array,
    y: jax.Array,
    num_steps: int,
    batch_size: int,
    num_query_batches: int,
    query_batch_size: int,
) -> Episode:
    """Cut flat examples into an episode: the first ``T*B`` are support, the rest query.

    Args:
      x: [T*B + Q*Bq, n_in] inputs.
      y: [T*B + Q*Bq] labels.
      num_steps: T.
      batch_size: B.
      num_query_batches: Q.
      query_batch_size: Bq.

    Returns:
      The :class:`Episode` (x cast to float32, y to int32).
    """
    n_support = num_steps * batch_size
    n_in = x.shape[-1]
    x = x.astype(jax.numpy.float32)
    y = y.astype(jax.numpy.int32)
    support = Batch(
        x[:n_support].reshape(num_steps, batch_size, n_in),
        y[:n_support].reshape(num_steps, batch_size),
    )
    query = Batch(
        x[n_support:].reshape(num_query_batches, query_batch_size, n_in),
        y[n_support:].reshape(num_query_batches, query_batch_size),
    )
    return Episode(support=support, query=query)


@functools.partial(
    jax.jit,
    static_argnames=("num_steps", "batch_size", "num_query_batches", "query_batch_size"),
)
def sample_episode(
    family: TaskFamily,
    key: jax.Array,
    num_steps: int,
    batch_size: int,
    num_query_batches: int = 1,
    query_batch_size: int | None = None,
) -> Episode:
    """Jitted ``family.sample(key, ...)`` with the family passed as a pytree argument.

    Passing the family as an argument (rather than closing over it) keeps large image arrays
    out of the compiled program as constants.

    Args:
      family: Any task family that is a pytree (all families in :mod:`blur.tasks` are).
      key: PRNG key.
      num_steps: T.
      batch_size: B.
      num_query_batches: Q.
      query_batch_size: Bq (None: B).

    Returns:
      One :class:`Episode`.
    """
    return family.sample(key, num_steps, batch_size, num_query_batches, query_batch_size)


@functools.partial(
    jax.jit,
    static_argnames=("num_steps", "batch_size", "num_query_batches", "query_batch_size"),
)
def sample_episodes(
    family: TaskFamily,
    keys: jax.Array,
    num_steps: int,
    batch_size: int,
    num_query_batches: int = 1,
    query_batch_size: int | None = None,
) -> Episode:
    """A meta-batch: ``vmap`` of ``family.sample`` over ``keys`` [K] (one task per key).

    Returns:
      An :class:`Episode` whose arrays have a leading axis K, e.g. support.x [K, T, B, n_in].
    """
    return jax.vmap(
        lambda k: family.sample(k, num_steps, batch_size, num_query_batches, query_batch_size)
    )(keys)
