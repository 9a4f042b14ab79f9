"""`blur bench`'s sections build and run what they time (a regression: the mnist10 and
evolution sections called objective-config members that no longer exist, and nothing ran
them, so `blur bench` crashed at its third section)."""

from __future__ import annotations

import jax
import numpy as np

from blur import bench
from blur.experiments.config import get_preset


def test_mnist10_and_evolution_sections_build_and_run():
    fn, _ = bench.mnist10_fn(2)  # one meta-step of the mnist10 preset at T = 2
    _, metrics = jax.block_until_ready(fn())
    assert np.asarray(metrics.loss).shape == (get_preset("mnist10").gradient.num_runs,)
    generation, _, T = bench.evolution_fn(4)  # one cma-mnist14 generation of 4 candidates
    fitness = generation()
    assert fitness.shape == (4,) and T == get_preset("cma-mnist14").objective.num_steps == 15
