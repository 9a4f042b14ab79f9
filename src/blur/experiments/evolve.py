"""``blur evolve``: CMA-ES meta-training (paper §4.4), resumable.

A thin adapter over the run loop (:func:`blur.experiments.loop.run`) with ``method="cma"``.
Fitness is maximised (query accuracy by default, or minus the meta-loss); a non-finite inner
loop scores the worst fitness. Each generation's tasks come from ``fold_in(seed key,
generation)`` and are shared by the whole population (common random numbers). Checkpoints hold
the told fitness history; resuming replays it through CMA-ES, which rebuilds the exact state.
"""

from __future__ import annotations

import dataclasses

from blur.experiments.config import RunConfig
from blur.experiments.loop import RunResult, run


def evolve(
    config: RunConfig,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    evaluate: bool = True,
) -> RunResult:
    """Run (or resume) CMA-ES meta-training as configured (see :func:`loop.run`)."""
    config = dataclasses.replace(config, method="cma")
    return run(config, resume=resume, stop_after=stop_after, evaluate_at_end=evaluate)
