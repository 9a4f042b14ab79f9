"""A Hebbian-rate decay chosen on MNIST validation, for a meta-trained mnist10 rule (issue 10).

Past ~step 30 the mnist10 rule's Fashion-MNIST accuracy jumps 3-4.5 points from step to step
(``../neuron-norm/jitter.txt``) and falls behind tuned SGD past its horizon. A step size that
decays with the step count is the textbook remedy: w_{t+1} = w_t + r_t * dw_t with
r_t = 1 / (1 + d * t), where dw_t = (f~ - 1) w_t + eta~ * hebb_t is the rule's own change
(eq. 8, Oja term included). That is one step of the same rule with eta~ * r_t and
f~ = 1 - (1 - f~) * r_t. (A first try scaled eta~ alone; the keep gate f~ < 1 then shrank the
synapses at full speed: seed 0 read 50.8 and 52.1 % at step 300 on MNIST validation with
d = 0.005 and 0.01, against 80.6 % with no decay; that run's output was not kept.)

1. Decays d in D, each on the same 10 tasks of 28x28 MNIST validation images
   (``mnist?split=val``), 300 steps of 128, 2,000 queries. The rule, fixed before running: the
   d with the highest mean query accuracy over steps 10, 25, 50, 100 and 300 (the preset's
   report steps) wins. Fashion-MNIST takes no part in the choice.
2. Every d also on 10 Fashion-MNIST test tasks, printed for the record (in view, not used).

    PYTHONPATH=src .venv/bin/python results/mnist10-preset/decay/decay_val.py GENOME_JSON
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from blur.experiments.config import build_family
from blur.experiments.evaluation import sample_tasks
from blur.inner import accuracy, cf_predict, cf_step
from blur.io.genome_file import load_genome_file
from blur.network import init_state, to_channel_first

DECAYS = (0.0, 0.005, 0.01, 0.02, 0.05)
STEPS = (10, 25, 50, 100, 300)

rule = load_genome_file(sys.argv[1])
g0, network = rule.genome, rule.network


def curves(decay, spec, support, query, keys):  # noqa: ANN001, ANN201
    def one(s, q, key):  # noqa: ANN001, ANN202
        state = to_channel_first(spec, init_state(key, g0, spec, s.x.shape[1]))

        def body(st, xs):  # noqa: ANN001, ANN202
            t, batch = xs
            r = 1.0 / (1.0 + decay * t)
            g = g0.replace(eta_tilde=g0.eta_tilde * r, f_tilde=1.0 - (1.0 - g0.f_tilde) * r)
            st, _ = cf_step(g, spec, st, batch)
            return st, accuracy(cf_predict(g0, spec, st, q.x), q.y)

        _, acc = jax.lax.scan(body, state, (jnp.arange(s.x.shape[0], dtype=jnp.float32), s))
        return acc

    return jax.vmap(one)(support, query, keys)


run = jax.jit(curves, static_argnums=1)
for name, seed in (("mnist?split=val", 21), ("fashion_mnist?split=test", 31)):
    family = build_family(name)
    spec = network.spec_for(family)
    tasks = sample_tasks(family, jax.random.PRNGKey(seed), 10, max(STEPS), 128, 2000)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), 10)
    print(f"{sys.argv[1]} on {name}: query accuracy % after {STEPS} steps (10 tasks)")
    score = {}
    for d in DECAYS:
        t0 = time.time()
        c = np.asarray(run(d, spec, tasks.support, tasks.query, keys)).mean(0)
        score[d] = float(np.mean([c[t - 1] for t in STEPS]))
        print(f"  d = {d:5.3f}: " + " ".join(f"{100 * c[t - 1]:5.1f}" for t in STEPS)
              + f"   mean {100 * score[d]:5.1f}   ({time.time() - t0:.0f} s)", flush=True)
    if name.startswith("mnist"):
        print(f"chosen on validation: d = {max(DECAYS, key=lambda d: score[d])}", flush=True)
