import sys, dataclasses, jax, jax.numpy as jnp, numpy as np
from blur.experiments.config import get_preset
from blur.experiments import runs
from blur.experiments.loop import make_trainer
from blur.outer.evolution import score_population, fitness_from_aux
cfg = get_preset("cma-mnist14")
sig = float(sys.argv[1])
g0 = runs.initial_genome(cfg, 2, jax.random.fold_in(jax.random.PRNGKey(0), 0))
tr = make_trainer(cfg, g0)
D = len(tr.x0)
g = tr.unravel(jnp.asarray(np.arange(D) + 0.0, jnp.float32))
names = {}
for f in ("nu","mu","nu_tilde","mu_tilde","f","eta","f_tilde","eta_tilde","fwd_norm_shift","fwd_norm_scale","bwd_norm_shift","bwd_norm_scale"):
    for v in np.unique(np.asarray(getattr(g, f)).ravel()):
        names.setdefault(int(v), f)
rng = np.random.default_rng(0)
for f in dict.fromkeys(names.values()):
    idx = np.array([i for i, n in names.items() if n == f])
    X = np.tile(tr.x0, (80, 1))
    X[:, idx] += sig * rng.standard_normal((80, len(idx)))
    aux = score_population(jnp.asarray(X, jnp.float32), jax.random.PRNGKey(100), unravel=tr.unravel,
        spec=tr.spec, family=tr.family, cfg=tr.objective, fresh_init=True, chunk_size=8)
    fit = fitness_from_aux(aux, "accuracy")
    print(f"{f:15s} n={len(idx):2d} mean {fit.mean():.3f} frac>0.2 {(fit>0.2).mean():.2f} q90 {np.quantile(fit,0.9):.3f}", flush=True)
