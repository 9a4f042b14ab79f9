"""Evaluate a CMA mean genome of run_cma.py on fresh tasks, next to tuned SGD.

Two protocols, both with >= 10 fresh tasks, BLUR and tuned SGD on the same batches and inits:
  A "blur-evaluate": blur.experiments.evaluation.evaluate on mnist?split=test&resolution=14
     (support and query drawn from the test split's two pools, --query examples), as
     `blur evaluate` does, with paired 95% intervals against oracle-tuned SGD;
  B "full-test": support batches from the TRAIN split's support pool, query = the whole 10,000
     image MNIST 14x14 test set (BLUR only, at the report steps).
Tuned SGD is the best learning rate of the grid at each step (an oracle). Nothing is selected.

Usage: PYTHONPATH=src python eval_cma.py RUN_DIR GEN [--tasks 10] [--seed 1234] [--steps 75]
"""

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from blur.experiments.evaluation import Contender, evaluate, format_table, sample_tasks, summarize
from blur.genome import RULE_FIELDS, STATE_FIELDS, genome_subspace, genome_to_dict, init_genome
from blur.inner import accuracy, predict, unroll
from blur.network import NetworkConfig, NetworkSpec, init_state
from blur.tasks import get_family
from blur.tasks.base import Batch
from blur.tasks.images import load_split

p = argparse.ArgumentParser()
p.add_argument("run")
p.add_argument("gen")
p.add_argument("--tasks", type=int, default=10)
p.add_argument("--seed", type=int, default=1234)
p.add_argument("--steps", type=int, default=75)
p.add_argument("--query", type=int, default=1000)
args = p.parse_args()
run = Path(args.run)
settings = json.loads((run / "settings.json").read_text())
spec = eval(settings["spec"], {"NetworkSpec": NetworkSpec})  # noqa: S307 (our own repr)
L = spec.num_layers if spec.per_layer_genome else None
genome0 = init_genome("calibration_delta", None, 2, L)
fields = None if settings["argv"]["all_fields"] else RULE_FIELDS + STATE_FIELDS
shared = tuple(settings["shared_fields"])
_, unravel = genome_subspace(genome0, fields, shared)
means = np.load(run / "means.npz")
genome = unravel(jnp.asarray(means[args.gen], jnp.float32))
(run / f"genome_gen{args.gen}.json").write_text(json.dumps(genome_to_dict(genome)))
key = jax.random.PRNGKey(args.seed)
T, N = args.steps, args.tasks
report = (10, 15, 25, 50, 75)

out = {"run": str(run), "gen": args.gen, "tasks": N, "seed": args.seed}
# A: the project's evaluation path (blur.experiments.evaluation.evaluate: same batches, same
# inits, oracle-tuned SGD, paired 95% intervals)
network = NetworkConfig(**{f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)
                           if f.name != "layer_sizes"}, hidden=spec.layer_sizes[1:-1])
contender = Contender("blur", genome, network)
fam_test = get_family("mnist", split="test", resolution=14)
res = evaluate([contender], [fam_test], key, num_steps=T, num_tasks=N, batch_size=128,
               query_size=args.query, baselines=("sgd",))
steps = [t for t in report if t <= T]
rows = summarize(res, steps)
curve = res[0].genomes["blur"].mean(0)
out["A"] = {"rows": rows, "blur_curve": curve.tolist(),
            "sgd_curve": res[0].baselines["sgd"].oracle()[0].mean(0).tolist()}
print(format_table(rows))
print(f"protocol A: BLUR mean curve min over steps 15..{T}: {100 * curve[15:].min():.1f}, "
      f"over 1..{T}: {100 * curve[1:].min():.1f}")
(run / f"eval_gen{args.gen}_seed{args.seed}.json").write_text(json.dumps(out))
# B: train-split support, the whole 10,000-image test set as query, BLUR only, scored at the
# report steps (scoring 10,000 images after every step for the SGD grid is beyond this CPU)
fam_train = get_family("mnist", resolution=14)
kb = jax.random.fold_in(key, 2)
eb = sample_tasks(fam_train, kb, N, T, 128, 1)
xt, yt = load_split("mnist", "test", resolution=14)
xt, yt = jnp.asarray(xt), jnp.asarray(yt)
ikb = jax.random.split(jax.random.fold_in(kb, 1), N)
points = tuple(t for t in report if t <= T)


@jax.jit
def at_points(support: Batch, k: jax.Array, xt: jax.Array, yt: jax.Array) -> jax.Array:
    state = init_state(k, genome, spec, 128)
    accs, start = [], 0
    for stop in points:
        seg = jax.tree_util.tree_map(lambda a, i=start, j=stop: a[i:j], support)
        state, _ = unroll(genome, spec, state, seg)
        accs.append(accuracy(predict(genome, spec, state, xt), yt))
        start = stop
    return jnp.stack(accs)


per_b = np.stack([np.asarray(at_points(jax.tree_util.tree_map(lambda a, i=i: a[i], eb.support),
                                       ikb[i], xt, yt)) for i in range(N)])
out["B"] = {"steps": list(points), "blur": per_b.mean(0).tolist(),
            "blur_sem": (per_b.std(0, ddof=1) / np.sqrt(N)).tolist()}
(run / f"eval_gen{args.gen}_seed{args.seed}.json").write_text(json.dumps(out))
r = out["B"]
print(f"protocol B ({N} tasks, full test set): " + ", ".join(
    f"{t}: {100 * a:.1f} ± {100 * e:.1f}" for t, a, e in zip(r["steps"], r["blur"],
                                                              r["blur_sem"], strict=True)))
