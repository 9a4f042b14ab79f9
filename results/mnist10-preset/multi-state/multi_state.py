"""Can the mnist10 preset use multi-state synapses? Cost and starting point (issue 10).

Multi-state synapses (``network.single_state_synapses=false``) give each synapse K channels,
more memory across steps than the preset's one. For the preset with single- and multi-state
synapses this prints the median time of one ``gradient.meta_step`` at T = 10 (5 calls after
one warm-up; the preset's runs, tasks and optimiser, built by ``blur.bench.mnist10_setup``)
and what the preset's starting genome reaches on 5 Fashion-MNIST tasks at 28x28 (2,000 test
queries each) after 10 and 25 steps:

    PYTHONPATH=src .venv/bin/python results/mnist10-preset/multi-state/multi_state.py
"""

import dataclasses
import statistics
import time
from functools import partial

import jax
import numpy as np

from blur import bench
from blur.experiments.config import build_family, get_preset
from blur.experiments.evaluation import genome_curves, sample_tasks
from blur.outer import gradient

for single in (True, False):
    config = get_preset("mnist10")
    network = dataclasses.replace(config.network, single_state_synapses=single)
    config = dataclasses.replace(config, network=network)
    m = bench.mnist10_setup(10, config)
    step = partial(gradient.meta_step, spec=m.spec, family=m.family, cfg=m.cfg,
                   optimizer=m.optimizer)
    jax.block_until_ready(step(m.state, m.key))
    times = []
    for i in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(step(m.state, jax.random.PRNGKey(i)))
        times.append(time.perf_counter() - t0)
    g0 = jax.tree_util.tree_map(lambda x: x[0], m.genomes)
    fashion = build_family("fashion_mnist?query_split=test")
    tasks = sample_tasks(fashion, jax.random.PRNGKey(11), 5, 25, 128, 2000)
    keys = jax.random.split(jax.random.PRNGKey(12), 5)
    c = 100 * np.asarray(
        genome_curves(g0, config.network.spec_for(fashion), tasks.support, tasks.query, keys)
    ).mean(0)
    print(f"single_state_synapses={single}: meta-step T=10 {statistics.median(times):.3f} s; "
          f"starting genome on Fashion-MNIST: {c[10]:.1f} % at step 10, {c[25]:.1f} % at 25",
          flush=True)
