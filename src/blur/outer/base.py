"""The interface every meta-optimiser offers the run loop (``blur.experiments.loop``).

Like learned_optimization's outer trainers, the gradient trainer (:mod:`blur.outer.gradient`)
and CMA-ES (:mod:`blur.outer.evolution`) are interchangeable: the loop asks each for a state,
advances it one meta-step at a time with a key it derives from the run's seed, validates the
genomes it offers as candidates, and checkpoints it as arrays plus JSON metadata. Nothing here
touches files; the loop does all I/O.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, TypeVar

import jax
import numpy as np

from blur.genome import Genome

S = TypeVar("S")


@dataclasses.dataclass
class StepReport:
    """What one meta-step tells the loop.

    Attributes:
      record: fields of the step's ``train`` record in ``metrics.jsonl`` (JSON values).
      postfix: short strings for the progress bar.
      events: messages worth one log line each (a run dropped, a restart), not per step noise.
    """

    record: dict[str, Any]
    postfix: dict[str, str] = dataclasses.field(default_factory=dict)
    events: list[str] = dataclasses.field(default_factory=list)


class MetaTrainer(Protocol[S]):
    """A meta-optimiser as the run loop drives it.

    Attributes:
      method: ``gradient`` or ``cma`` (recorded in the run's config and genome files).
    """

    method: str

    def init(self) -> S:
        """The state at meta-step 0."""
        ...

    def step(self, state: S, step: int, key: jax.Array) -> tuple[S, StepReport]:
        """Meta-step ``step`` (0-based) with its own key; returns the new state."""
        ...

    def candidates(self, state: S) -> tuple[Genome, np.ndarray]:
        """Genomes to validate, stacked on a leading axis [R], and which may be selected [R]."""
        ...

    def after_validation(
        self, state: S, scores: np.ndarray, key: jax.Array
    ) -> tuple[S, dict[str, Any]]:
        """The state after a validation that scored the candidates ``scores`` [R], and fields
        for the validation's record (e.g. runs restarted from a better one); may be a no-op.
        ``key`` is the validation's own PRNG key, for any randomness it needs."""
        ...

    def to_checkpoint(self, state: S) -> tuple[Any, dict[str, Any]]:
        """(a pytree of arrays, JSON metadata) that :meth:`from_checkpoint` restores exactly."""
        ...

    def checkpoint_template(self, meta: dict[str, Any]) -> Any:
        """A pytree of the checkpoint's structure, shapes and dtypes (to load it against)."""
        ...

    def from_checkpoint(self, tree: Any, meta: dict[str, Any]) -> S:
        """The state saved by :meth:`to_checkpoint`."""
        ...

    def summary(self, state: S) -> dict[str, Any]:
        """Counters for the end-of-run report (skipped updates, diverged candidates...)."""
        ...
