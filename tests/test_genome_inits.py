"""Which genome inits learn before meta-training (calibration.md, trap 1).

On sklearn digits (8x8, X/16; first 1400 examples train, the other 397 test), a fresh
64-64-10 network trained for 50 inner steps of B=64 with no meta-training:

  * ``delta_genome(K)`` learns: ~0.70-0.79 test accuracy at step 50 (K = 2 and 4, 4 seeds
    measured); asserted > 0.5.
  * ``near_backprop_genome(K)`` (paper §4.5, as reconstructed: its post factor is the ±1 label,
    a correlation rule) and ``random_genome`` stay at chance (0.06-0.14 measured); asserted < 0.2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import blur
from blur.inner import accuracy

T = 50
B = 64
N_TRAIN = 1400


@functools.cache
def _digits() -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    y = y.astype(np.int32)
    return (jnp.asarray(X[:N_TRAIN]), jnp.asarray(y[:N_TRAIN]), jnp.asarray(X[N_TRAIN:]),
            jnp.asarray(y[N_TRAIN:]))


def _spec(K: int) -> blur.NetworkSpec:
    return blur.NetworkSpec(
        (64, 64, 10), K, forward_activation="relu_tanh", backward_activation="tanh",
        last_activation="linear", symmetric_synapses=True, single_state_synapses=True,
        fan_in_scaling=True, hebbian_reduce="mean",
    )


@functools.cache
def _runner(K: int) -> Callable[..., tuple]:
    """One jitted function per K; all genomes of that K share the compiled scan."""
    spec = _spec(K)

    @jax.jit
    def run(genome: blur.Genome, key: jax.Array, xtr: jax.Array, ytr: jax.Array,
            xte: jax.Array, yte: jax.Array) -> tuple:
        k_init, k_data = jax.random.split(key)
        state = blur.init_state(k_init, genome, spec, B)
        # three shuffled epochs, cut into T batches of B
        perm = jnp.concatenate([jax.random.permutation(k, N_TRAIN)
                                for k in jax.random.split(k_data, 3)])[: T * B].reshape(T, B)
        final, metrics = blur.unroll(genome, spec, state, blur.Batch(x=xtr[perm], y=ytr[perm]))
        logits = blur.predict(genome, spec, final, xte)
        return (accuracy(logits, yte), metrics.accuracy, jnp.all(jnp.isfinite(logits)),
                metrics.synapse_norm)

    return run


def _train(genome: blur.Genome, K: int, seed: int = 0) -> tuple[float, np.ndarray, bool, float]:
    acc, train_acc, finite, norm = _runner(K)(genome, jax.random.key(seed), *_digits())
    return float(acc), np.asarray(train_acc), bool(finite), float(norm[-1])


@pytest.mark.parametrize("K", [2, 4])
def test_delta_genome_learns(K: int) -> None:
    acc, train_acc, finite, _ = _train(blur.delta_genome(K), K)
    assert finite
    assert acc > 0.5, acc
    # the per-step training accuracy (pre-update, on each new batch) rises from chance
    assert train_acc[:3].mean() < 0.3 < 0.5 < train_acc[-10:].mean()


@pytest.mark.parametrize("K", [2, 4])
@pytest.mark.parametrize("eta_tilde", [0.01, 1.0, 10.0])
def test_near_backprop_genome_stays_at_chance(K: int, eta_tilde: float) -> None:
    genome = blur.near_backprop_genome(K, eta_tilde=eta_tilde)
    acc, _, finite, norm = _train(genome, K)
    assert finite
    assert acc < 0.2, acc
    if eta_tilde >= 1.0:
        # not for lack of updates: the synapses moved far from their init (RMS ~0.007)
        assert norm > 0.1, norm


@pytest.mark.parametrize("K", [2, 4])
def test_random_genome_stays_at_chance(K: int) -> None:
    for seed in (1, 2):
        acc, _, finite, _ = _train(blur.random_genome(jax.random.key(seed), K), K, seed)
        assert finite
        assert acc < 0.2, acc
