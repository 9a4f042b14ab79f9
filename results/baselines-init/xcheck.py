"""The cross-check's protocol with both MLP inits (results/baselines-init/README.md)."""

import jax
import jax.numpy as jnp
import numpy as np

from blur.baselines import accuracy_curve
from blur.data import load_dataset
from blur.tasks.base import Batch

data = load_dataset("mnist")
xtr, ytr = data.split("train_full")
xte, yte = data.split("test")
xtr = np.asarray(xtr, np.float32).reshape(len(xtr), -1) / 255.0
xte = np.asarray(xte, np.float32).reshape(len(xte), -1) / 255.0
pick = np.random.default_rng(0).choice(len(xte), 2000, replace=False)
query = Batch(x=jnp.asarray(xte[pick]), y=jnp.asarray(yte[pick], jnp.int32))
for init in ("he_uniform", "he_lecun_normal"):
    res: dict[tuple[str, float], list[np.ndarray]] = {
        ("sgd", 0.5): [], ("momentum", 0.2): [], ("adam", 0.01): []
    }
    for seed in range(5):
        key = jax.random.key(seed)
        idx = np.asarray(jax.random.randint(jax.random.fold_in(key, 1), (50, 128), 0, len(xtr)))
        support = Batch(x=jnp.asarray(xtr[idx]), y=jnp.asarray(ytr[idx], jnp.int32))
        for opt, lr in res:
            curve = accuracy_curve(key, support, query, jnp.float32(lr), sizes=(784, 256, 10),
                                   optimizer=opt, init=init)
            res[(opt, lr)].append(100 * np.asarray(curve))
    for k, v in res.items():
        a = np.stack(v)
        print(init, k, f"step10 {a[:, 10].mean():.2f}±{a[:, 10].std(ddof=1):.2f} "
                       f"step50 {a[:, 50].mean():.2f}±{a[:, 50].std(ddof=1):.2f}")
