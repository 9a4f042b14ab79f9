"""Gradient meta-training: Adam through the unrolled inner loop, several runs side by side.

Paper App. C.1: Adam, learning rate 5e-4, gradient clipping at 10; usually 8 independent runs,
best of 8 on meta-validation; a curriculum on the unroll length T (start at 10, +5 every N
steps, §4.2 / App. C.4). Runs are a leading axis on the genome and optimiser state, trained
with one ``jax.vmap``-ed, jitted update.

A run whose meta-loss or meta-gradient is non-finite (a diverging inner loop) keeps its old
genome and optimiser state for that step; ``skipped`` counts such steps per run. A run that
stays non-finite for ``drop_after`` consecutive steps is dropped: no longer updated, and
left out of best-of-N by the run loop (:class:`GradientTrainer`).
"""

from __future__ import annotations

import dataclasses
import functools
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from blur._pytree import pytree_dataclass, tree_all_finite
from blur.genome import FIELD_NAMES, Genome
from blur.network import NetworkSpec
from blur.outer.objective import ObjectiveAux, ObjectiveConfig, meta_objective
from blur.outer.sharding import gather, multi_process
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


FrozenFields = tuple[tuple[str, tuple[int, ...] | None], ...]
"""Genome fields held fixed: (field name, its layers, or None for every layer)."""


def parse_frozen(entries: tuple[str, ...] | list[str]) -> FrozenFields:
    """``FIELD`` or ``FIELD@LAYER`` strings as :data:`FrozenFields`.

    ``FIELD`` is a genome field name (:data:`blur.genome.FIELD_NAMES`); ``@LAYER`` picks one
    synapse layer of a per-layer genome, counted from 0, negative from the end (``@-1`` is the
    output layer). The same field named twice joins its layers; a whole field wins.
    E.g. ``("fwd_norm_scale@-1", "oja")``.
    """
    layers: dict[str, set[int] | None] = {}
    for entry in entries:
        name, sep, layer = str(entry).partition("@")
        if name not in FIELD_NAMES:
            raise ValueError(
                f"frozen field {entry!r}: {name!r} is not a genome field; choose from "
                f"{list(FIELD_NAMES)}, optionally with @LAYER (e.g. fwd_norm_scale@-1)"
            )
        if not sep:
            layers[name] = None
            continue
        try:
            index = int(layer)
        except ValueError:
            raise ValueError(
                f"frozen field {entry!r}: the layer after '@' must be an integer (0 is the first "
                "synapse layer, -1 the output layer)"
            ) from None
        current = layers.setdefault(name, set())
        if current is not None:  # None: the whole field is frozen already
            current.add(index)
    return tuple(
        (name, None if ls is None else tuple(sorted(ls)))
        for name, ls in sorted(layers.items(), key=lambda kv: FIELD_NAMES.index(kv[0]))
    )


def frozen_mask(genome: Genome, frozen: FrozenFields) -> Genome:
    """Per value of one genome, True where ``frozen`` holds it fixed (a Genome of bool arrays
    shaped like ``genome``).

    Raises ValueError for a layer index on a shared genome or outside [-L, L).
    """
    L = genome.num_layers
    masks = {n: np.zeros(np.shape(getattr(genome, n)), bool) for n in FIELD_NAMES}
    for name, layers in frozen:
        if layers is None:
            masks[name][...] = True
            continue
        if L is None:
            raise ValueError(
                f"frozen field {name}@{','.join(map(str, layers))} names layers, but the genome "
                "is shared by all layers (per_layer_genome=False): freeze the whole field "
                "(drop '@LAYER') or use a per-layer genome"
            )
        for i in layers:
            if not -L <= i < L:
                raise ValueError(
                    f"frozen field {name}@{i}: the genome has {L} synapse layers, so the layer "
                    f"must be in [{-L}, {L - 1}]"
                )
            masks[name][i] = True
    return Genome(**{n: jnp.asarray(m) for n, m in masks.items()})


def freeze(frozen: FrozenFields) -> optax.GradientTransformation:
    """Zero the updates of the ``frozen`` genome values (optax ``stateless``): put first in a
    chain, those values get no gradient, so clipping ignores them and Adam never moves them.

    The params it is given are the genome(s) being trained (one genome; under ``jax.vmap``
    over runs, one per run).
    """

    def zero_frozen(updates: Any, params: Any) -> Any:
        if params is None:
            raise ValueError("freeze needs the params (optimizer.update(grads, state, genome))")
        mask = frozen_mask(params, frozen)
        return jax.tree_util.tree_map(lambda u, m: jnp.where(m, 0.0, u), updates, mask)

    return optax.stateless(zero_frozen)


@functools.cache
def make_optimizer(
    learning_rate: float = 5e-4,
    clip_norm: float = 10.0,
    scale_by_parameter: bool = False,
    decay_steps: int = 0,
    final_fraction: float = 0.1,
    frozen: FrozenFields = (),
) -> optax.GradientTransformation:
    """The paper's meta-optimiser: global-norm clipping then Adam.

    ``frozen`` (:func:`parse_frozen`) genome values get zero gradient before the clipping
    (:func:`freeze`), so they keep their initial values for the whole run.

    ``decay_steps`` > 0 anneals Adam's rate along a cosine from ``learning_rate`` to
    ``final_fraction * learning_rate`` over that many meta-steps (``optax.cosine_decay_schedule``;
    the step count lives in the optimizer state, so a resumed run continues the schedule).

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
    if decay_steps < 0 or not 0.0 <= final_fraction <= 1.0:
        raise ValueError(
            f"decay_steps={decay_steps} must be >= 0 and final_fraction={final_fraction} in [0, 1]"
        )
    rate: float | optax.Schedule = learning_rate
    if decay_steps:
        rate = optax.cosine_decay_schedule(learning_rate, decay_steps, alpha=final_fraction)
    steps = [optax.clip_by_global_norm(clip_norm), optax.adam(rate)]
    if frozen:
        steps.insert(0, freeze(frozen))
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
      streak: [R] int32, consecutive skipped meta-steps up to now.
      dropped: [R] bool, runs dropped after ``drop_after`` consecutive skipped meta-steps.
    """

    genomes: Genome
    opt_state: Any
    skipped: jax.Array
    streak: jax.Array
    dropped: jax.Array


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
        streak=jnp.zeros((R,), jnp.int32),
        dropped=jnp.zeros((R,), bool),
    )


@partial(jax.jit, static_argnames=("spec", "cfg", "optimizer", "drop_after"))
def meta_step(
    state: GradientState,
    key: jax.Array,
    *,
    spec: NetworkSpec,
    family: TaskFamily,
    cfg: ObjectiveConfig,
    optimizer: optax.GradientTransformation,
    drop_after: int | None = None,
) -> tuple[GradientState, GradientMetrics]:
    """One Adam step on every run. Each run gets its own key (``fold_in(key, run)``).

    Non-finite loss or gradient: that run's genome and optimiser state are left unchanged and
    its ``skipped`` counter and ``streak`` go up by one. A run whose streak reaches
    ``drop_after`` is marked dropped; a dropped run is never updated again (and no longer
    counted as skipped). ``drop_after=None`` never drops a run.
    """
    R = state.skipped.shape[0]
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(R))

    def one_run(genome: Genome, opt_state: Any, k: jax.Array, dropped: jax.Array):
        (loss, aux), grads = jax.value_and_grad(meta_objective, has_aux=True)(
            genome, spec, family, k, cfg
        )
        finite = jnp.isfinite(loss) & tree_all_finite(grads) & aux.finite
        ok = finite & ~dropped
        safe_grads = jax.tree_util.tree_map(lambda g: jnp.where(ok, g, 0.0), grads)
        updates, new_opt = optimizer.update(safe_grads, opt_state, genome)
        new_genome = optax.apply_updates(genome, updates)
        keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
        new_genome = jax.tree_util.tree_map(keep, new_genome, genome)
        new_opt = jax.tree_util.tree_map(keep, new_opt, opt_state)
        return new_genome, new_opt, aux, optax.tree.norm(grads), ~finite & ~dropped

    genomes, opt_state, aux, gnorm, skipped = jax.vmap(one_run)(
        state.genomes, state.opt_state, keys, state.dropped
    )
    aux: ObjectiveAux
    streak = jnp.where(skipped, state.streak + 1, jnp.where(state.dropped, state.streak, 0))
    dropped = state.dropped
    if drop_after is not None:
        dropped = dropped | (streak >= drop_after)
    new_state = GradientState(
        genomes=genomes,
        opt_state=opt_state,
        skipped=state.skipped + skipped.astype(jnp.int32),
        streak=streak,
        dropped=dropped,
    )
    metrics = GradientMetrics(
        loss=aux.loss,
        accuracy=aux.accuracy,
        train_accuracy=aux.train_accuracy,
        grad_norm=gnorm,
        skipped=skipped,
    )
    return new_state, metrics


def exploit(
    state: GradientState, scores: np.ndarray, below: float
) -> tuple[GradientState, np.ndarray]:
    """Population-based training's exploit step (Jaderberg et al. 2017) over R runs, by
    truncation selection.

    The runs are ranked by validation score (dropped runs last). The worst half is paired with
    the best half, worst with best, second worst with second best, and so on; a run of the
    worst half continues from a copy of its partner (genome and optimiser state: Adam's moments
    and step count) when it is dropped or scores more than ``below`` under the partner. The best
    half always keeps its own genomes, so up to R/2 lineages survive every step. A restarted
    run keeps its skipped-step counter; its streak of non-finite steps is reset and it is live
    again.

    Args:
      state: R runs (leaves [R, ...]).
      scores: [R] validation scores (accuracy; 0 where the inner loop diverged).
      below: the largest gap to its partner a run of the worst half may have and keep its own
        genome.

    Returns:
      (the new state, source [R]: the run each run now continues; ``source[r] == r`` for a
      run that kept its own genome). With no live run, the state is returned unchanged.
    """
    scores = np.asarray(scores, np.float64)
    dropped = np.asarray(state.dropped)
    R = scores.shape[0]
    live = np.where(dropped | np.isnan(scores), -np.inf, scores)
    order = np.argsort(-live, kind="stable")  # best first
    source = np.arange(R)
    for src, r in zip(order[: R // 2], order[::-1][: R // 2], strict=True):
        if np.isfinite(live[src]) and (dropped[r] or not scores[r] >= live[src] - below):
            source[r] = src
    replace = source != np.arange(R)
    if not replace.any():
        return state, source
    idx = jnp.asarray(source)
    take = functools.partial(jax.tree_util.tree_map, lambda x: x[idx])
    flags = jnp.asarray(replace)
    return GradientState(
        genomes=take(state.genomes),
        opt_state=take(state.opt_state),
        skipped=state.skipped,
        streak=jnp.where(flags, 0, state.streak),
        dropped=jnp.where(flags, False, state.dropped),
    ), source


def explore(genomes: Genome, source: np.ndarray, key: jax.Array, scale: float) -> Genome:
    """Population-based training's explore step (Jaderberg et al. 2017), on the genome: each
    run that the exploit step restarted moves its copied genome by Gaussian noise, so the copies
    do not retrace their partner's path.

    For a run r with ``source[r] != r`` every field gains ``scale * rms * N(0, 1)`` per value,
    where rms is the root-mean-square of that run's field (its absolute value for a scalar
    field), so the noise is relative and an all-zero field stays zero. Other runs are returned
    bitwise unchanged.

    Args:
      genomes: R genomes (leaves [R, ...]).
      source: [R] the run each run now continues (:func:`exploit`'s second result).
      key: PRNG key of this validation.
      scale: the noise's size relative to each field's RMS.
    """
    moved = np.asarray(source) != np.arange(len(source))
    if not moved.any() or scale == 0.0:
        return genomes
    leaves, treedef = jax.tree_util.tree_flatten(genomes)
    out = []
    for leaf, k in zip(leaves, jax.random.split(key, len(leaves)), strict=True):
        if not jnp.issubdtype(leaf.dtype, jnp.floating):
            out.append(leaf)
            continue
        axes = tuple(range(1, leaf.ndim))
        rms = jnp.sqrt(jnp.mean(jnp.square(leaf), axis=axes, keepdims=True))
        noise = scale * rms * jax.random.normal(k, leaf.shape, leaf.dtype)
        mask = jnp.asarray(moved).reshape((-1,) + (1,) * (leaf.ndim - 1))
        out.append(jnp.where(mask, leaf + noise, leaf))
    return jax.tree_util.tree_unflatten(treedef, out)


def unstack(genomes: Genome) -> list[Genome]:
    """The R genomes of a stack (leaves [R, ...]) as a list."""
    R = jax.tree_util.tree_leaves(genomes)[0].shape[0]
    return [jax.tree_util.tree_map(lambda x, r=r: x[r], genomes) for r in range(R)]


@dataclasses.dataclass
class GradientTrainer:
    """Gradient meta-training as a :class:`blur.outer.base.MetaTrainer`.

    Attributes:
      genome: the initial genome; every run starts from it.
      spec, family: the network and the meta-training task family.
      objective: the meta-objective; ``num_steps`` is replaced by the curriculum's T.
      curriculum: T against the meta-step.
      optimizer: see :func:`make_optimizer`.
      num_runs: R, runs trained side by side.
      drop_after: consecutive non-finite meta-steps after which a run is dropped.
      exploit_below: at each validation, the worst half of the runs restart from copies of the
        best half where they score more than this below their partner (:func:`exploit`);
        None: off.
      explore_scale: the restarted runs' genomes then move by noise of this size relative to
        each field (:func:`explore`); None: copies are exact.
      init_spread: runs 1..R-1 start from ``genome`` moved by noise of this size relative to
        each field (:func:`explore` with ``init_key``); run 0 starts from ``genome`` itself.
        None: every run starts from ``genome``.
      init_key: the PRNG key of that noise (needed with ``init_spread``).
      place: applied to the fresh state (e.g. sharding the run axis over devices).
      frozen: genome values that keep ``genome``'s values in every run; ``optimizer`` must
        freeze the same ones (``make_optimizer(frozen=...)``). The noise of ``init_spread`` and
        of the explore step leaves them out.
    """

    genome: Genome
    spec: NetworkSpec
    family: TaskFamily
    objective: ObjectiveConfig
    curriculum: Curriculum
    optimizer: optax.GradientTransformation
    num_runs: int
    drop_after: int | None = None
    exploit_below: float | None = None
    explore_scale: float | None = None
    init_spread: float | None = None
    init_key: jax.Array | None = None
    place: Any = None
    frozen: FrozenFields = ()
    method: str = "gradient"

    def __post_init__(self) -> None:
        frozen_mask(self.genome, self.frozen)  # a layer the genome lacks fails before compiling

    def _explore(self, genomes: Genome, source: np.ndarray, key: jax.Array, scale: float) -> Genome:
        """:func:`explore`, with the frozen values put back to ``genome``'s."""
        moved = explore(genomes, source, key, scale)
        if not self.frozen:
            return moved
        mask = frozen_mask(self.genome, self.frozen)
        hold = lambda g, m, g0: jnp.where(m, g0, g)  # noqa: E731
        return jax.tree_util.tree_map(hold, moved, mask, self.genome)

    def init(self) -> GradientState:
        genomes = jax.tree_util.tree_map(lambda x: jnp.stack([x] * self.num_runs), self.genome)
        if self.init_spread:
            if self.init_key is None:
                raise ValueError("GradientTrainer.init_spread needs init_key (the noise's key)")
            # every run "continues" run 0, so runs 1..R-1 are moved and run 0 is kept
            source = np.zeros(self.num_runs, np.int64)
            genomes = self._explore(genomes, source, self.init_key, self.init_spread)
        return self._keep(init(genomes, self.optimizer))

    def _keep(self, state: GradientState) -> GradientState:
        """Between steps the state stays sharded on one process; on several it stays on the
        host (whole on every process), placed only for each meta-step."""
        if self.place is None or multi_process():
            return state
        return self.place(state)

    def step(self, state: GradientState, step: int, key: jax.Array) -> tuple[GradientState, Any]:
        from blur.outer.base import StepReport

        T = self.curriculum.num_steps(step)
        cfg = dataclasses.replace(self.objective, num_steps=T)
        old_dropped = np.asarray(state.dropped)
        multi = multi_process()
        if multi and self.place is not None:
            state = self.place(state)
        state, m = meta_step(
            state, key, spec=self.spec, family=self.family, cfg=cfg, optimizer=self.optimizer,
            drop_after=self.drop_after,
        )
        if multi:  # every process gets the whole result (its own shards and the others')
            state, m = gather((state, m))
        g = state.genomes
        skipped = np.asarray(state.skipped)
        record = {
            "T": T,
            "meta_loss": np.asarray(m.loss).tolist(),
            "meta_train_accuracy": np.asarray(m.accuracy).tolist(),
            "grad_norm": np.asarray(m.grad_norm).tolist(),
            "skipped": skipped.tolist(),
            "gates": {
                "f": np.asarray(g.f).tolist(),
                "eta": np.asarray(g.eta).tolist(),
                "f_tilde": np.asarray(g.f_tilde).tolist(),
                "eta_tilde": np.asarray(g.eta_tilde).tolist(),
            },
        }
        dropped = np.asarray(state.dropped)
        events = [
            f"run {r} dropped at meta-step {step}: its inner loop was non-finite for "
            f"{self.drop_after} meta-steps in a row; it is no longer trained and is left out "
            "of best-of-N from now on"
            for r in np.nonzero(dropped & ~old_dropped)[0]
        ]
        if np.any(dropped):
            record["dropped"] = np.nonzero(dropped)[0].tolist()
        losses = np.asarray(m.loss)[np.isfinite(np.asarray(m.loss))]
        postfix = {"loss": f"{float(np.mean(losses)):.3f}" if losses.size else "nan", "T": str(T)}
        return state, StepReport(record=record, postfix=postfix, events=events)

    def candidates(self, state: GradientState) -> tuple[Genome, np.ndarray]:
        return state.genomes, ~np.asarray(state.dropped)

    def after_validation(
        self, state: GradientState, scores: np.ndarray, key: jax.Array
    ) -> tuple[GradientState, dict[str, Any]]:
        """The exploit step (:func:`exploit`) when ``exploit_below`` is set, then the explore
        step (:func:`explore`, with ``key``) when ``explore_scale`` is; returns the state and
        the record fields (``restarted_from``: {run: source run}) for the loop to log."""
        if self.exploit_below is None:
            return state, {}
        state, source = exploit(state, scores, self.exploit_below)
        if self.explore_scale:
            state = state.replace(
                genomes=self._explore(state.genomes, source, key, self.explore_scale)
            )
        moved = {int(r): int(s) for r, s in enumerate(source) if s != r}
        return self._keep(state), ({"restarted_from": moved} if moved else {})

    def to_checkpoint(self, state: GradientState) -> tuple[Any, dict[str, Any]]:
        return state, {}

    def checkpoint_template(self, meta: dict[str, Any]) -> Any:
        return self.init()

    def from_checkpoint(self, tree: Any, meta: dict[str, Any]) -> GradientState:
        return self._keep(tree)

    def summary(self, state: GradientState) -> dict[str, Any]:
        return {
            "skipped": np.asarray(state.skipped).tolist(),
            "dropped": np.nonzero(np.asarray(state.dropped))[0].tolist(),
        }
