"""Is the mnist10 rule's Fashion-MNIST gap a matter of input intensity? (issue 10)

Fashion-MNIST's pixels have about twice MNIST's mean. This scores a genome (BLUR only, no
baseline) on 10 fixed tasks per family at 28x28, with every pixel multiplied by S (the
family's ``max_value`` divided by S), after 10 and 25 steps:

    PYTHONPATH=src .venv/bin/python results/mnist10-preset/input-scale/input_scale.py GENOME
"""

import dataclasses
import sys

import jax
import numpy as np

from blur.experiments.config import build_family
from blur.experiments.evaluation import genome_curves, sample_tasks
from blur.io.genome_file import load_genome_file

rule = load_genome_file(sys.argv[1])
print("family         scale  step 10  step 25   (BLUR query accuracy %, 10 tasks, 2000 queries)")
for text in ("fashion_mnist?query_split=test", "mnist?query_split=test"):
    family0 = build_family(text)
    spec = rule.network.spec_for(family0)
    for scale in (0.35, 0.5, 0.7, 1.0, 1.4):
        family = dataclasses.replace(family0, max_value=family0.max_value / scale)
        tasks = sample_tasks(family, jax.random.PRNGKey(11), 10, 25, 128, 2000)
        keys = jax.random.split(jax.random.PRNGKey(12), 10)
        curves = np.asarray(genome_curves(rule.genome, spec, tasks.support, tasks.query, keys))
        print(f"{text.split('?')[0]:14s} {scale:5.2f}  {100 * curves[:, 10].mean():7.1f}"
              f"  {100 * curves[:, 25].mean():7.1f}", flush=True)
