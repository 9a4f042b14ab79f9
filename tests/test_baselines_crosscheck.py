"""blur.baselines reproduces ../shared/research/baselines.md (real MNIST; skipped without it).

baselines.md's protocol: pixel/255 inputs, a (256,) ReLU MLP, batches of 128 drawn with
replacement from the 60k training images, a fresh batch every step, constant learning rate,
test accuracy, 5 seeds. Its "single LR, best at step 50" table for MNIST 28x28, hidden (256,),
gives at steps 10 and 50 (mean ± sample std over seeds, %):

  SGD 0.5            68.84 ± 5.26   87.14 ± 4.72
  SGD+mom 0.9 0.2    77.76 ± 3.00   90.61 ± 0.46
  Adam 0.01          84.64 ± 1.38   92.22 ± 0.20

Each entry must be reproduced within its seed std or 2 points, whichever is larger. Kept cheap:
2,000 test images (not all 10,000) and 50 steps. The MLP starts from baselines.md's own init
(``init="he_lecun_normal"``: He-normal hidden, LeCun-normal output weights). blur's default
(He-uniform in every layer, the BLUR network's distribution) gave momentum 0.2 at step 10
81.57% (3.8 points above baselines.md, outside its seed std); with baselines.md's init it gives
80.03% (measured 2026-11-29 with this test's seeds), inside it: the init explained the gap.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from blur.baselines import accuracy_curve
from blur.tasks.base import Batch

# (optimizer, learning rate) -> {step: (mean %, std %)}, from baselines.md
REFERENCE = {
    ("sgd", 0.5): {10: (68.84, 5.26), 50: (87.14, 4.72)},
    ("momentum", 0.2): {10: (77.76, 3.00), 50: (90.61, 0.46)},
    ("adam", 0.01): {10: (84.64, 1.38), 50: (92.22, 0.20)},
}
SEEDS = 5
STEPS = 50
BATCH = 128
QUERY = 2000



@pytest.fixture(scope="module")
def curves() -> dict[tuple[str, float], np.ndarray]:
    """Accuracy (%) [seeds, T + 1] of each (optimizer, rate) on real MNIST."""
    from conftest import _require

    root = _require("mnist")
    from blur.data import load_dataset

    data = load_dataset("mnist", root)
    x_train, y_train = data.split("train_full")  # all 60k, as baselines.md
    x_test, y_test = data.split("test")
    x_train = np.asarray(x_train, np.float32).reshape(len(x_train), -1) / 255.0
    x_test = np.asarray(x_test, np.float32).reshape(len(x_test), -1) / 255.0
    rng = np.random.default_rng(0)
    pick = rng.choice(len(x_test), QUERY, replace=False)
    query = Batch(x=jnp.asarray(x_test[pick]), y=jnp.asarray(y_test[pick], jnp.int32))

    out: dict[tuple[str, float], list[np.ndarray]] = {k: [] for k in REFERENCE}
    for seed in range(SEEDS):
        key = jax.random.key(seed)
        idx = np.asarray(jax.random.randint(jax.random.fold_in(key, 1), (STEPS, BATCH), 0,
                                             len(x_train)))
        support = Batch(x=jnp.asarray(x_train[idx]), y=jnp.asarray(y_train[idx], jnp.int32))
        for opt, lr in REFERENCE:  # every optimizer of a seed sees the same init and batches
            curve = accuracy_curve(key, support, query, jnp.float32(lr), sizes=(784, 256, 10),
                                   optimizer=opt, init="he_lecun_normal")
            out[(opt, lr)].append(100 * np.asarray(curve))
    return {k: np.stack(v) for k, v in out.items()}


CASES = [(opt, lr, step) for (opt, lr), steps in REFERENCE.items() for step in steps]


@pytest.mark.realdata
@pytest.mark.parametrize(("opt", "lr", "step"), CASES)
def test_mnist_baseline_matches_baselines_md(curves, opt, lr, step):
    mean, std = REFERENCE[(opt, lr)][step]
    got = float(curves[(opt, lr)][:, step].mean())
    assert abs(got - mean) <= max(std, 2.0), (
        f"{opt} lr {lr} step {step}: {got:.2f}% here, {mean:.2f} ± {std:.2f}% in baselines.md")
