"""The inner loop: one BLUR training step, prediction, and jitted unrolls with ``lax.scan``.

All functions act on one network; ``jax.vmap`` over ``genome`` gives species and over
``state`` gives replicas. ``spec`` is static (hashable): pass it with ``static_argnames``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from blur._pytree import pytree_dataclass, tree_all_finite
from blur.genome import Genome
from blur.network import (
    ChannelFirstState,
    NetworkSpec,
    NetworkState,
    from_channel_first,
    to_channel_first,
)
from blur.rules import cf_backward, cf_feedback, cf_forward, cf_hebbian
from blur.tasks.base import Batch


@pytree_dataclass
class StepMetrics:
    """Per-step diagnostics of the forward prediction on the step's own batch (before update).

    Attributes:
      loss: [] softmax cross-entropy of output state 0 against the labels.
      accuracy: [] fraction of argmax(state 0) == label.
      finite: [] bool, all neurons finite and the synapses' sum of squares finite after the
        step (so a synapse beyond ~1.8e19 in magnitude counts as diverged too).
      synapse_norm: [] root-mean-square of all forward synapses after the step.
      query_accuracy: [] accuracy on the query given to :func:`unroll` after the step (NaN
        when there is none).
    """

    loss: jax.Array
    accuracy: jax.Array
    finite: jax.Array
    synapse_norm: jax.Array
    query_accuracy: jax.Array


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy. logits [B, C], y [B] int -> []."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=-1))


def accuracy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of ``argmax(logits) == y``. logits [B, C], y [B] -> []."""
    return jnp.mean((jnp.argmax(logits, axis=-1) == y).astype(jnp.float32))


def state_is_finite(state: NetworkState | ChannelFirstState) -> jax.Array:
    """Scalar bool: every neuron state and synapse is finite."""
    return tree_all_finite(state)


def _synapse_metrics(state: ChannelFirstState) -> tuple[jax.Array, jax.Array]:
    """(finite, RMS of the forward synapses) of a state, from one sum of squares per array.

    The finiteness of the synapses is read off their sum of squares (NaN or inf as soon as one
    synapse is, or when one is beyond ~1.8e19), so the synapses are read once per step for both
    metrics: a separate all(isfinite) pass cost about a tenth of a C2 step (issue 11,
    ``benchmarks/c2_attribution.py``).
    """
    forward = (*state.w, *state.b)
    sq = sum(jnp.sum(w * w) for w in forward)
    total = sq + sum(jnp.sum(w * w) for w in state.wb)
    finite = jnp.isfinite(total) & tree_all_finite(state.neurons)
    return finite, jnp.sqrt(sq / sum(w.size for w in forward))


def cf_step(
    genome: Genome, spec: NetworkSpec, state: ChannelFirstState, batch: Batch,
    t: jax.Array | int = 0,
) -> tuple[ChannelFirstState, StepMetrics]:
    """:func:`step` on the channel-first layout (what :func:`unroll` scans); ``t`` is the
    inner step count that ``spec.hebbian_decay`` decays with."""
    neurons = cf_forward(genome, spec, state, batch.x)
    if spec.unsupervised_update:  # static: the default path is unchanged
        state = cf_unsupervised(genome, spec, state, neurons)
    logits = neurons[-1][0]
    neurons = cf_feedback(spec, neurons, batch.y)
    neurons = cf_backward(genome, spec, state, neurons)
    new_state = cf_hebbian(genome, spec, state, neurons)
    if spec.hebbian_decay:  # static: the default path is unchanged
        new_state = decay_synapse_change(spec, state, new_state, t)
    finite, synapse_norm = _synapse_metrics(new_state)
    metrics = StepMetrics(
        loss=cross_entropy(logits, batch.y),
        accuracy=accuracy(logits, batch.y),
        finite=finite,
        synapse_norm=synapse_norm,
        query_accuracy=jnp.array(jnp.nan, jnp.float32),
    )
    return new_state, metrics


def decay_synapse_change(
    spec: NetworkSpec, old: ChannelFirstState, new: ChannelFirstState, t: jax.Array | int
) -> ChannelFirstState:
    """``spec.hebbian_decay``'s step size on one step's synapse change.

    Every synapse (forward, bias row, backward) becomes w + r_t (w' - w), r_t = 1 / (1 + d t),
    from its value w before the step and w' after eqs. (7)-(8) and the stabilisers; the
    neurons are ``new``'s. With t = 0 the synapses are ``new``'s (up to the rounding of
    w + (w' - w)).

    Args:
      spec: the network (``hebbian_decay`` is d).
      old, new: the state before and after the step (channel-first).
      t: the step count, 0 for a fresh network's first step (a scalar).
    """
    r = 1.0 / (1.0 + spec.hebbian_decay * jnp.asarray(t, jnp.float32))

    def damp(a: tuple[jax.Array, ...], b: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
        return tuple(x + r * (y - x) for x, y in zip(a, b, strict=True))

    return new.replace(  # type: ignore[attr-defined]
        w=damp(old.w, new.w), b=damp(old.b, new.b), wb=damp(old.wb, new.wb)
    )


def cf_unsupervised(
    genome: Genome, spec: NetworkSpec, state: ChannelFirstState, neurons: tuple[jax.Array, ...]
) -> ChannelFirstState:
    """The label-free Hebbian update of ``spec.unsupervised_update``: eqs. (7)-(8) applied to
    the forward-pass neurons (channel-first, [K, B, n_l] per layer) before any feedback is
    written; returns the state with the updated synapses (its neurons are left as they were:
    the step goes on with the forward neurons)."""
    updated = cf_hebbian(genome, spec, state, neurons)
    return state.replace(w=updated.w, b=updated.b, wb=updated.wb)  # type: ignore[attr-defined]


def step(
    genome: Genome, spec: NetworkSpec, state: NetworkState, batch: Batch,
    t: jax.Array | int = 0,
) -> tuple[NetworkState, StepMetrics]:
    """One inner training step: forward, feedback, backward, Hebbian (paper §3.2-3.3); with
    ``spec.unsupervised_update`` also a label-free Hebbian update right after the forward pass
    (:func:`cf_unsupervised`).

    Args:
      genome: the rule.
      spec: the network (static).
      state: neurons and synapses.
      batch: x [B, n_0], y [B] int.
      t: the inner step count (0 for a fresh network), read only with
        ``spec.hebbian_decay`` (:func:`decay_synapse_change`).

    Returns:
      (new state, metrics of the pre-update prediction on this batch).
    """
    spec.check_genome(genome)
    new, metrics = cf_step(genome, spec, to_channel_first(spec, state), batch, t)
    return from_channel_first(spec, new, state), metrics


def predict(genome: Genome, spec: NetworkSpec, state: NetworkState, x: jax.Array) -> jax.Array:
    """Forward-only prediction: output state 0, the logits [B, n_L], for inputs x [B, n_0].

    Neurons start from zero (as after a reset), so the result depends only on the synapses.
    """
    spec.check_genome(genome)
    return cf_predict(genome, spec, to_channel_first(spec, state), x)


def cf_predict(
    genome: Genome, spec: NetworkSpec, state: ChannelFirstState, x: jax.Array
) -> jax.Array:
    """:func:`predict` on the channel-first layout."""
    zeros = tuple(
        jnp.zeros((n.shape[0], x.shape[0], n.shape[2]), jnp.float32) for n in state.neurons
    )
    fresh = state.replace(neurons=zeros)  # type: ignore[attr-defined]
    return cf_forward(genome, spec, fresh, x)[-1][0]


def unroll(
    genome: Genome,
    spec: NetworkSpec,
    state: NetworkState,
    batches: Batch,
    *,
    remat: bool = False,
    query: Batch | None = None,
    start_step: jax.Array | int = 0,
) -> tuple[NetworkState, StepMetrics]:
    """T inner steps with ``lax.scan``, one per support batch.

    Args:
      genome, spec, state: as in :func:`step`.
      batches: x [T, B, n_0], y [T, B].
      remat: wrap the step in ``jax.checkpoint`` (memory O(1) in T for meta-gradients).
      query: optional held-out batches x [Q, Bq, n_0], y [Q, Bq]; the forward-only accuracy
        on them after every step goes into ``metrics.query_accuracy`` (an accuracy-vs-step
        curve, as the evaluation reports it).
      start_step: the step count of the first batch (steps already taken by ``state``), for
        ``spec.hebbian_decay``; a later segment of one training run passes its offset.

    Returns:
      (final state, per-step metrics with a leading [T] axis).
    """
    spec.check_genome(genome)

    def body(
        s: ChannelFirstState, xs: tuple[jax.Array, Batch]
    ) -> tuple[ChannelFirstState, StepMetrics]:
        t, batch = xs
        s, metrics = cf_step(genome, spec, s, batch, t)
        if query is not None:
            logits = jax.vmap(lambda xb: cf_predict(genome, spec, s, xb))(query.x)
            acc = accuracy(logits.reshape(-1, logits.shape[-1]), query.y.reshape(-1))
            metrics = metrics.replace(query_accuracy=acc)  # type: ignore[attr-defined]
        return s, metrics

    if remat:
        body = jax.checkpoint(body)
    steps = start_step + jnp.arange(batches.y.shape[0], dtype=jnp.int32)
    final, metrics = jax.lax.scan(body, to_channel_first(spec, state), (steps, batches))
    return from_channel_first(spec, final, state), metrics


@partial(jax.jit, static_argnames=("spec", "remat"))
def unroll_jit(
    genome: Genome, spec: NetworkSpec, state: NetworkState, batches: Batch, remat: bool = False
) -> tuple[NetworkState, StepMetrics]:
    """Jitted :func:`unroll`."""
    return unroll(genome, spec, state, batches, remat=remat)


def query_logits(
    genome: Genome, spec: NetworkSpec, state: NetworkState, x: jax.Array
) -> jax.Array:
    """:func:`predict` over query batches x [Q, Bq, n_0], flattened to logits [Q * Bq, n_L]."""
    logits = jax.vmap(lambda xb: predict(genome, spec, state, xb))(x)  # [Q, Bq, n_L]
    return logits.reshape(-1, logits.shape[-1])


def evaluate(
    genome: Genome, spec: NetworkSpec, state: NetworkState, query: Batch
) -> tuple[jax.Array, jax.Array]:
    """Mean cross-entropy and accuracy of :func:`predict` over query batches x [Q, Bq, n_0].

    Returns:
      (loss [], accuracy []).
    """
    logits = query_logits(genome, spec, state, query.x)
    y = query.y.reshape(-1)
    return cross_entropy(logits, y), accuracy(logits, y)
