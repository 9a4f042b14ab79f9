"""The output scale and the step-size decay scored jointly on MNIST validation (issue 10).

The preset calibrates them in turn: the scale first (with d = 0), then d with that scale. This
scores every pair with the preset's own calibration settings (``calibration.steps``
10-300, 16 tasks, key ``fold_in(seed, 5)``, the same as ``blur.experiments.loop``), from
the run's ``genome_uncalibrated.json``, to see whether a joint choice would differ. MNIST
validation only; nothing is evaluated on Fashion-MNIST here.

    PYTHONPATH=src .venv/bin/python results/mnist10-preset/decay/joint_grid.py RUN_DIR
"""

import dataclasses
import sys
import time
from pathlib import Path

import jax
import numpy as np

from blur.experiments.config import config_from_json
from blur.experiments.loop import calibrate_output_scale
from blur.io.genome_file import load_genome_file

run_dir = Path(sys.argv[1])
config = config_from_json((run_dir / "config.json").read_text())
genome = load_genome_file(run_dir / "genome_uncalibrated.json").genome
key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 5)
cal = config.calibration
print(f"{run_dir}: mean MNIST validation accuracy % after steps {cal.steps}, "
      f"{cal.num_tasks} tasks; rows d, columns output scale {cal.output_scales}")
grid = np.zeros((len(cal.hebbian_decays), len(cal.output_scales)))
for i, d in enumerate(cal.hebbian_decays):
    t0 = time.time()
    net = dataclasses.replace(config.network, hebbian_decay=d)
    _, grid[i] = calibrate_output_scale(dataclasses.replace(config, network=net), genome, key)
    print(f"  d = {d:5.3f}: " + "  ".join(f"{100 * v:5.1f}" for v in grid[i])
          + f"   ({time.time() - t0:.0f} s)", flush=True)
i, j = np.unravel_index(np.argmax(grid), grid.shape)
print(f"joint choice: d = {cal.hebbian_decays[i]}, output scale x{cal.output_scales[j]} "
      f"({100 * grid[i, j]:.1f} %)")
