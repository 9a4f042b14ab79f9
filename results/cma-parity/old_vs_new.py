"""Seconds per CMA-ES generation: /work/main's `blur evolve --preset cma-mnist14` generation
(its make_trainer + trainer.step, i.e. ask, score_population, tell) against this branch's
proposed setting, in ONE process, interleaved (old, new, old, new, ...), medians after one
warm-up (compile) generation each.

The old code is a copy of /work/main/src/blur renamed to blur_old (imports rewritten), put on
the path by PYTHONPATH=/tmp/cma_oldblur:src.
Usage: old_vs_new.py N CHUNK [CHUNK ...]   (CHUNK 0: no chunking)
"""
import json
import sys
import time

import blur_old.experiments.config as oc
import blur_old.experiments.loop as oloop
import blur_old.experiments.runs as oruns
import jax
import numpy as np

from blur.genome import RULE_FIELDS, STATE_FIELDS, init_genome
from blur.network import NetworkSpec
from blur.outer.evolution import CMAConfig, EvolutionTrainer
from blur.outer.objective import ObjectiveConfig
from blur.tasks import get_family

n = int(sys.argv[1])
chunks = [int(c) or None for c in sys.argv[2:]]

config = oc.get_preset("cma-mnist14")
ofam = oc.build_train_family(config.tasks)
ospec = config.network.spec_for(ofam)
og0 = oruns.initial_genome(config, ospec.num_layers, jax.random.fold_in(jax.random.PRNGKey(0), 0))
old = oloop.make_trainer(config, og0)

family = get_family("mnist", resolution=14)
spec = NetworkSpec((196, 512, 10), num_states=2, forward_activation="relu_tanh",
                   backward_activation="relu_tanh", last_activation="tanh",
                   backward_update="additive", symmetric_synapses=True,
                   single_state_synapses=False, neuron_norm="both", synapse_stabiliser=(),
                   reset_neurons=True, bias=True, hebbian_reduce="mean", feedback="label",
                   fan_in_scaling=False, per_layer_genome=True, synapse_keep_max=None)
obj = ObjectiveConfig(num_steps=15, batch_size=128, num_query_batches=20, num_tasks=1)
new = {c: EvolutionTrainer(
    genome=init_genome("calibration_delta", None, 2, 2), spec=spec, family=family,
    objective=obj,
    cma=CMAConfig(popsize=80, sigma0=0.3, search_fields=RULE_FIELDS + STATE_FIELDS,
                  shared_fields=RULE_FIELDS, fresh_init=True, chunk_size=c)) for c in chunks}
trainers = {"old": old, **{f"new_chunk{c}": t for c, t in new.items()}}
states = {k: t.init() for k, t in trainers.items()}
times = {k: [] for k in trainers}
key = jax.random.PRNGKey(1)
for g in range(n + 1):
    for k, t in trainers.items():
        t0 = time.perf_counter()
        states[k], _ = t.step(states[k], g, jax.random.fold_in(key, g))
        times[k].append(time.perf_counter() - t0)
    print(json.dumps({k: round(v[-1], 2) for k, v in times.items()}), flush=True)
med = {k: float(np.median(v[1:])) for k, v in times.items()}
ratios = {k: [round(a / b, 2) for a, b in zip(times["old"][1:], v[1:], strict=True)]
          for k, v in times.items() if k != "old"}
print(json.dumps({"median_s": {k: round(v, 2) for k, v in med.items()},
                  "compile_gen_s": {k: round(v[0], 1) for k, v in times.items()},
                  "per_pair_speedup_old_over_new": ratios}))
