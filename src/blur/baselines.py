"""Gradient baselines: SGD, SGD+momentum and Adam on an ordinary MLP, on the same episodes.

The bar a learned rule must clear (``../shared/research/baselines.md``). An MLP with the same
hidden sizes is trained on the same support batches and scored on the same query examples as
the BLUR network; the learning rate is tuned per step over a grid ("oracle" tuning, as in
baselines.md), so the baseline is as strong as the grid allows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
import optax

from blur.tasks.base import Batch

OPTIMIZERS = ("sgd", "momentum", "adam")


def lr_grid(low: float, high: float, per_decade: int = 3) -> tuple[float, ...]:
    """Log-spaced learning rates from ``low`` to ``high`` inclusive, ``per_decade`` a decade."""
    decades = math.log10(high / low)
    n = round(decades * per_decade) + 1
    return tuple(float(f"{low * 10 ** (i / per_decade):.3g}") for i in range(n))


DEFAULT_LRS: dict[str, tuple[float, ...]] = {
    "sgd": lr_grid(1e-2, 1e2),
    "momentum": lr_grid(1e-3, 1e1),
    "adam": lr_grid(1e-4, 1.0),
}
"""Four decades at three points a decade around each optimiser's usual range (13 rates)."""


def baseline_optimizer(
    name: str, learning_rate: float | jax.Array
) -> optax.GradientTransformation:
    """``sgd``, ``momentum`` (0.9) or ``adam`` at ``learning_rate``."""
    if name == "sgd":
        return optax.sgd(learning_rate)
    if name == "momentum":
        return optax.sgd(learning_rate, momentum=0.9)
    if name == "adam":
        return optax.adam(learning_rate)
    raise ValueError(f"unknown baseline optimizer {name!r}; choose one of {list(OPTIMIZERS)}")


MLPInit = Literal["he_uniform", "he_lecun_normal"]
MLP_INITS: tuple[str, ...] = ("he_uniform", "he_lecun_normal")


def init_mlp(
    key: jax.Array, sizes: Sequence[int], init: MLPInit = "he_uniform"
) -> list[tuple[jax.Array, jax.Array]]:
    """Weights [n_in, n_out] and zero biases for layer sizes (n_0, ..., n_L).

    ``init``: ``he_uniform`` (U(±sqrt(6 / n_in)) in every layer, the BLUR network's
    distribution at ``init_scale = sqrt(6)`` with fan-in scaling) or ``he_lecun_normal``
    (``../shared/research/baselines.md``'s protocol: truncated-normal He weights, variance
    2 / n_in, in the hidden layers and LeCun weights, variance 1 / n_in, in the output layer).
    """
    if init not in MLP_INITS:
        raise ValueError(f"unknown MLP init {init!r}; choose one of {list(MLP_INITS)}")
    params = []
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    for i, (k, (n_in, n_out)) in enumerate(
        zip(jax.random.split(key, len(pairs)), pairs, strict=True)
    ):
        if init == "he_uniform":
            limit = jnp.sqrt(6.0 / n_in)
            w = jax.random.uniform(k, (n_in, n_out), jnp.float32, -limit, limit)
        else:
            scale = 1.0 if i == len(pairs) - 1 else 2.0
            w = jax.nn.initializers.variance_scaling(scale, "fan_in", "truncated_normal")(
                k, (n_in, n_out), jnp.float32
            )
        params.append((w, jnp.zeros((n_out,), jnp.float32)))
    return params


def mlp(params: list[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
    """ReLU MLP logits [B, n_L] for inputs [B, n_0]."""
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    return h


def mlp_loss(params: list[tuple[jax.Array, jax.Array]], x: jax.Array, y: jax.Array) -> jax.Array:
    """Batch-mean softmax cross-entropy of :func:`mlp` on x [B, n_0], y [B] int."""
    logp = jax.nn.log_softmax(mlp(params, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))


@partial(jax.jit, static_argnames=("sizes", "optimizer", "init"))
def accuracy_curve(
    key: jax.Array,
    support: Batch,
    query: Batch,
    learning_rate: jax.Array,
    *,
    sizes: tuple[int, ...],
    optimizer: str,
    init: MLPInit = "he_uniform",
) -> jax.Array:
    """Query accuracy after 0..T steps of ``optimizer`` on support x [T, B, n_0], from
    :func:`init_mlp` (``init``) at ``key``.

    Returns:
      [T + 1] accuracies; entry t is after t steps.
    """
    params = init_mlp(key, sizes, init)
    opt = baseline_optimizer(optimizer, learning_rate)

    def acc(p: list[tuple[jax.Array, jax.Array]]) -> jax.Array:
        return jnp.mean((jnp.argmax(mlp(p, query.x), -1) == query.y).astype(jnp.float32))

    def body(carry, batch: Batch):  # noqa: ANN001, ANN202
        p, s = carry
        grads = jax.grad(mlp_loss)(p, batch.x, batch.y)
        updates, s = opt.update(grads, s, p)
        p = optax.apply_updates(p, updates)
        return (p, s), acc(p)

    _, accs = jax.lax.scan(body, (params, opt.init(params)), support)
    return jnp.concatenate([acc(params)[None], accs])


def tuned_curves(
    keys: jax.Array,
    supports: Batch,
    queries: Batch,
    sizes: tuple[int, ...],
    optimizer: str,
    learning_rates: Sequence[float] | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Accuracy curves of every task for every learning rate of the grid.

    Args:
      keys: [N] init keys, one per task.
      supports: x [N, T, B, n_0], y [N, T, B].
      queries: x [N, M, n_0], y [N, M].
      sizes: MLP layer sizes.
      optimizer: ``sgd``, ``momentum`` or ``adam``.
      learning_rates: the grid (default :data:`DEFAULT_LRS`).

    Returns:
      (lrs [G], curves [G, N, T + 1]); ``curves[g, n, t]`` is task n's query accuracy after t
      steps at learning rate g.
    """
    lrs = jnp.asarray(learning_rates or DEFAULT_LRS[optimizer], jnp.float32)

    def for_lr(lr: jax.Array) -> jax.Array:
        return jax.vmap(
            lambda k, s, q: accuracy_curve(k, s, q, lr, sizes=sizes, optimizer=optimizer)
        )(keys, supports, queries)

    return lrs, jax.lax.map(for_lr, lrs)
