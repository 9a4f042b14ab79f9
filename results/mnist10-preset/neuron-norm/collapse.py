"""Why does a neuron-normalised mnist10 rule fall back after step 25? (issue 10)

The genome given, and variants of it, on the same 6 fixed tasks per family at 28x28 (2,000
test queries each), 100 steps: query accuracy, the RMS of the forward synapses and the
cross-entropy on each step's own batch before its update, after steps 10, 25, 50 and 100.
Variants: the Hebbian rate eta~ halved; the keep gate f~ set to 1; Oja's term off; the
output layer's forward-normalisation scale times 0.7, 2 and 4 (a logit temperature).

    PYTHONPATH=src .venv/bin/python results/mnist10-preset/neuron-norm/collapse.py GENOME
"""

import dataclasses
import sys

import jax
import jax.numpy as jnp
import numpy as np

from blur.experiments.config import build_family
from blur.experiments.evaluation import sample_tasks
from blur.inner import unroll
from blur.io.genome_file import load_genome_file
from blur.network import init_state
from blur.tasks.base import Batch

rule = load_genome_file(sys.argv[1])
g0 = rule.genome


def out_scale(k: float):  # noqa: ANN201
    return dataclasses.replace(g0, fwd_norm_scale=g0.fwd_norm_scale.at[-1].multiply(k))


VARIANTS = {
    "as trained": g0,
    "eta~ x0.5": dataclasses.replace(g0, eta_tilde=g0.eta_tilde * 0.5),
    "f~ = 1": dataclasses.replace(g0, f_tilde=jnp.ones_like(g0.f_tilde)),
    "oja off": dataclasses.replace(g0, oja=g0.oja * 0),
    "out x0.7": out_scale(0.7),
    "out x2": out_scale(2.0),
    "out x4": out_scale(4.0),
}


def run(genome, spec, tasks, keys):  # noqa: ANN001, ANN201
    def one(s, q, key):  # noqa: ANN001, ANN202
        state = init_state(key, genome, spec, s.x.shape[1])
        _, m = unroll(genome, spec, state, s, query=Batch(x=q.x[None], y=q.y[None]))
        return m.query_accuracy, m.synapse_norm, m.loss

    return jax.jit(jax.vmap(one))(tasks.support, tasks.query, keys)


STEPS = (10, 25, 50, 100)
print("family         variant      query acc % @10/25/50/100     synapse RMS             loss")
for text in ("mnist?query_split=test", "fashion_mnist?query_split=test"):
    family = build_family(text)
    spec = rule.network.spec_for(family)
    tasks = sample_tasks(family, jax.random.PRNGKey(11), 6, 100, 128, 2000)
    keys = jax.random.split(jax.random.PRNGKey(12), 6)
    for name, genome in VARIANTS.items():
        acc, rms, loss = (np.asarray(v).mean(0) for v in run(genome, spec, tasks, keys))
        print(f"{text.split('?')[0]:14s} {name:11s} "
              + " ".join(f"{100 * acc[s - 1]:5.1f}" for s in STEPS) + "   "
              + " ".join(f"{rms[s - 1]:.3f}" for s in STEPS) + "   "
              + " ".join(f"{loss[s - 1]:.2f}" for s in STEPS), flush=True)
