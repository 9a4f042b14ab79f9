"""Which neuron normalisation and starting rate for the mnist10 start? (issue 10)

The preset's starting genome (delta init, per-layer rates eta~ = 200/100/50 times S) with
``network.neuron_norm`` none, forward or both (and both with ``norm_output=False``: the
output layer's forward pass not normalised), scored (BLUR only) on the same 6 fixed tasks
per family at 28x28 (2,000 test queries each) after 5, 10 and 25 steps. It chose the starts
of the normalised runs (``neuron-norm-*-seed*/``): for ``both`` the best S on MNIST at step
10 (0.15), for ``forward`` S = 0.5, 0.6 points below the best there (0.7). Fashion-MNIST is
printed too, and it was in view when they were picked:

    PYTHONPATH=src .venv/bin/python results/mnist10-preset/neuron-norm/start_scan.py
"""

import dataclasses

import jax
import numpy as np

from blur.experiments.config import build_family, get_preset
from blur.experiments.evaluation import genome_curves, sample_tasks
from blur.experiments.runs import initial_genome

SCALES = {  # (neuron_norm, norm_output): S
    ("none", True): (0.1, 0.3, 1.0, 3.0),
    ("forward", True): (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 3.0),
    ("both", True): (0.02, 0.05, 0.1, 0.15, 0.3, 1.0, 3.0),
    ("both", False): (0.05, 0.1, 0.15, 0.3, 0.5, 1.0),
}
base = get_preset("mnist10")
families = [build_family(t) for t in ("mnist?query_split=test", "fashion_mnist?query_split=test")]
tasks = [sample_tasks(f, jax.random.PRNGKey(11), 6, 25, 128, 2000) for f in families]
keys = jax.random.split(jax.random.PRNGKey(12), 6)
print("norm     output  S      MNIST step 5 / 10 / 25   Fashion-MNIST step 5 / 10 / 25")
for (norm, output), scales in SCALES.items():
    network = dataclasses.replace(base.network, neuron_norm=norm, norm_output=output)
    for s in scales:
        rates = tuple(e * s for e in base.init_eta_tilde)
        g = initial_genome(dataclasses.replace(base, network=network, init_eta_tilde=rates), 3,
                           jax.random.PRNGKey(0))
        cols = []
        for family, t in zip(families, tasks, strict=True):
            spec = network.spec_for(family)
            c = 100 * np.asarray(genome_curves(g, spec, t.support, t.query, keys)).mean(0)
            cols.append(f"{c[5]:5.1f} {c[10]:5.1f} {c[25]:5.1f}")
        print(f"{norm:8s} {output!s:6s}  {s:<5}  {cols[0]}        {cols[1]}", flush=True)
