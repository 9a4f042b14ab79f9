"""Score initial genomes (no meta-training) on the held-out toy group at steps 10/25/50."""
import dataclasses
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from blur.experiments.evaluate import blur_curve, sample_eval_episodes

from blur.experiments import runs
from blur.experiments.config import build_family, get_preset


def score(config, seed=0, num_tasks=16):
    fams = [build_family(t) for t in config.tasks.validate]
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 777)
    spec = config.network.spec_for(fams[0])
    g = runs.initial_genome(config, spec.num_layers, jax.random.fold_in(jax.random.PRNGKey(seed), 0))
    rows = []
    for fam in fams:
        spec = config.network.spec_for(fam)
        ep = sample_eval_episodes(fam, key, num_tasks, 50, 128, 1000)
        ks = jax.random.split(jax.random.fold_in(key, 1), num_tasks)
        acc = jax.vmap(lambda s, q, k: blur_curve(g, spec, s, q, k))(ep.support, ep.query, ks)
        rows.append(np.asarray(jnp.mean(acc, 0)))
    m = np.mean(rows, 0)
    return m, rows

base = get_preset("toy2d")
def cfg(**kw):
    net = {k[4:]: v for k, v in kw.items() if k.startswith("net_")}
    top = {k: v for k, v in kw.items() if not k.startswith("net_")}
    return dataclasses.replace(base, network=dataclasses.replace(base.network, **net), **top)

if __name__ == "__main__":
    grid = eval(sys.argv[1])  # list of dicts
    for kw in grid:
        t = time.time()
        try:
            m, rows = score(cfg(**kw))
            print(f"{kw}: 10/25/50 = {100*m[10]:.1f} / {100*m[25]:.1f} / {100*m[50]:.1f}   "
                  f"per-task@10 " + " ".join(f"{100*r[10]:.0f}" for r in rows) + f"  ({time.time()-t:.0f}s)", flush=True)
        except Exception as e:
            print(kw, "ERR", e, flush=True)
