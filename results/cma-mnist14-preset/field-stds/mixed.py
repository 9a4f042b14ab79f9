import sys, jax, jax.numpy as jnp, numpy as np
from blur.experiments.config import get_preset
from blur.experiments import runs
from blur.experiments.loop import make_trainer
from blur.outer.evolution import score_population, fitness_from_aux
cfg = get_preset("cma-mnist14")
g0 = runs.initial_genome(cfg, 2, jax.random.fold_in(jax.random.PRNGKey(0), 0))
tr = make_trainer(cfg, g0)
D = len(tr.x0)
g = tr.unravel(jnp.asarray(np.arange(D) + 0.0, jnp.float32))
names = {}
for f in ("nu","mu","nu_tilde","mu_tilde","f","eta","f_tilde","eta_tilde","fwd_norm_shift","fwd_norm_scale","bwd_norm_shift","bwd_norm_scale"):
    for v in np.unique(np.asarray(getattr(g, f)).ravel()):
        names.setdefault(int(v), f)
rng = np.random.default_rng(0)
for spec in sys.argv[1:]:
    stds = np.full(D, 0.3)
    for part in spec.split(","):
        f, s = part.split("=")
        stds[[i for i, n in names.items() if n == f]] = float(s)
    fits = []
    for k in range(2):
        X = tr.x0 + stds * rng.standard_normal((80, D))
        aux = score_population(jnp.asarray(X, jnp.float32), jax.random.PRNGKey(100 + k), unravel=tr.unravel,
            spec=tr.spec, family=tr.family, cfg=tr.objective, fresh_init=True, chunk_size=8)
        fits.append(fitness_from_aux(aux, "accuracy"))
    fit = np.concatenate(fits)
    print(f"{spec:40s} mean {fit.mean():.3f} frac>0.2 {(fit>0.2).mean():.2f} frac>0.4 {(fit>0.4).mean():.2f} q90 {np.quantile(fit,0.9):.3f}", flush=True)
