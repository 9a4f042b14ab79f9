"""A logit scale chosen on MNIST validation, for a meta-trained mnist10 rule (issue 10).

The rule's output layer has a forward-normalisation scale (the logits' spread). Scaling it by
0.7 after meta-training held a T <= 20 rule's accuracy past its horizon
(``collapse.txt``, "out x0.7"). Here the scale is *chosen on validation only*:

1. Scales S in (1.0, 0.85, 0.7, 0.5) of the output layer's ``fwd_norm_scale``, each on the
   same 10 tasks of 28x28 MNIST validation images (``mnist?split=val``, carved from the
   training split, what the preset meta-validates on), 100 steps of 128, 2,000 queries.
   The rule, fixed before running: the S with the highest mean query accuracy over
   steps 50 and 100. Fashion-MNIST takes no part in the choice.
2. The rule as trained and with the chosen S, against tuned SGD, on the very tasks of the
   run's own final table (its config's evaluation settings and key), so the "as trained"
   rows repeat the run's table and the paired differences are comparable.

    PYTHONPATH=src .venv/bin/python results/mnist10-preset/neuron-norm/logit_scale_val.py RUN_DIR
"""

import dataclasses
import json
import sys
from pathlib import Path

import jax
import numpy as np

from blur.experiments.config import build_family, config_from_json
from blur.experiments.evaluation import Contender, evaluate_report, genome_curves, sample_tasks
from blur.io.genome_file import load_genome_file

SCALES = (1.0, 0.85, 0.7, 0.5)
SELECT_STEPS = (50, 100)

run_dir = Path(sys.argv[1])
config = config_from_json((run_dir / "config.json").read_text())
rule = load_genome_file(run_dir / "genome.json")
g0 = rule.genome
network = config.network  # as in the run's final evaluation


def out_scale(k: float):  # noqa: ANN201
    return dataclasses.replace(g0, fwd_norm_scale=g0.fwd_norm_scale.at[-1].multiply(k))


family = build_family("mnist?split=val")
spec = network.spec_for(family)
tasks = sample_tasks(family, jax.random.PRNGKey(21), 10, 100, 128, 2000)
keys = jax.random.split(jax.random.PRNGKey(22), 10)
print(f"{run_dir}: MNIST validation, query accuracy % after 10/25/50/100 steps (10 tasks)")
score = {}
for s in SCALES:
    curves = np.asarray(
        jax.jit(genome_curves, static_argnums=1)(out_scale(s), spec, tasks.support,
                                                 tasks.query, keys)
    ).mean(0)
    score[s] = float(np.mean([curves[t] for t in SELECT_STEPS]))
    print(f"  S = {s:4.2f}: " + " ".join(f"{100 * curves[t]:5.1f}" for t in (10, 25, 50, 100))
          + f"   mean@{SELECT_STEPS} {100 * score[s]:5.1f}", flush=True)
best = max(SCALES, key=lambda s: score[s])
print(f"chosen on validation: S = {best}")

report = evaluate_report(
    [Contender("as trained", g0, network), Contender(f"S={best}", out_scale(best), network)],
    config.tasks.evaluation_families(),
    config.evaluation,
    jax.random.fold_in(jax.random.PRNGKey(config.seed), 777),
    ("sgd",),
)
print(report.table)
(run_dir / "logit_scale_val.json").write_text(
    json.dumps({"scores": {str(k): v for k, v in score.items()}, "chosen": best}, indent=1)
)
