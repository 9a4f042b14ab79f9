"""Seed 0's joint choice (``joint_grid.py``) on the run's own evaluation tasks (issue 10).

The run's uncalibrated rule with output scale S and decay d, next to the run's shipped
calibration, against tuned SGD on the tasks of the run's final table (its config's
evaluation settings and key ``fold_in(seed, 777)``), so the paired differences compare with
``../preset-decay-seed0/eval.md``. Fashion-MNIST is reported, so it is in view: this is a
record of a lead, not a selection.

    PYTHONPATH=src .venv/bin/python results/mnist10-preset/decay/joint_eval.py RUN_DIR S D
"""

import dataclasses
import sys
from pathlib import Path

import jax

from blur.experiments.config import config_from_json
from blur.experiments.evaluation import Contender, evaluate_report
from blur.genome import scale_output_logits
from blur.io.genome_file import load_genome_file

run_dir, scale, decay = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
config = config_from_json((run_dir / "config.json").read_text())
kept = load_genome_file(run_dir / "genome_uncalibrated.json").genome
shipped = load_genome_file(run_dir / "genome.json")
joint = Contender(f"x{scale:g} d={decay:g}", scale_output_logits(kept, scale),
                  dataclasses.replace(config.network, hebbian_decay=decay))
report = evaluate_report(
    [Contender("shipped", shipped.genome, shipped.network), joint],
    config.tasks.evaluation_families(),
    config.evaluation,
    jax.random.fold_in(jax.random.PRNGKey(config.seed), 777),
    ("sgd",),
)
print(report.table)
