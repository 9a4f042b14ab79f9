"""`unused_genome_fields` against the engine: what it lists is never read, the rest is.

For several specs, every value it lists is perturbed and a short unroll must give bit-identical
synapses, neurons and query accuracy; perturbing a field in any one layer it does not list
must change them. So the test fails if the list claims a value the engine reads, and if it
misses one the engine ignores. The search then leaves those values out
(`CMAConfig(skip_unused=True)`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import blur
from blur.genome import RULE_FIELDS, STATE_FIELDS, calibration_delta_genome, random_genome
from blur.outer.evolution import CMAConfig, search_space
from blur.rules import unused_genome_fields
from blur.tasks.base import Batch

SPECS = {
    "per-layer, norm both, 2 hidden": dict(
        sizes=(6, 7, 5, 3), neuron_norm="both", per_layer_genome=True
    ),
    "per-layer, norm forward, oja": dict(
        sizes=(6, 7, 3), neuron_norm="forward", per_layer_genome=True, synapse_stabiliser=("oja",)
    ),
    "shared, no norm, saturate, asymmetric": dict(
        sizes=(6, 7, 3), neuron_norm="none", symmetric_synapses=False,
        synapse_stabiliser=("saturate",),
    ),
    "per-layer, no hidden layer": dict(sizes=(6, 3), neuron_norm="backward", per_layer_genome=True),
    "per-layer, norm both, output unnormalised": dict(
        sizes=(6, 7, 5, 3), neuron_norm="both", per_layer_genome=True, norm_output=False
    ),
    "shared, norm forward, output unnormalised": dict(
        sizes=(6, 7, 3), neuron_norm="forward", norm_output=False
    ),
}


@functools.partial(jax.jit, static_argnums=1)
def _unroll(genome: blur.Genome, spec: blur.NetworkSpec) -> tuple:
    key = jax.random.PRNGKey(0)
    k_init, k_x, k_y = jax.random.split(key, 3)
    state = blur.init_state(k_init, genome, spec, 4)
    x = jax.random.normal(k_x, (3, 4, spec.layer_sizes[0]))
    y = jax.random.randint(k_y, (3, 4), 0, spec.layer_sizes[-1])
    query = Batch(x[:1], y[:1])
    final, metrics = blur.unroll(genome, spec, state, Batch(x, y), query=query)
    return final, metrics.query_accuracy


def _run(genome: blur.Genome, spec: blur.NetworkSpec) -> list[np.ndarray]:
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(_unroll(genome, spec))]


def _perturbed(genome: blur.Genome, field: str, layers: tuple[int, ...] | None) -> blur.Genome:
    value = jnp.asarray(getattr(genome, field))
    bump = 0.37 + 0.1 * jnp.arange(value.size, dtype=jnp.float32).reshape(value.shape)
    if layers is None:  # shared genome
        return genome.replace(**{field: value + bump})  # type: ignore[attr-defined]
    idx = np.asarray(layers, dtype=np.int32)
    return genome.replace(**{field: value.at[idx].add(bump[idx])})  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", list(SPECS))
def test_listed_values_are_never_read_and_the_others_are(name):
    kw = dict(SPECS[name])
    sizes = kw.pop("sizes")
    spec = blur.NetworkSpec(
        sizes, 2, forward_activation="tanh", backward_activation="tanh", last_activation="tanh",
        **kw,
    )
    L = spec.num_layers
    genome = random_genome(
        jax.random.PRNGKey(1), 2, L if spec.per_layer_genome else None, eta_tilde=0.05,
        init_scale=0.5,
    )
    genome = genome.replace(oja=jnp.full_like(genome.oja, 0.5),  # type: ignore[attr-defined]
                            alpha=jnp.full_like(genome.alpha, 0.3))
    ref = _run(genome, spec)
    unused = unused_genome_fields(spec)
    assert unused, "every spec has some unused value (layer 0's mu at least)"
    for field, layers in unused.items():
        assert set(layers) <= set(range(L))
        if spec.per_layer_genome:
            moved = _perturbed(genome, field, layers)
        elif len(layers) == L:
            moved = _perturbed(genome, field, None)
        else:
            continue  # a shared genome reads the field through another layer
        for a, b in zip(ref, _run(moved, spec), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"{name}: {field} {layers} is read")
    # every (field, layer) not listed is read: perturbing it alone changes the run, so the
    # list misses nothing that the engine ignores
    for field in ("mu", "bwd_norm_shift", "bwd_norm_scale", "fwd_norm_shift", "fwd_norm_scale",
                  "oja", "alpha", "nu", "nu_tilde"):
        used = [i for i in range(L) if i not in unused.get(field, ())]
        groups = [(i,) for i in used] if spec.per_layer_genome else [None] * bool(used)
        for layers in groups:
            moved = _perturbed(genome, field, layers)
            changed = any(
                not np.array_equal(a, b) for a, b in zip(ref, _run(moved, spec), strict=True)
            )
            assert changed, f"{name}: {field} in layer {layers} is not listed but changes nothing"


def test_skip_unused_drops_the_first_layers_backward_values_from_the_cma_search():
    spec = blur.NetworkSpec(
        (196, 512, 10), 2, neuron_norm="both", symmetric_synapses=True, per_layer_genome=True
    )
    g0 = calibration_delta_genome(2, 2)
    cfg = CMAConfig(search_fields=RULE_FIELDS + STATE_FIELDS, shared_fields=RULE_FIELDS)
    x_all, _ = search_space(g0, cfg, spec)
    assert x_all.shape == (36,)  # 20 shared + 4 state fields x 2 layers x 2 states
    skip = CMAConfig(
        search_fields=RULE_FIELDS + STATE_FIELDS, shared_fields=RULE_FIELDS, skip_unused=True
    )
    x0, unravel = search_space(g0, skip, spec)
    assert x0.shape == (32,)  # layer 0's bwd_norm_shift and bwd_norm_scale (2 x 2) left out
    moved = unravel(jnp.asarray(x0 + 0.5, jnp.float32))
    np.testing.assert_array_equal(moved.bwd_norm_scale[0], g0.bwd_norm_scale[0])  # kept
    np.testing.assert_array_equal(moved.bwd_norm_scale[1], g0.bwd_norm_scale[1] + 0.5)
    np.testing.assert_array_equal(moved.fwd_norm_shift, g0.fwd_norm_shift + 0.5)
    np.testing.assert_array_equal(moved.mu[0], moved.mu[1])  # shared fields stay tied
    np.testing.assert_allclose(np.asarray(unravel.ravel(moved)), x0 + 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match="spec"):
        search_space(g0, skip)
