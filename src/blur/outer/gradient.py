"""Gradient meta-training: Adam through the unrolled inner loop, several runs side by side.

Paper App. C.1: Adam, learning rate 5e-4, gradient clipping at 10; usually 8 independent runs,
best of 8 on meta-validation; a curriculum on the unroll length T (start at 10, +5 every N
steps, §4.2 / App. C.4). Runs are a leading axis on the genome and optimiser state, trained
with one ``jax.vmap``-ed, jitted update.

A run whose meta-loss or meta-gradient is non-finite (a diverging inner loop) keeps its old
genome and optimiser state for that step; ``skipped`` counts such steps per run.
"""

from __future__ import annotations

import dataclasses
import functools
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax

from blur._pytree import pytree_dataclass
from blur.genome import Genome
from blur.network import NetworkSpec
from blur.outer.objective import ObjectiveAux, ObjectiveConfig, meta_objective
from blur.tasks.base import TaskFamily


@dataclasses.dataclass(frozen=True)
class Curriculum:
    """Unroll length T as a function of the meta-step: ``start + increment * (step // every)``.

    Capped at ``maximum``. ``every=0`` keeps T fixed at ``start``.
    """

    start: int = 10
    increment: int = 5
    every: int = 10_000
    maximum: int = 50

    def __post_init__(self) -> None:
        if self.start < 1 or self.maximum < self.start or self.increment < 0 or self.every < 0:
            raise ValueError(
                f"Curriculum {self} is invalid: need start >= 1, maximum >= start, "
                "increment >= 0 and every >= 0"
            )

    def num_steps(self, meta_step: int) -> int:
        if self.every == 0:
            return self.start
        return min(self.maximum, self.start + self.increment * (meta_step // self.every))


@functools.cache
def make_optimizer(
    learning_rate: float = 5e-4, clip_norm: float = 10.0, scale_by_parameter: bool = False
) -> optax.GradientTransformation:
    """The paper's meta-optimiser: global-norm clipping then Adam.

    ``scale_by_parameter`` multiplies each field's Adam step by the field's root-mean-square,
    floored at 1 (``optax.scale_by_param_block_rms``, Adafactor's relative step). Adam moves
    every parameter by at most about ``learning_rate`` per step whatever its size, so a
    fan-in-scaled Hebbian rate ``eta_tilde`` of ~100 otherwise changes by at most ~1% in a
    thousand meta-steps at 1e-3 while the O(1) matrices move freely; with the scaling both
    move at about the same relative speed. Fields of size <= 1 get the plain Adam step.

    Cached: equal arguments return the same object. ``meta_step`` takes the optimizer as a
    static (hashed) argument, and a fresh optax chain hashes differently, so without the cache
    every ``meta_train`` call in a process (a resume, a sweep, the tests) recompiled it.
    """
    steps = [optax.clip_by_global_norm(clip_norm), optax.adam(learning_rate)]
    if scale_by_parameter:
        steps.append(optax.scale_by_param_block_rms(min_scale=1.0))
    return optax.chain(*steps)


@pytree_dataclass
class GradientState:
    """State of R runs trained side by side (leading axis [R] on every leaf).

    Attributes:
      genomes: Genome with leaves [R, ...].
      opt_state: optax state with leaves [R, ...].
      skipped: [R] int32, meta-steps skipped because of non-finite loss or gradient.
    """

    genomes: Genome
    opt_state: Any
    skipped: jax.Array


@pytree_dataclass
class GradientMetrics:
    """Per-run metrics of one meta-step (leaves [R]).

    Attributes:
      loss, accuracy, train_accuracy: from the objective.
      grad_norm: global norm of the meta-gradient before clipping.
      skipped: bool, this step's update was skipped (non-finite).
    """

    loss: jax.Array
    accuracy: jax.Array
    train_accuracy: jax.Array
    grad_norm: jax.Array
    skipped: jax.Array


def init(genomes: Genome, optimizer: optax.GradientTransformation) -> GradientState:
    """Optimiser state for a stack of R genomes (leaves [R, ...])."""
    R = jax.tree_util.tree_leaves(genomes)[0].shape[0]
    return GradientState(
        genomes=genomes,
        opt_state=jax.vmap(optimizer.init)(genomes),
        skipped=jnp.zeros((R,), jnp.int32),
    )


def _tree_all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


@partial(jax.jit, static_argnames=("spec", "cfg", "optimizer"))
def meta_step(
    state: GradientState,
    key: jax.Array,
    *,
    spec: NetworkSpec,
    family: TaskFamily,
    cfg: ObjectiveConfig,
    optimizer: optax.GradientTransformation,
) -> tuple[GradientState, GradientMetrics]:
    """One Adam step on every run. Each run gets its own key (``fold_in(key, run)``).

    Non-finite loss or gradient: that run's genome and optimiser state are left unchanged and
    its ``skipped`` counter goes up by one.
    """
    R = state.skipped.shape[0]
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(R))

    def one_run(genome: Genome, opt_state: Any, k: jax.Array):
        (loss, aux), grads = jax.value_and_grad(meta_objective, has_aux=True)(
            genome, spec, family, k, cfg
        )
        ok = jnp.isfinite(loss) & _tree_all_finite(grads) & aux.finite
        safe_grads = jax.tree_util.tree_map(lambda g: jnp.where(ok, g, 0.0), grads)
        updates, new_opt = optimizer.update(safe_grads, opt_state, genome)
        new_genome = optax.apply_updates(genome, updates)
        keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
        new_genome = jax.tree_util.tree_map(keep, new_genome, genome)
        new_opt = jax.tree_util.tree_map(keep, new_opt, opt_state)
        return new_genome, new_opt, aux, optax.global_norm(grads), ~ok

    genomes, opt_state, aux, gnorm, skipped = jax.vmap(one_run)(
        state.genomes, state.opt_state, keys
    )
    aux: ObjectiveAux
    new_state = GradientState(
        genomes=genomes, opt_state=opt_state, skipped=state.skipped + skipped.astype(jnp.int32)
    )
    metrics = GradientMetrics(
        loss=aux.loss,
        accuracy=aux.accuracy,
        train_accuracy=aux.train_accuracy,
        grad_norm=gnorm,
        skipped=skipped,
    )
    return new_state, metrics


@partial(jax.jit, static_argnames=("spec", "cfg"))
def evaluate_runs(
    genomes: Genome, key: jax.Array, *, spec: NetworkSpec, family: TaskFamily, cfg: ObjectiveConfig
) -> ObjectiveAux:
    """Objective of each of R genomes (leaves [R, ...]) on the same tasks (common key)."""
    return jax.vmap(lambda g: meta_objective(g, spec, family, key, cfg)[1])(genomes)
