"""The meta-objective shared by both meta-optimisers (paper §3.3 / §4.4).

Unroll T support steps from freshly initialised synapses, then score forward-only predictions
on held-out query batches. Averaged over a meta-batch of tasks (drawn from a task family, which
may be a mixture) and over replicas (synapse inits). Gradient meta-training differentiates the
loss; evolution can use the non-differentiable query accuracy as its fitness.

References: Sandler et al. 2021 (arXiv 2104.04657), §3.3 (L_meta = softmax cross-entropy of the
prediction state), §4.4 (CMA-ES on accuracy); reference ``blur_meta.l2_score`` (squared error
of state 0 against the ±1 labels).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp

from blur._pytree import pytree_dataclass
from blur.genome import Genome
from blur.inner import accuracy, cross_entropy, query_logits, state_is_finite, unroll
from blur.network import NetworkSpec, init_state
from blur.tasks.base import Batch, Episode, TaskFamily

MetaLoss = Literal["cross_entropy", "l2"]


@dataclasses.dataclass(frozen=True)
class ObjectiveConfig:
    """Static settings of the meta-objective.

    Attributes:
      num_steps: T, inner training steps (support batches) per episode.
      batch_size: B, support batch size (the paper uses 128).
      num_query_batches: Q, held-out batches scored after the unroll.
      query_batch_size: Bq (default: B).
      num_tasks: tasks per meta-batch, each a fresh draw from the family.
      num_replicas: synapse initialisations per task.
      loss: ``cross_entropy`` on output state 0 (paper) or ``l2`` of state 0 against the
        ±1 one-hot labels (reference code).
      remat: ``jax.checkpoint`` each inner step (memory O(1) in T for meta-gradients). On by
        default: recomputing each step in the reverse pass is faster too on a 2-core CPU
        (a meta-step of toy2d 0.71x and of mnist10 0.85x the time without it, interleaved in
        one process); the values are the same up to float rounding.
      score_steps: inner steps before T at which the same query batches are also scored; the
        loss and accuracy are then means over these points and T (see :meth:`score_points`).
        Empty (the default): score after the T-th step only. Points >= T are ignored, so one
        setting serves every T of a curriculum. Scoring at an early step as well as at T asks
        the rule to learn fast without collapsing after its first horizon.
    """

    num_steps: int = 10
    batch_size: int = 128
    num_query_batches: int = 1
    query_batch_size: int | None = None
    num_tasks: int = 3
    num_replicas: int = 1
    loss: MetaLoss = "cross_entropy"
    remat: bool = True
    score_steps: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("num_steps", "batch_size", "num_query_batches", "num_tasks", "num_replicas"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ObjectiveConfig.{name}={value!r} must be a positive integer")
        if self.loss not in ("cross_entropy", "l2"):
            raise ValueError(
                f"ObjectiveConfig.loss={self.loss!r}; choose 'cross_entropy' or 'l2'"
            )
        bad = [s for s in self.score_steps if not isinstance(s, int) or s < 1]
        if bad:
            raise ValueError(
                f"ObjectiveConfig.score_steps={self.score_steps!r} holds {bad}; every scoring "
                "point must be a positive number of inner steps"
            )

    def score_points(self) -> tuple[int, ...]:
        """Sorted inner steps after which the query is scored: ``score_steps`` below T, and T."""
        return (*sorted({s for s in self.score_steps if s < self.num_steps}), self.num_steps)


@pytree_dataclass
class ObjectiveAux:
    """What the objective reports besides the loss (means over tasks and replicas).

    Attributes:
      loss: [] the meta-loss (also returned first).
      accuracy: [] query accuracy after the unroll (mean over ``cfg.score_points()``).
      train_accuracy: [] accuracy on the last support batch, before its update.
      finite: [] bool, every inner loop stayed finite.
    """

    loss: jax.Array
    accuracy: jax.Array
    train_accuracy: jax.Array
    finite: jax.Array


def query_loss(logits: jax.Array, y: jax.Array, loss: MetaLoss) -> jax.Array:
    """Meta-loss of query logits [N, C] against labels [N]."""
    if loss == "cross_entropy":
        return cross_entropy(logits, y)
    target = 2.0 * jax.nn.one_hot(y, logits.shape[-1]) - 1.0
    return jnp.mean(jnp.sum((logits - target) ** 2, axis=-1))


def check_compatible(spec: NetworkSpec, family: TaskFamily) -> None:
    """Raise ``ValueError`` if the network cannot take the family's inputs or classes."""
    if spec.num_inputs != family.num_inputs:
        raise ValueError(
            f"task family {family.name!r} has {family.num_inputs} inputs but "
            f"NetworkSpec.layer_sizes[0]={spec.num_inputs}; set layer_sizes[0]={family.num_inputs}"
        )
    if spec.num_outputs < family.num_classes:
        raise ValueError(
            f"task family {family.name!r} has {family.num_classes} classes but the network has "
            f"{spec.num_outputs} outputs; set layer_sizes[-1] >= {family.num_classes}"
        )


def episode_loss(
    genome: Genome, spec: NetworkSpec, episode_support: Batch, query: Batch, key: jax.Array,
    cfg: ObjectiveConfig,
) -> tuple[jax.Array, ObjectiveAux]:
    """Loss of one replica on one episode: fresh synapses, T steps, query scores.

    The unroll runs in segments ending at each of ``cfg.score_points()`` (one ``lax.scan``
    each); the query is scored at the end of every segment and loss and accuracy are averaged.
    """
    state = init_state(key, genome, spec, cfg.batch_size)
    y = query.y.reshape(-1)
    losses, accuracies, finite = [], [], jnp.array(True)
    start = 0
    for stop in cfg.score_points():
        segment = jax.tree_util.tree_map(lambda a, i=start, j=stop: a[i:j], episode_support)
        state, metrics = unroll(genome, spec, state, segment, remat=cfg.remat, start_step=start)
        logits = query_logits(genome, spec, state, query.x)
        losses.append(query_loss(logits, y, cfg.loss))
        accuracies.append(accuracy(logits, y))
        finite = finite & jnp.all(jnp.isfinite(logits))
        start = stop
    loss = jnp.mean(jnp.stack(losses))
    finite = finite & state_is_finite(state)
    aux = ObjectiveAux(
        loss=loss,
        accuracy=jnp.mean(jnp.stack(accuracies)),
        train_accuracy=metrics.accuracy[-1],
        finite=finite,
    )
    return loss, aux


def sample_episodes(
    family: TaskFamily, key: jax.Array, cfg: ObjectiveConfig
) -> tuple[Episode, jax.Array]:
    """The tasks and synapse-init keys :func:`meta_objective` draws from ``key``.

    Returns:
      (episodes with a leading [N] task axis on every leaf, init keys [N, R]).
    """
    task_keys, init_keys = jax.random.split(key)
    task_keys = jax.random.split(task_keys, cfg.num_tasks)
    init_keys = jax.random.split(init_keys, (cfg.num_tasks, cfg.num_replicas))
    bq = cfg.query_batch_size or cfg.batch_size
    episodes = jax.vmap(
        lambda k: family.sample(k, cfg.num_steps, cfg.batch_size, cfg.num_query_batches, bq)
    )(task_keys)
    return episodes, init_keys


def score_episodes(
    genome: Genome, spec: NetworkSpec, episodes: Episode, init_keys: jax.Array,
    cfg: ObjectiveConfig,
) -> tuple[jax.Array, ObjectiveAux]:
    """Mean meta-loss of ``genome`` over given episodes [N] x synapse inits ``init_keys`` [N, R].

    The second half of :func:`meta_objective`; evolution samples the episodes once per
    generation and scores every candidate on them.
    """

    def one_task(episode: Episode, keys: jax.Array) -> tuple[jax.Array, ObjectiveAux]:
        return jax.vmap(
            lambda k: episode_loss(genome, spec, episode.support, episode.query, k, cfg)
        )(keys)

    losses, aux = jax.vmap(one_task)(episodes, init_keys)
    mean_aux = ObjectiveAux(
        loss=jnp.mean(aux.loss),
        accuracy=jnp.mean(aux.accuracy),
        train_accuracy=jnp.mean(aux.train_accuracy),
        finite=jnp.all(aux.finite),
    )
    return jnp.mean(losses), mean_aux


def meta_objective(
    genome: Genome, spec: NetworkSpec, family: TaskFamily, key: jax.Array, cfg: ObjectiveConfig
) -> tuple[jax.Array, ObjectiveAux]:
    """Mean meta-loss of ``genome`` over ``cfg.num_tasks`` tasks x ``cfg.num_replicas`` inits.

    Args:
      genome: the rule being scored (differentiable).
      spec: the network (static).
      family: the task distribution, a pytree (its data arrays are traced, not baked in).
      key: PRNG key; the same key gives the same tasks, batches and synapse inits
        (:func:`sample_episodes`).
      cfg: static settings.

    Returns:
      (loss [], aux) with means over tasks and replicas. A non-finite inner loop makes the loss
      non-finite and ``aux.finite`` False; the meta-optimisers handle that.
    """
    episodes, init_keys = sample_episodes(family, key, cfg)
    return score_episodes(genome, spec, episodes, init_keys, cfg)


@partial(jax.jit, static_argnames=("spec", "cfg"))
def score_genomes(
    genomes: Genome, key: jax.Array, *, spec: NetworkSpec, family: TaskFamily, cfg: ObjectiveConfig
) -> ObjectiveAux:
    """The objective of each of R genomes (leaves [R, ...]) on the same tasks (common key).

    Returns:
      ObjectiveAux with leaves [R]. Used for validation by both meta-optimisers.
    """
    return jax.vmap(lambda g: meta_objective(g, spec, family, key, cfg)[1])(genomes)
