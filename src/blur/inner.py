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
from blur.network import NetworkSpec, NetworkState
from blur.rules import backward, feedback, forward, hebbian
from blur.tasks.base import Batch


@pytree_dataclass
class StepMetrics:
    """Per-step diagnostics of the forward prediction on the step's own batch (before update).

    Attributes:
      loss: [] softmax cross-entropy of output state 0 against the labels.
      accuracy: [] fraction of argmax(state 0) == label.
      finite: [] bool, all neurons and synapses finite after the step.
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


def state_is_finite(state: NetworkState) -> jax.Array:
    """Scalar bool: every neuron state and synapse is finite."""
    return tree_all_finite(state)


def _rms(arrays: tuple[jax.Array, ...]) -> jax.Array:
    total = sum(jnp.sum(w * w) for w in arrays)
    count = sum(w.size for w in arrays)
    return jnp.sqrt(total / count)


def step(
    genome: Genome, spec: NetworkSpec, state: NetworkState, batch: Batch
) -> tuple[NetworkState, StepMetrics]:
    """One inner training step: forward, feedback, backward, Hebbian (paper §3.2-3.3).

    Args:
      genome: the rule.
      spec: the network (static).
      state: neurons and synapses.
      batch: x [B, n_0], y [B] int.

    Returns:
      (new state, metrics of the pre-update prediction on this batch).
    """
    spec.check_genome(genome)
    neurons = forward(genome, spec, state, batch.x)
    logits = neurons[-1][..., 0]
    neurons = feedback(spec, neurons, batch.y)
    neurons = backward(genome, spec, state, neurons)
    new_state = hebbian(genome, spec, state, neurons)
    metrics = StepMetrics(
        loss=cross_entropy(logits, batch.y),
        accuracy=accuracy(logits, batch.y),
        finite=state_is_finite(new_state),
        synapse_norm=_rms(new_state.w_fwd),
        query_accuracy=jnp.array(jnp.nan, jnp.float32),
    )
    return new_state, metrics


def predict(genome: Genome, spec: NetworkSpec, state: NetworkState, x: jax.Array) -> jax.Array:
    """Forward-only prediction: output state 0, the logits [B, n_L], for inputs x [B, n_0].

    Neurons start from zero (as after a reset), so the result depends only on the synapses.
    """
    spec.check_genome(genome)
    zeros = tuple(jnp.zeros((x.shape[0], *n.shape[1:]), jnp.float32) for n in state.neurons)
    return forward(genome, spec, state.replace(neurons=zeros), x)[-1][..., 0]  # type: ignore[attr-defined]


def unroll(
    genome: Genome,
    spec: NetworkSpec,
    state: NetworkState,
    batches: Batch,
    *,
    remat: bool = False,
    query: Batch | None = None,
) -> tuple[NetworkState, StepMetrics]:
    """T inner steps with ``lax.scan``, one per support batch.

    Args:
      genome, spec, state: as in :func:`step`.
      batches: x [T, B, n_0], y [T, B].
      remat: wrap the step in ``jax.checkpoint`` (memory O(1) in T for meta-gradients).
      query: optional held-out batches x [Q, Bq, n_0], y [Q, Bq]; the forward-only accuracy
        on them after every step goes into ``metrics.query_accuracy`` (an accuracy-vs-step
        curve, as the evaluation reports it).

    Returns:
      (final state, per-step metrics with a leading [T] axis).
    """
    def body(s: NetworkState, batch: Batch) -> tuple[NetworkState, StepMetrics]:
        s, metrics = step(genome, spec, s, batch)
        if query is not None:
            metrics = metrics.replace(query_accuracy=evaluate(genome, spec, s, query)[1])  # type: ignore[attr-defined]
        return s, metrics

    if remat:
        body = jax.checkpoint(body)
    return jax.lax.scan(body, state, batches)


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
