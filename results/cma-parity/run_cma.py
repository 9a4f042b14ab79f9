"""CMA-ES meta-training in calibration.md's prototype setting, through blur's library.

Writes OUT/log.jsonl (one line per generation), OUT/means.npz (the CMA mean every 10
generations) and OUT/history.npz (told values, for CMAES.replay). Resumes from history.npz.
No selection on anything: the genome reported is the CMA mean at the last generation.

Usage: PYTHONPATH=src python run_cma.py OUT [--gens 100] [--shared-init] [--all-fields]
       [--shared-genome] [--sigma0 0.3] [--seed 0] [--chunk N]
"""

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from blur.genome import RULE_FIELDS, STATE_FIELDS, genome_subspace, init_genome
from blur.network import NetworkSpec
from blur.outer.evolution import CMAES, CMAConfig, fitness_from_aux, score_population
from blur.outer.objective import ObjectiveConfig
from blur.tasks import get_family

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--gens", type=int, default=100)
p.add_argument("--shared-init", action="store_true", help="one synapse init per generation")
p.add_argument("--all-fields", action="store_true", help="search every genome field")
p.add_argument("--shared-genome", action="store_true", help="one genome for both layers")
p.add_argument("--sigma0", type=float, default=0.3)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--chunk", type=int, default=0)
args = p.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

L = None if args.shared_genome else 2
spec = NetworkSpec(
    (196, 512, 10), num_states=2, forward_activation="relu_tanh",
    backward_activation="relu_tanh", last_activation="tanh", backward_update="additive",
    symmetric_synapses=True, single_state_synapses=False, neuron_norm="both",
    synapse_stabiliser=(), reset_neurons=True, bias=True, hebbian_reduce="mean",
    feedback="label", fan_in_scaling=False, per_layer_genome=L is not None,
    synapse_keep_max=None,
)
genome0 = init_genome("calibration_delta", None, 2, L)
fields = None if args.all_fields else RULE_FIELDS + STATE_FIELDS
shared = RULE_FIELDS if (L is not None and not args.all_fields) else ()
x0, unravel = genome_subspace(genome0, fields, shared)
x0 = np.asarray(x0, np.float64)
cma_cfg = CMAConfig(popsize=80, sigma0=args.sigma0, seed=args.seed)
cfg = ObjectiveConfig(num_steps=15, batch_size=128, num_query_batches=20, num_tasks=1)
family = get_family("mnist", resolution=14)  # train split; fitness on its held-out query pool
gen_key = jax.random.fold_in(jax.random.PRNGKey(args.seed), 1)
chunk = args.chunk or None

hist_path = out / "history.npz"
if hist_path.exists():
    h = np.load(hist_path)
    es = CMAES.replay(x0, cma_cfg, [h[k] for k in sorted(h.files, key=int)])
    means = dict(np.load(out / "means.npz"))
else:
    es = CMAES(x0, cma_cfg)
    means = {"0": es.mean.copy()}
    (out / "settings.json").write_text(json.dumps({
        "argv": vars(args), "spec": repr(spec), "fields": unravel.fields,
        "shared_fields": unravel.shared_fields, "dim": unravel.dim,
        "cma": repr(cma_cfg), "objective": repr(cfg), "genome0": x0.tolist()}, indent=1))
t_start = time.time()
with open(out / "log.jsonl", "a") as log:
    for gen in range(es.generation, args.gens):
        t0 = time.perf_counter()
        X = es.ask()
        aux = score_population(X.astype(np.float32), jax.random.fold_in(gen_key, gen),
                               unravel=unravel, spec=spec, family=family, cfg=cfg,
                               fresh_init=not args.shared_init, chunk_size=chunk)
        fit = fitness_from_aux(aux, "accuracy")
        es.tell(X, -fit)
        dt = time.perf_counter() - t0
        ok = fit[np.isfinite(fit)]
        rec = {"gen": gen, "best": float(ok.max()) if ok.size else None,
               "mean": float(ok.mean()) if ok.size else None, "median": float(np.median(ok)),
               "diverged": int(np.sum(~np.isfinite(fit))), "sigma": es.sigma,
               "seconds": round(dt, 2)}
        log.write(json.dumps(rec) + "\n")
        log.flush()
        done = gen + 1
        if done % 10 == 0 or done == args.gens:
            means[str(done)] = es.mean.copy()
            np.savez(out / "means.npz", **means)
            np.savez(hist_path, **{str(i): v for i, v in enumerate(es.history)})
print("done", es.generation, "generations in", round(time.time() - t_start), "s")
