import sys, jax, jax.numpy as jnp, numpy as np
from blur.baselines import accuracy_curve
from blur.tasks.base import Batch
from blur.data import load_dataset
data = load_dataset("mnist")
xtr, ytr = data.split("train_full"); xte, yte = data.split("test")
xtr = np.asarray(xtr, np.float32).reshape(len(xtr), -1)/255.0
xte = np.asarray(xte, np.float32).reshape(len(xte), -1)/255.0
rng = np.random.default_rng(0); pick = rng.choice(len(xte), 2000, replace=False)
q = Batch(x=jnp.asarray(xte[pick]), y=jnp.asarray(yte[pick], jnp.int32))
for init in ("he_uniform", "he_lecun_normal"):
    res = {k: [] for k in [("sgd",0.5),("momentum",0.2),("adam",0.01)]}
    for seed in range(5):
        key = jax.random.key(seed)
        idx = np.asarray(jax.random.randint(jax.random.fold_in(key,1),(50,128),0,len(xtr)))
        s = Batch(x=jnp.asarray(xtr[idx]), y=jnp.asarray(ytr[idx], jnp.int32))
        for (o,lr) in res:
            res[(o,lr)].append(100*np.asarray(accuracy_curve(key,s,q,jnp.float32(lr),sizes=(784,256,10),optimizer=o,init=init)))
    for k,v in res.items():
        v=np.stack(v); print(init, k, "step10 %.2f±%.2f step50 %.2f±%.2f" % (v[:,10].mean(), v[:,10].std(ddof=1), v[:,50].mean(), v[:,50].std(ddof=1)))
