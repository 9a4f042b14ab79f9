"""Time one CMA-ES generation (population 80, 196-512-10, K=2, 15 + 20 batches of 128).

Run with PYTHONPATH pointing at the blur sources to time (main or this branch). Prints one
JSON line with the per-generation seconds of N generations after a warm-up (compile) one.
Usage: PYTHONPATH=SRC python gen_time.py LABEL N [spec]   spec: preset | proto
"""

import inspect
import json
import sys
import time

import jax
import numpy as np

from blur.genome import delta_genome, ravel_genome
from blur.network import NetworkSpec
from blur.outer.evolution import CMAES, CMAConfig, fitness_from_aux, score_population
from blur.outer.objective import ObjectiveConfig
from blur.tasks import get_family

label, n = sys.argv[1], int(sys.argv[2])
which = sys.argv[3] if len(sys.argv) > 3 else "preset"
family = get_family("mnist", resolution=14)
if which == "preset":  # today's cma-mnist14 network (experiments/config.py NetworkConfig)
    spec = NetworkSpec((196, 512, 10), 2, "relu_tanh", "tanh", "linear", "additive", True, True,
                       "forward", ("oja",), True, True, "mean", "label", True, False, 1.0)
    genome = delta_genome(2, None, eta_tilde=10.0, init_scale=1.0)
else:  # calibration.md's prototype network
    spec = NetworkSpec((196, 512, 10), 2, "relu_tanh", "relu_tanh", "tanh", "additive", True,
                       False, "both", (), True, True, "mean", "label", False, True, None)
    genome = delta_genome(2, 2)
cfg = ObjectiveConfig(num_steps=15, batch_size=128, num_query_batches=20, num_tasks=1)
x0, unravel = ravel_genome(genome)
es = CMAES(np.asarray(x0, np.float64), CMAConfig(popsize=80, sigma0=0.3))
kw = {}
if "fresh_init" in inspect.signature(score_population).parameters:
    kw = {}  # defaults of the branch
times = []
key = jax.random.PRNGKey(0)
for g in range(n + 1):
    t0 = time.perf_counter()
    X = es.ask()
    aux = score_population(X.astype(np.float32), jax.random.fold_in(key, g), unravel=unravel,
                           spec=spec, family=family, cfg=cfg, **kw)
    fit = fitness_from_aux(aux, "accuracy")
    es.tell(X, -fit)
    times.append(time.perf_counter() - t0)
print(json.dumps({"label": label, "spec": which, "compile_gen": round(times[0], 2),
                  "gens": [round(t, 2) for t in times[1:]],
                  "median": round(float(np.median(times[1:])), 2),
                  "fitness_mean": round(float(np.mean(fit)), 4)}))
