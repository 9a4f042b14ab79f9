"""Is the mnist10 rule's Fashion-MNIST gap a matter of its step size? (issue 10)

Scores a genome (BLUR only) on 10 fixed tasks per family at 28x28 (2,000 test queries each)
with its Hebbian rate eta~ (every layer) multiplied by S, after 10, 25 and 50 steps:

    PYTHONPATH=src .venv/bin/python results/mnist10-preset/step-size/eta_scale.py GENOME
"""
import dataclasses
import sys

import jax
import numpy as np

from blur.experiments.config import build_family
from blur.experiments.evaluation import genome_curves, sample_tasks
from blur.io.genome_file import load_genome_file

rule = load_genome_file(sys.argv[1])
print("eta~ per layer:", rule.genome.eta_tilde)
print("family         scale  step 10  step 25  step 50")
for text in ("fashion_mnist?query_split=test", "mnist?query_split=test"):
    family = build_family(text)
    spec = rule.network.spec_for(family)
    tasks = sample_tasks(family, jax.random.PRNGKey(11), 10, 50, 128, 2000)
    keys = jax.random.split(jax.random.PRNGKey(12), 10)
    for scale in (0.25, 0.5, 0.7, 1.0, 1.4, 2.0):
        g = dataclasses.replace(rule.genome, eta_tilde=rule.genome.eta_tilde * scale)
        curves = np.asarray(genome_curves(g, spec, tasks.support, tasks.query, keys))
        print(f"{text.split('?')[0]:14s} {scale:5.2f}  {100 * curves[:, 10].mean():7.1f}"
              f"  {100 * curves[:, 25].mean():7.1f}  {100 * curves[:, 50].mean():7.1f}", flush=True)
