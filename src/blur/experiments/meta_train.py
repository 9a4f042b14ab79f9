"""``blur meta-train``: gradient meta-training of R runs side by side, resumable.

A thin adapter over the run loop (:func:`blur.experiments.loop.run`) with ``method="gradient"``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from blur.experiments.config import RunConfig
from blur.experiments.loop import RunResult, run


def meta_train(config: RunConfig, **options: Any) -> RunResult:
    """Run (or resume) the run with ``method="gradient"``; ``options`` as for :func:`loop.run`."""
    return run(dataclasses.replace(config, method="gradient"), **options)
