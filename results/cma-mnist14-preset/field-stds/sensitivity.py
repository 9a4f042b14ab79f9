"""How fragile the cma-mnist14 start is, field by field (issue 10, results/cma-mnist14-preset).

Candidates are the preset's initial genome (the calibration delta genome) with Gaussian
perturbations of the searched values, scored as `blur evolve` scores a generation (one
task, a synapse init per candidate, accuracy after 15 steps on 20 query batches); a
candidate "learns" when that accuracy is above 20 % (chance is 10 %).

    PYTHONPATH=src .venv/bin/python results/cma-mnist14-preset/field-stds/sensitivity.py fields SIGMA
    PYTHONPATH=src .venv/bin/python results/cma-mnist14-preset/field-stds/sensitivity.py mixed SPEC...

``fields SIGMA``: 80 candidates per field, that field alone perturbed by SIGMA.
``mixed SPEC``: 160 candidates, every value perturbed by 0.3 except the fields SPEC names,
e.g. ``mu=0.15,f_tilde=0.15``.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from blur.experiments import runs
from blur.experiments.config import get_preset
from blur.experiments.loop import make_trainer
from blur.outer.evolution import fitness_from_aux, score_population

config = get_preset("cma-mnist14")
genome0 = runs.initial_genome(config, 2, jax.random.fold_in(jax.random.PRNGKey(0), 0))
trainer = make_trainer(config, genome0)
names = np.asarray(trainer.unravel.field_names())
rng = np.random.default_rng(0)


def score(X: np.ndarray, key: int) -> np.ndarray:
    aux = score_population(
        jnp.asarray(X, jnp.float32), jax.random.PRNGKey(key), unravel=trainer.unravel,
        spec=trainer.spec, family=trainer.family, cfg=trainer.objective, fresh_init=True,
        chunk_size=8,
    )
    return fitness_from_aux(aux, "accuracy")


def summary(fit: np.ndarray) -> str:
    return (f"mean {fit.mean():.3f} frac>0.2 {(fit > 0.2).mean():.2f} "
            f"frac>0.4 {(fit > 0.4).mean():.2f} q90 {np.quantile(fit, 0.9):.3f}")


mode, args = sys.argv[1], sys.argv[2:]
if mode == "fields":
    sigma = float(args[0])
    for field in dict.fromkeys(names):
        idx = np.flatnonzero(names == field)
        X = np.tile(trainer.x0, (80, 1))
        X[:, idx] += sigma * rng.standard_normal((80, idx.size))
        print(f"{field:15s} n={idx.size:2d} {summary(score(X, 100))}", flush=True)
elif mode == "mixed":
    for spec in args:
        stds = np.full(names.size, 0.3)
        for part in spec.split(","):
            field, value = part.split("=")
            stds[names == field] = float(value)
        X = trainer.x0 + stds * rng.standard_normal((160, names.size))
        fit = np.concatenate([score(X[:80], 100), score(X[80:], 101)])
        print(f"{spec:40s} {summary(fit)}", flush=True)
else:
    raise SystemExit(f"unknown mode {mode!r}: use 'fields SIGMA' or 'mixed SPEC...'")
