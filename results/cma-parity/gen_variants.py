"""Time score_population variants of this branch in one process (interleaved, median of N).
Usage: PYTHONPATH=src python gen_variants.py SPEC N CHUNK[,CHUNK...] [fresh]"""
import json
import sys
import time

import jax
import numpy as np

from blur.genome import RULE_FIELDS, STATE_FIELDS, delta_genome, genome_subspace, init_genome
from blur.network import NetworkSpec
from blur.outer.evolution import score_population
from blur.outer.objective import ObjectiveConfig
from blur.tasks import get_family

which, n = sys.argv[1], int(sys.argv[2])
chunks = [None if c == "none" else int(c) for c in sys.argv[3].split(",")]
fresh = len(sys.argv) > 4 and sys.argv[4] == "fresh"
family = get_family("mnist", resolution=14)
if which == "preset":
    spec = NetworkSpec((196, 512, 10), 2, "relu_tanh", "tanh", "linear", "additive", True, True,
                       "forward", ("oja",), True, True, "mean", "label", True, False, 1.0)
    genome = delta_genome(2, None, eta_tilde=10.0, init_scale=1.0)
else:
    spec = NetworkSpec((196, 512, 10), 2, "relu_tanh", "relu_tanh", "tanh", "additive", True,
                       False, "both", (), True, True, "mean", "label", False, True, None)
    genome = init_genome("calibration_delta", None, 2, 2)
x0, unravel = genome_subspace(genome, RULE_FIELDS + STATE_FIELDS,
                              RULE_FIELDS if genome.num_layers else ())
cfg = ObjectiveConfig(num_steps=15, batch_size=128, num_query_batches=20, num_tasks=1)
rng = np.random.default_rng(0)
key = jax.random.PRNGKey(0)
times = {c: [] for c in chunks}
res = {}
for g in range(n + 1):
    X = (np.asarray(x0)[None] + 0.3 * rng.standard_normal((80, x0.size))).astype(np.float32)
    for c in chunks:
        t0 = time.perf_counter()
        aux = score_population(X, jax.random.fold_in(key, g), unravel=unravel, spec=spec,
                               family=family, cfg=cfg, fresh_init=fresh, chunk_size=c)
        acc = np.asarray(aux.accuracy)
        times[c].append(time.perf_counter() - t0)
        res[c] = acc
for c in chunks:
    print(json.dumps({"spec": which, "fresh": fresh, "chunk": c, "compile": round(times[c][0], 1),
                      "median": round(float(np.median(times[c][1:])), 2),
                      "gens": [round(t, 2) for t in times[c][1:]],
                      "acc_mean": float(acc.mean()),
                      "same_as_first": bool(np.allclose(res[c], res[chunks[0]], atol=1e-6))}))
