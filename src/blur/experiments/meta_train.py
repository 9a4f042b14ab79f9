"""``blur meta-train``: gradient meta-training of R runs side by side, resumable.

A thin adapter over the run loop (:func:`blur.experiments.loop.run`) with ``method="gradient"``.
"""

from __future__ import annotations

import dataclasses

from blur.experiments.config import RunConfig
from blur.experiments.loop import RunResult, run


def meta_train(
    config: RunConfig,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    evaluate: bool = True,
) -> RunResult:
    """Run (or resume) gradient meta-training as configured (see :func:`loop.run`)."""
    config = dataclasses.replace(config, method="gradient")
    return run(config, resume=resume, stop_after=stop_after, evaluate_at_end=evaluate)
