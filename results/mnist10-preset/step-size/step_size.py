"""Is the mnist10 rule's Fashion-MNIST gap a matter of its step size? (issue 10)

Two checks, BLUR only, on the same 10 fixed tasks per family at 28x28 (2,000 test queries
each):

* ``eta GENOME``: the genome with its Hebbian rate eta~ (every layer) multiplied by S, after
  10, 25 and 50 steps;
* ``init RUN_DIR``: the run's starting genome (its config's ``genome_init``, meta-step 0)
  beside its selected genome, after 5, 10, 25 and 50 steps.

    PYTHONPATH=src .venv/bin/python results/mnist10-preset/step-size/step_size.py eta GENOME
    PYTHONPATH=src .venv/bin/python results/mnist10-preset/step-size/step_size.py init RUN_DIR
"""

import dataclasses
import sys
from pathlib import Path

import jax
import numpy as np

from blur.experiments.config import build_family, config_from_json
from blur.experiments.evaluation import genome_curves, sample_tasks
from blur.experiments.runs import initial_genome
from blur.io.genome_file import load_genome_file

FAMILIES = ("fashion_mnist?query_split=test", "mnist?query_split=test")


def curves(genomes, network):
    """{family: [(label, mean accuracy % per step)]} for (label, genome) pairs."""
    for text in FAMILIES:
        family = build_family(text)
        spec = network.spec_for(family)
        tasks = sample_tasks(family, jax.random.PRNGKey(11), 10, 50, 128, 2000)
        keys = jax.random.split(jax.random.PRNGKey(12), 10)
        for label, g in genomes:
            c = np.asarray(genome_curves(g, spec, tasks.support, tasks.query, keys))
            yield text.split("?")[0], label, 100 * c.mean(0)


mode, path = sys.argv[1], sys.argv[2]
if mode == "eta":
    rule = load_genome_file(path)
    print("eta~ per layer:", rule.genome.eta_tilde)
    print("family         scale  step 10  step 25  step 50")
    scaled = [
        (f"{s:5.2f}", dataclasses.replace(rule.genome, eta_tilde=rule.genome.eta_tilde * s))
        for s in (0.25, 0.5, 0.7, 1.0, 1.4, 2.0)
    ]
    for fam, label, c in curves(scaled, rule.network):
        print(f"{fam:14s} {label}  {c[10]:7.1f}  {c[25]:7.1f}  {c[50]:7.1f}", flush=True)
elif mode == "init":
    rule = load_genome_file(Path(path, "genome.json"))
    cfg = config_from_json(Path(path, "config.json").read_text())
    init = initial_genome(cfg, len(cfg.network.hidden) + 1, jax.random.PRNGKey(0))
    print("family          genome    step 5  10  25  50")
    for fam, label, c in curves((("init", init), ("trained", rule.genome)), rule.network):
        row = " ".join(f"{c[s]:5.1f}" for s in (5, 10, 25, 50))
        print(f"{fam:14s} {label:8s} {row}", flush=True)
else:
    sys.exit(f"unknown mode {mode!r}: use 'eta GENOME' or 'init RUN_DIR'")
