"""What did meta-training on MNIST change on Fashion-MNIST? (issue 10)

Scores a run's starting genome (its config's ``genome_init``, meta-step 0) and its selected
genome (BLUR only) on the same 10 fixed tasks per family at 28x28, 2,000 test queries each:

    PYTHONPATH=src .venv/bin/python results/mnist10-preset/step-size/init_vs_trained.py RUN_DIR
"""
import sys
from pathlib import Path

import jax
import numpy as np

from blur.experiments.config import build_family, config_from_json
from blur.experiments.evaluation import genome_curves, sample_tasks
from blur.experiments.runs import initial_genome
from blur.io.genome_file import load_genome_file

rule = load_genome_file(sys.argv[1] + "/genome.json")
cfg = config_from_json(Path(sys.argv[1], "config.json").read_text())
init = initial_genome(cfg, len(cfg.network.hidden) + 1, jax.random.PRNGKey(0))
print("family          genome    step 5  10  25  50")
for text in ("fashion_mnist?query_split=test", "mnist?query_split=test"):
    family = build_family(text)
    spec = rule.network.spec_for(family)
    tasks = sample_tasks(family, jax.random.PRNGKey(11), 10, 50, 128, 2000)
    keys = jax.random.split(jax.random.PRNGKey(12), 10)
    for name, g in (("init", init), ("trained", rule.genome)):
        c = 100 * np.asarray(genome_curves(g, spec, tasks.support, tasks.query, keys)).mean(0)
        row = " ".join(f"{c[s]:5.1f}" for s in (5, 10, 25, 50))
        print(f"{text.split('?')[0]:14s} {name:8s} {row}", flush=True)
