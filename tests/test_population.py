"""Populations: ``jax.vmap`` over species (genomes) and replicas (synapse inits) equals a loop.

Tolerance: a batched einsum may sum in another order than the unbatched one, so float32 results
can differ by a few ulps of O(1) values (up to ~1e-6 absolute on a small sum of O(1) terms, e.g.
a logit whose bias is added after the matmul); rtol = 1e-6, atol = 3e-6 is tight enough that
any mixing of population members (wrong in_axes, a shared state) shows up as O(0.01-1) errors.

Compiling is the cost here, so each test jits one function that builds the whole population,
and the reference loops run eagerly (their op shapes are already compiled by other tests).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_tree_allclose, rich_genome, tree_allclose

import blur

SIZES = (3, 4, 5, 2)
K = 3
B = 3
S = 3  # species
R = 2  # replicas
T = 3  # unroll length
TOL = {"rtol": 1e-6, "atol": 3e-6}

RICH = blur.NetworkSpec(SIZES, K, neuron_norm="both", synapse_stabiliser=("oja",),
                        fan_in_scaling=True, hebbian_reduce="mean")
PER_LAYER = blur.NetworkSpec(SIZES, K, per_layer_genome=True, symmetric_synapses=True,
                             feedback="softmax_error")


def _genomes(spec: blur.NetworkSpec) -> blur.Genome:
    """S different genomes stacked on a leading axis."""
    L = spec.num_layers if spec.per_layer_genome else None
    keys = jax.random.split(jax.random.key(0), S)
    return blur.stack_layers([rich_genome(k, K, L) for k in keys])


def _take(tree: object, *index: int) -> object:
    return jax.tree_util.tree_map(lambda a: a[index], tree)


def _batches() -> blur.Batch:
    kx, ky = jax.random.split(jax.random.key(9))
    return blur.Batch(x=jax.random.normal(kx, (T, B, SIZES[0])),
                      y=jax.random.randint(ky, (T, B), 0, SIZES[-1]))


def _stack(trees: list) -> object:
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


@functools.cache
def _rich_population() -> dict[str, object]:
    """Species, replicas, species sharing one state, and species x replicas: one jit.

    The states are built by eager init_state calls and stacked (random-number ops under jit and
    vmap take seconds to compile on CPU); vmap(init_state) is covered by the unroll test below.
    """
    spec = RICH
    genomes = _genomes(spec)
    keys = jax.random.split(jax.random.key(1), S * R).reshape(S, R)
    batch = _take(_batches(), 0)
    nested_states = _stack([
        _stack([blur.init_state(keys[i, r], _take(genomes, i), spec, B) for r in range(R)])
        for i in range(S)
    ])
    species_states = _take(nested_states, slice(None), 0)
    replica_states = _take(nested_states, 0)
    shared = _take(nested_states, 0, 0)

    def step(g: blur.Genome, s: blur.NetworkState) -> tuple:
        return blur.step(g, spec, s, batch)

    @jax.jit
    def population(genomes: blur.Genome, species_states: blur.NetworkState,
                   replica_states: blur.NetworkState, shared: blur.NetworkState,
                   nested_states: blur.NetworkState) -> dict[str, object]:
        g0 = _take(genomes, 0)
        nested_out = jax.vmap(jax.vmap(step, in_axes=(None, 0)))(genomes, nested_states)
        return {
            "species": jax.vmap(step)(genomes, species_states),
            "replicas": jax.vmap(step, in_axes=(None, 0))(g0, replica_states),
            "shared": jax.vmap(step, in_axes=(0, None))(genomes, shared),
            "nested": nested_out,
            "nested_pred": jax.vmap(jax.vmap(
                lambda g, s: blur.predict(g, spec, s, batch.x), in_axes=(None, 0)
            ))(genomes, nested_out[0]),
        }

    out = population(genomes, species_states, replica_states, shared, nested_states)
    return {"genomes": genomes, "keys": keys, "batch": batch, "shared_state": shared,
            **out}


@pytest.mark.slow  # 23 s; CI runs it in its slow step (.ci/run)
def test_species_vmap_equals_loop() -> None:
    p = _rich_population()
    for i in range(S):
        g = _take(p["genomes"], i)
        st = blur.init_state(p["keys"][i, 0], g, RICH, B)
        want = blur.step(g, RICH, st, p["batch"])
        assert_tree_allclose(_take(p["species"], i), want, **TOL)
    out = p["species"][0]
    assert not tree_allclose(_take(out, 0).w_fwd, _take(out, 1).w_fwd, rtol=1e-3, atol=1e-3)


def test_species_share_one_state() -> None:
    """in_axes=(0, None): every genome trains the same initial network."""
    p = _rich_population()
    for i in range(S):
        want = blur.step(_take(p["genomes"], i), RICH, p["shared_state"], p["batch"])
        assert_tree_allclose(_take(p["shared"], i), want, **TOL)


def test_replicas_vmap_equals_loop() -> None:
    p = _rich_population()
    g = _take(p["genomes"], 0)
    for r in range(R):
        st = blur.init_state(p["keys"][0, r], g, RICH, B)
        assert_tree_allclose(_take(p["replicas"], r), blur.step(g, RICH, st, p["batch"]), **TOL)
    w = p["replicas"][0].w_fwd[0]
    assert not np.allclose(w[0], w[1], atol=1e-3)  # replicas differ


def test_nested_step_and_predict_equal_loop() -> None:
    p = _rich_population()
    assert p["nested"][0].w_fwd[0].shape == (S, R, SIZES[0] + 1, SIZES[1], K)
    assert p["nested_pred"].shape == (S, R, B, SIZES[-1])
    for i in range(S):
        g = _take(p["genomes"], i)
        for r in range(R):
            st = blur.init_state(p["keys"][i, r], g, RICH, B)
            want = blur.step(g, RICH, st, p["batch"])
            assert_tree_allclose(_take(p["nested"], i, r), want, **TOL)
            np.testing.assert_allclose(p["nested_pred"][i, r],
                                       blur.predict(g, RICH, want[0], p["batch"].x), **TOL)


def test_nested_species_replicas_unroll_equals_loop() -> None:
    """vmap(species) of vmap(replicas) of init_state + unroll (per-layer genomes, symmetric
    synapses), jitted, against a double Python loop of init_state and steps."""
    spec = PER_LAYER
    genomes = _genomes(spec)
    keys = jax.random.split(jax.random.key(3), S * R).reshape(S, R)
    batches = _batches()

    def per_species(g: blur.Genome, ks: jax.Array) -> tuple:
        def per_replica(k: jax.Array) -> tuple:
            st = blur.init_state(k, g, spec, B)
            return blur.unroll(g, spec, st, batches)

        return jax.vmap(per_replica)(ks)

    final, metrics = jax.jit(jax.vmap(per_species))(genomes, keys)
    assert final.w_fwd[0].shape == (S, R, SIZES[0] + 1, SIZES[1], K)
    assert metrics.loss.shape == (S, R, T)
    for i in range(S):
        g = _take(genomes, i)
        for r in range(R):
            st = blur.init_state(keys[i, r], g, spec, B)
            losses = []
            for t in range(T):
                st, m = blur.step(g, spec, st, _take(batches, t))
                losses.append(m.loss)
            # T consecutive steps: rounding differences can grow a little
            assert_tree_allclose(_take(final, i, r), st, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(metrics.loss[i, r], np.array(losses), rtol=1e-5)
    assert not np.allclose(final.w_fwd[1][0, 0], final.w_fwd[1][1, 0], atol=1e-3)
    assert metrics.loss.dtype == jnp.float32
