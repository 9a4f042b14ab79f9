"""Evolution: CMA-ES over the flat genome, the whole population scored in one jitted vmap.

Paper §4.4: pycma, population 80, fitness = accuracy on 20 held-out batches of 128 after
training on 15 batches of 128 (a non-differentiable objective). The adapter below is
evosax-style ask/tell over a flat vector. pycma minimises; ``Evolution`` is explicit about the
direction: ``maximize=True`` (the default, for accuracy) negates the fitness it tells.

Restarts: ``ipop`` doubles the population at each restart; ``bipop`` alternates that with
small-population runs of random step size (Hansen 2009, "Benchmarking a BI-population CMA-ES").

Resumable without pickle: the CMA-ES state is a deterministic function of its seed and the
fitness values told so far, so a checkpoint stores the told fitness history and ``replay``
rebuilds the state exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import cma
import jax
import jax.numpy as jnp
import numpy as np

from blur.genome import FIELD_NAMES, Genome, GenomeSubspace, genome_subspace
from blur.network import NetworkSpec
from blur.outer.objective import ObjectiveAux, ObjectiveConfig, sample_episodes, score_episodes
from blur.outer.sharding import gather, multi_process
from blur.rules import unused_genome_fields
from blur.tasks.base import TaskFamily

Restarts = Literal["none", "ipop", "bipop"]
WORST = 1e9
"""What a non-finite fitness is told as (pycma minimises; finite so CMA's ranking stays sane)."""


@dataclasses.dataclass(frozen=True)
class CMAConfig:
    """Settings of the CMA-ES adapter.

    Attributes:
      popsize: λ, population size (paper: 80).
      sigma0: initial step size (calibration.md: 0.3 worked, 0.1 was slow).
      seed: pycma seed (its sampling uses a private numpy Generator seeded from it).
      restarts: ``none``, ``ipop`` or ``bipop``.
      max_restarts: restarts allowed before the adapter keeps the last run going.
      diagonal: separable CMA (``CMA_diagonal``), cheaper for large genomes.
      search_fields: genome fields searched (:func:`blur.genome.genome_subspace`); the others
        stay at the initial genome's values. None: every field. calibration.md's prototype
        searched ``RULE_FIELDS + STATE_FIELDS`` (matrices, gates, normalisation).
      shared_fields: searched fields of a per-layer genome that take one value for all
        layers (the prototype: ``RULE_FIELDS``, with normalisation per layer).
      fresh_init: every candidate trains from its own synapse init (the prototype), not one
        init shared by the generation (:func:`score_population`).
      chunk_size: candidates scored together in one ``vmap`` (None: all); a speed setting,
        the scores do not depend on it (up to float rounding).
      skip_unused: leave out of the search the values the network never reads
        (:func:`blur.rules.unused_genome_fields`: e.g. the first layer's backward
        normalisation in a per-layer genome); they keep the initial genome's values. Off by
        default so that runs checkpointed before it resume with the same dimension.
      field_stds: ``"FIELD=MULTIPLIER"`` entries: the initial step size of every searched
        value of FIELD is ``sigma0 * MULTIPLIER`` (pycma's ``CMA_stds``, a fixed coordinate
        scaling); unnamed fields keep ``sigma0``. For fields where the start genome is
        fragile, e.g. ``("mu=0.5",)``.
    """

    popsize: int = 80
    sigma0: float = 0.3
    seed: int = 0
    restarts: Restarts = "none"
    max_restarts: int = 9
    diagonal: bool = False
    search_fields: tuple[str, ...] | None = None
    shared_fields: tuple[str, ...] = ()
    fresh_init: bool = False
    chunk_size: int | None = None
    skip_unused: bool = False
    field_stds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.popsize < 2:
            raise ValueError(f"CMAConfig.popsize={self.popsize} must be >= 2")
        if not self.sigma0 > 0:
            raise ValueError(f"CMAConfig.sigma0={self.sigma0} must be > 0")
        if self.restarts not in ("none", "ipop", "bipop"):
            raise ValueError(
                f"CMAConfig.restarts={self.restarts!r}; choose 'none', 'ipop' or 'bipop'"
            )
        if self.search_fields is not None:
            object.__setattr__(self, "search_fields", tuple(self.search_fields))
        object.__setattr__(self, "shared_fields", tuple(self.shared_fields))
        named = (*(self.search_fields or ()), *self.shared_fields)
        unknown = sorted(set(named) - set(FIELD_NAMES))
        if unknown:
            raise ValueError(
                f"CMAConfig names unknown genome fields {unknown}; choose from "
                f"{list(FIELD_NAMES)}"
            )
        if self.search_fields is not None and not self.search_fields:
            raise ValueError("CMAConfig.search_fields=() searches nothing; use None for all")
        if self.search_fields is not None and set(self.shared_fields) - set(self.search_fields):
            raise ValueError(
                f"CMAConfig.shared_fields={self.shared_fields} must be searched fields too; add "
                "them to search_fields"
            )
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"CMAConfig.chunk_size={self.chunk_size} must be >= 1 (or None)")
        object.__setattr__(self, "field_stds", tuple(self.field_stds))
        scaled = self.stds_by_field()
        if self.search_fields is not None and set(scaled) - set(self.search_fields):
            raise ValueError(
                f"CMAConfig.field_stds names {sorted(set(scaled) - set(self.search_fields))}, "
                "which are not searched; add them to search_fields or drop them"
            )

    def stds_by_field(self) -> dict[str, float]:
        """``field_stds`` as {field: multiplier}; ``ValueError`` names a malformed entry."""
        out: dict[str, float] = {}
        for entry in self.field_stds:
            name, eq, value = str(entry).partition("=")
            name = name.strip()
            try:
                multiplier = float(value) if eq else math.nan
            except ValueError:
                multiplier = math.nan
            if not multiplier > 0 or not math.isfinite(multiplier):
                raise ValueError(
                    f"CMAConfig.field_stds entry {entry!r} must look like FIELD=MULTIPLIER "
                    "with a positive number, e.g. 'mu=0.5'"
                )
            if name not in FIELD_NAMES:
                raise ValueError(
                    f"CMAConfig.field_stds entry {entry!r} names unknown genome field "
                    f"{name!r}; choose from {list(FIELD_NAMES)}"
                )
            if name in out:
                raise ValueError(f"CMAConfig.field_stds names {name!r} twice")
            out[name] = multiplier
        return out


def search_space(
    genome0: Genome, config: CMAConfig, spec: NetworkSpec | None = None
) -> tuple[np.ndarray, GenomeSubspace]:
    """The CMA-ES start x0 [D] (float64) and the map from a searched vector to a genome.

    ``config.search_fields`` / ``shared_fields`` pick what is searched; every other value of
    ``genome0`` stays fixed. With ``config.skip_unused`` the values that ``spec``'s network
    never reads are not searched either. The map is hashable (a static argument of
    :func:`score_population`).
    """
    fields = FIELD_NAMES if config.search_fields is None else config.search_fields
    frozen: dict[str, tuple[int, ...]] = {}
    if config.skip_unused:
        if spec is None:
            raise ValueError("CMAConfig.skip_unused needs the network spec: pass spec=")
        unused = unused_genome_fields(spec)
        if genome0.num_layers is None:  # shared: a field is unused only if no layer reads it
            everywhere = {f for f, ls in unused.items() if len(ls) == spec.num_layers}
            fields = tuple(f for f in fields if f not in everywhere)
        else:
            frozen = unused
    x0, subspace = genome_subspace(genome0, fields, config.shared_fields, frozen=frozen)
    return np.asarray(x0, np.float64), subspace


def coordinate_stds(subspace: GenomeSubspace, config: CMAConfig) -> np.ndarray | None:
    """Per-value multipliers of ``sigma0`` [D] from ``config.field_stds`` (None: all 1).

    A named field that is not in the searched space (e.g. frozen by ``skip_unused``) is an
    error, so that a typo cannot silently leave the step sizes unchanged.
    """
    by_field = config.stds_by_field()
    if not by_field:
        return None
    missing = sorted(set(by_field) - set(subspace.fields))
    if missing:
        raise ValueError(
            f"CMAConfig.field_stds names {missing}, which the search does not contain "
            f"(searched: {list(subspace.fields)})"
        )
    names = subspace.field_names()
    return np.asarray([by_field.get(n, 1.0) for n in names], np.float64)


class CMAES:
    """Ask/tell CMA-ES over a flat float vector, minimising (pycma), with IPOP/BIPOP restarts.

    Example:
      >>> es = CMAES(np.zeros(3), CMAConfig(popsize=8, sigma0=0.5))
      >>> X = es.ask()                       # [8, 3]
      >>> es.tell(X, np.sum(X**2, axis=1))   # values to MINIMISE
    """

    def __init__(
        self, x0: np.ndarray, config: CMAConfig, stds: np.ndarray | None = None
    ) -> None:
        self.config = config
        self.x0 = np.asarray(x0, np.float64).copy()
        self.dim = self.x0.size
        if stds is not None:
            stds = np.asarray(stds, np.float64)
            if stds.shape != self.x0.shape or not np.all(stds > 0):
                raise ValueError(
                    f"CMAES stds must be {self.x0.shape} positive multipliers, got shape "
                    f"{stds.shape}"
                )
        self.stds = stds
        self.restart_count = 0
        self.generation = 0
        self.history: list[np.ndarray] = []
        self._rng = np.random.Generator(np.random.PCG64(config.seed))
        self._default_popsize = config.popsize
        self._large_popsize = config.popsize
        self._large_evals = 0
        self._small_evals = 0
        self._small_regime = False  # BIPOP: the current run is a small-population one
        self.best_x = self.x0.copy()
        self.best_f = math.inf
        self._es = self._new_es(config.popsize, config.sigma0, self.x0)

    def _new_es(self, popsize: int, sigma: float, x0: np.ndarray) -> cma.CMAEvolutionStrategy:
        opts = {
            "popsize": popsize,
            "seed": int(self._rng.integers(1, 2**31 - 1)),
            "randn": lambda *shape: self._rng.standard_normal(shape),
            "verbose": -9,
            "verb_disp": 0,
            "verb_log": 0,
            "CMA_diagonal": self.config.diagonal,
            "tolx": 1e-12,
            "tolfun": 1e-12,
            "tolfunhist": 1e-14,
        }
        if self.stds is not None:
            opts["CMA_stds"] = self.stds.tolist()
        self.popsize = popsize
        return cma.CMAEvolutionStrategy(x0.tolist(), sigma, opts)

    @property
    def mean(self) -> np.ndarray:
        """Current distribution mean [D]."""
        return np.asarray(self._es.mean, np.float64)

    @property
    def sigma(self) -> float:
        return float(self._es.sigma)

    def ask(self) -> np.ndarray:
        """Sample the next population [popsize, D]."""
        return np.asarray(self._es.ask(), np.float64)

    def tell(self, X: np.ndarray, values: np.ndarray) -> None:
        """Update with the population ``X`` [P, D] and the values to minimise [P].

        Non-finite values are told as ``WORST``. A stopped run is restarted per ``restarts``.
        """
        values = np.asarray(values, np.float64)
        values = np.where(np.isfinite(values), values, WORST)
        self._es.tell(list(np.asarray(X, np.float64)), values.tolist())
        self.history.append(values.copy())
        self.generation += 1
        i = int(np.argmin(values))
        if values[i] < self.best_f:
            self.best_f, self.best_x = float(values[i]), np.asarray(X[i], np.float64).copy()
        self._maybe_restart(len(values))

    def _maybe_restart(self, evals: int) -> None:
        cfg = self.config
        # By regime, not by popsize: a small run may draw the large size (e.g. lambda_default).
        if self._small_regime:
            self._small_evals += evals
        else:
            self._large_evals += evals
        if cfg.restarts == "none" or self.restart_count >= cfg.max_restarts:
            return
        if not self._es.stop():
            return
        self.restart_count += 1
        if cfg.restarts == "ipop":
            self._large_popsize *= 2
            self._es = self._new_es(self._large_popsize, cfg.sigma0, self.x0)
            return
        # BIPOP: run the regime that has used fewer evaluations so far.
        if self._small_evals < self._large_evals:
            u = float(self._rng.uniform())
            ratio = self._large_popsize / self._default_popsize
            pop = max(2, int(self._default_popsize * (0.5 * ratio) ** (u * u)))
            sigma = cfg.sigma0 * 10 ** (-2 * float(self._rng.uniform()))
            self._small_regime = True
            self._es = self._new_es(pop, sigma, self.x0)
        else:
            self._large_popsize *= 2
            self._small_regime = False
            self._es = self._new_es(self._large_popsize, cfg.sigma0, self.x0)

    @classmethod
    def replay(
        cls, x0: np.ndarray, config: CMAConfig, history: list[np.ndarray],
        stds: np.ndarray | None = None,
    ) -> CMAES:
        """Rebuild the exact state after ``len(history)`` generations (for resuming)."""
        es = cls(x0, config, stds)
        for values in history:
            X = es.ask()
            if len(values) != len(X):
                raise ValueError(
                    f"checkpoint history has a generation of {len(values)} values where CMA-ES "
                    f"asked for {len(X)}: the checkpoint does not match this configuration"
                )
            es.tell(X, values)
        return es


def candidate_init_keys(key: jax.Array, popsize: int, cfg: ObjectiveConfig) -> jax.Array:
    """Synapse-init keys [P, N, R] of :func:`score_population` with ``fresh_init``: one set per
    candidate, independent of the task keys that ``sample_episodes(family, key, cfg)`` uses."""
    roots = jax.random.split(jax.random.fold_in(key, 0x5EED), popsize)
    return jax.vmap(lambda k: jax.random.split(k, (cfg.num_tasks, cfg.num_replicas)))(roots)


@partial(jax.jit, static_argnames=("unravel", "spec", "cfg", "fresh_init", "chunk_size"))
def score_population(
    population: jax.Array,
    key: jax.Array,
    *,
    unravel: Callable[[jax.Array], Genome],
    spec: NetworkSpec,
    family: TaskFamily,
    cfg: ObjectiveConfig,
    fresh_init: bool = False,
    chunk_size: int | None = None,
) -> ObjectiveAux:
    """Score every flat genome [P, D] on the same tasks (common random numbers), in one jit.

    The episodes are drawn once from ``key`` (:func:`blur.outer.objective.sample_episodes`)
    and every candidate trains and is scored on them.

    Args:
      population: [P, D] flat genomes (``unravel`` maps one to a genome).
      key: PRNG key of this generation's tasks (and shared synapse inits).
      fresh_init: each candidate gets its own synapse inits (from ``fold_in(key', index)``)
        instead of the shared ones of ``meta_objective(genome, ..., key, ...)``, as in
        calibration.md's prototype: selection then favours rules that work from any init.
      chunk_size: candidates scored together by one ``vmap``; chunks run one after another
        (``lax.map``). None: the whole population in one ``vmap``. Smaller chunks keep the
        working set (the query activations, [chunk, Q * Bq, n_hidden, K] floats) in cache.
        Results do not depend on it (up to float rounding, which may flip a query argmax).

    Returns:
      ObjectiveAux with leaves [P].
    """
    P = population.shape[0]
    episodes, shared_keys = sample_episodes(family, key, cfg)
    population = population.astype(jnp.float32)
    if fresh_init:
        init_keys = candidate_init_keys(key, P, cfg)

        def one(args: tuple[jax.Array, jax.Array]) -> ObjectiveAux:
            flat, keys = args
            return score_episodes(unravel(flat), spec, episodes, keys, cfg)[1]

        xs: tuple[jax.Array, ...] = (population, init_keys)
    else:  # one init for all: unbatched keys, so the synapses are drawn once

        def one(args: tuple[jax.Array, ...]) -> ObjectiveAux:
            return score_episodes(unravel(args[0]), spec, episodes, shared_keys, cfg)[1]

        xs = (population,)
    if chunk_size is None or chunk_size >= P:
        return jax.vmap(one)(xs)
    if chunk_size < 1:
        raise ValueError(f"score_population chunk_size={chunk_size} must be >= 1 (or None)")
    return jax.lax.map(one, xs, batch_size=chunk_size)


def fitness_from_aux(aux: ObjectiveAux, fitness: Literal["accuracy", "loss"]) -> np.ndarray:
    """Fitness to MAXIMISE [P]: query accuracy, or minus the meta-loss; -inf where non-finite."""
    value = np.asarray(aux.accuracy if fitness == "accuracy" else -aux.loss, np.float64)
    ok = np.asarray(aux.finite) & np.isfinite(value)
    return np.where(ok, value, -np.inf)


@dataclasses.dataclass
class EvolutionTrainer:
    """CMA-ES as a :class:`blur.outer.base.MetaTrainer` (one meta-step = one generation).

    The state is the :class:`CMAES` adapter itself; it is checkpointed as its told fitness
    history and rebuilt exactly by :meth:`CMAES.replay`. Every member of a generation is
    scored on the same tasks (``key``); the candidate to validate is the distribution mean.

    Attributes:
      genome: the initial genome (the initial mean, flattened).
      spec, family, objective: network, task family and meta-objective (T = num_steps).
      cma: the CMA-ES settings.
      fitness: ``accuracy`` or ``loss`` (minus the meta-loss), maximised.
      place: applied to each population [P, D] before scoring (e.g. sharding over devices).
    """

    genome: Genome
    spec: NetworkSpec
    family: TaskFamily
    objective: ObjectiveConfig
    cma: CMAConfig
    fitness: Literal["accuracy", "loss"] = "accuracy"
    place: Callable[[jax.Array], jax.Array] | None = None
    method: str = "cma"

    def __post_init__(self) -> None:
        # cma.search_fields / shared_fields choose what is searched; the rest stays at genome
        self.x0, self.unravel = search_space(self.genome, self.cma, self.spec)
        self.stds = coordinate_stds(self.unravel, self.cma)

    def init(self) -> CMAES:
        return CMAES(self.x0, self.cma, self.stds)

    def step(self, state: CMAES, step: int, key: jax.Array) -> tuple[CMAES, Any]:
        from blur.outer.base import StepReport

        X = state.ask()
        population = jnp.asarray(X, jnp.float32)
        if self.place is not None:
            population = self.place(population)
        aux = score_population(
            population, key, unravel=self.unravel, spec=self.spec, family=self.family,
            cfg=self.objective, fresh_init=self.cma.fresh_init, chunk_size=self.cma.chunk_size,
        )
        if multi_process():  # each process scored its shard: gather the whole population's
            aux = gather(aux)
        fitness = fitness_from_aux(aux, self.fitness)
        state.tell(X, -fitness)  # pycma minimises: tell minus the fitness to maximise
        bad = int(np.sum(~np.isfinite(fitness)))
        finite = fitness[np.isfinite(fitness)]
        record = {
            "fitness_best": float(finite.max()) if finite.size else None,
            "fitness_mean": float(finite.mean()) if finite.size else None,
            "meta_train_accuracy": float(np.mean(np.asarray(aux.accuracy))),
            "meta_loss": float(np.nanmean(np.asarray(aux.loss))),
            "diverged": bad,
            "sigma": state.sigma,
            "popsize": len(X),
            "restarts": state.restart_count,
            "T": self.objective.num_steps,
        }
        postfix = {"best": f"{float(np.max(fitness)):.3f}", "sigma": f"{state.sigma:.3f}"}
        return state, StepReport(record=record, postfix=postfix)

    def after_validation(
        self, state: CMAES, scores: np.ndarray, key: jax.Array
    ) -> tuple[CMAES, dict[str, Any]]:
        return state, {}  # the validated CMA mean never feeds back into the search

    def candidates(self, state: CMAES) -> tuple[Genome, np.ndarray]:
        mean = self.unravel(jnp.asarray(state.mean, jnp.float32))
        return jax.tree_util.tree_map(lambda x: x[None], mean), np.ones((1,), bool)

    def to_checkpoint(self, state: CMAES) -> tuple[Any, dict[str, Any]]:
        return list(state.history), {
            "popsizes": [len(h) for h in state.history],
            "mean": state.mean.tolist(),
            **self._counts(state),
        }

    def checkpoint_template(self, meta: dict[str, Any]) -> Any:
        return [np.zeros((p,), np.float64) for p in meta["popsizes"]]

    def from_checkpoint(self, tree: Any, meta: dict[str, Any]) -> CMAES:
        es = CMAES.replay(self.x0, self.cma, [np.asarray(h) for h in tree], self.stds)
        if not np.allclose(es.mean, np.asarray(meta["mean"]), rtol=0, atol=1e-9):
            raise ValueError(
                "replaying the checkpoint's fitness history did not reproduce the saved CMA-ES "
                "mean (was it written by another pycma version or configuration?)"
            )
        return es

    @staticmethod
    def _counts(state: CMAES) -> dict[str, int]:
        """Candidates scored and diverged so far, read off the told history (a diverged
        candidate is told ``WORST``), so nothing beside the CMA-ES state needs saving."""
        return {"diverged": int(sum(np.sum(h == WORST) for h in state.history)),
                "scored": int(sum(len(h) for h in state.history))}

    def summary(self, state: CMAES) -> dict[str, Any]:
        return {**self._counts(state), "restarts": state.restart_count}
