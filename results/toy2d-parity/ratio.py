"""Same-process, interleaved timing of one meta-step (R=4, T=10/20): today's toy2d vs the new settings."""
import dataclasses
import sys
import time

sys.path.insert(0, __import__("os").path.dirname(__file__))
import jax
import jax.numpy as jnp
import numpy as np
from initscan import cfg

from blur.experiments import runs
from blur.experiments.config import build_train_family
from blur.outer import gradient


def setup(c):
    fam = build_train_family(c.tasks); spec = c.network.spec_for(fam)
    g0 = runs.initial_genome(c, spec.num_layers, jax.random.PRNGKey(0))
    gs = jax.tree_util.tree_map(lambda x: jnp.stack([x] * 4), g0)
    opt = gradient.make_optimizer(c.gradient.learning_rate, c.gradient.clip_norm)
    st = gradient.init(gs, opt)
    return fam, spec, opt, st

old = cfg()
new = cfg(net_feedback="softmax_error", net_per_layer_genome=True, net_backward_activation="linear",
          net_synapse_stabiliser=("normalize",), init_scale=6**0.5, init_eta_tilde=(6., 40.),
          objective=dataclasses.replace(cfg().objective, score_steps=(10,)))
S = {n: setup(c) for n, c in (("today", old), ("new", new))}
C = {"today": old, "new": new}
for T in (10, 20):
    times = {"today": [], "new": []}
    for rep in range(12):
        for n in ("today", "new"):
            fam, spec, opt, st = S[n]
            oc = C[n].objective.objective(T)
            t = time.perf_counter()
            st2, m = gradient.meta_step(st, jax.random.PRNGKey(rep), spec=spec, family=fam, cfg=oc, optimizer=opt)
            jax.block_until_ready(st2.genomes)
            if rep >= 2: times[n].append(time.perf_counter() - t)
    a, b = np.median(times["today"]), np.median(times["new"])
    print(f"T={T}: today {1000*a:.0f} ms, new {1000*b:.0f} ms per meta-step (median of 10, interleaved); new/today = {b/a:.2f}")
