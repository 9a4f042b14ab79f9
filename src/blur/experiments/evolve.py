"""``blur evolve``: CMA-ES meta-training (paper §4.4), resumable.

A thin adapter over the run loop (:func:`blur.experiments.loop.run`) with ``method="cma"``.
Fitness is maximised (query accuracy by default, or minus the meta-loss); a non-finite inner
loop scores the worst fitness. Each generation's tasks come from ``fold_in(seed key,
generation)`` and are shared by the whole population (common random numbers). Checkpoints hold
the told fitness history; resuming replays it through CMA-ES, which rebuilds the exact state.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from blur.experiments.config import RunConfig
from blur.experiments.loop import RunResult, run


def evolve(config: RunConfig, **options: Any) -> RunResult:
    """Run (or resume) the run with ``method="cma"``; ``options`` as for :func:`loop.run`."""
    return run(dataclasses.replace(config, method="cma"), **options)
