"""How much does query accuracy jump from one inner step to the next? (issue 10)

Mean over tasks of |acc[t+1] - acc[t]| (points) for t in 30..59, from a run's ``eval.json``
(per-step curves of the 10 evaluation tasks per family), for the rule and for oracle-tuned
SGD (its per-step best rate, so its curve may switch rates between steps).

    .venv/bin/python results/mnist10-preset/neuron-norm/jitter.py RUN_DIR/eval.json ...
"""

import json
import sys

import numpy as np


def jitter(curves: np.ndarray) -> float:
    return float(np.abs(np.diff(curves[:, 30:61], axis=1)).mean())


for path in sys.argv[1:]:
    data = json.load(open(path))
    for fam in data["families"]:
        blur = np.asarray(fam["genomes"]["BLUR"]) * 100
        sgd = np.asarray(fam["baselines"]["sgd"]["oracle"]) * 100
        print(f"{path}  {fam['family'].split('[')[0]:14s} BLUR {jitter(blur):.2f}  "
              f"SGD (oracle) {jitter(sgd):.2f}")
