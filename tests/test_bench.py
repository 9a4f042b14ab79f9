"""`blur bench`'s sections build and run what they time (a regression: the mnist10 section
called a method the objective config no longer has, and nothing ran it)."""

from __future__ import annotations

import jax
import numpy as np

from blur import bench


def test_mnist10_and_evolution_sections_build_and_run():
    fn, _ = bench.mnist10_fn(2)  # one meta-step of the mnist10 preset at T = 2
    state, metrics = jax.block_until_ready(fn())
    assert np.asarray(metrics.loss).shape == (get_runs(),)
    gen, _, T = bench.evolution_fn(4)
    fitness = gen()
    assert fitness.shape == (4,) and T == 15


def get_runs() -> int:
    from blur.experiments.config import get_preset

    return get_preset("mnist10").gradient.num_runs
