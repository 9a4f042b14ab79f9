"""NetworkSpec validation, network state initialisation, activations and synapse tying."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_tree_allclose, ref_activation, rich_genome

import blur
from blur.activations import get_activation
from blur.inner import cross_entropy
from blur.network import single_state, tie_backward

SIZES = (3, 4, 5, 2)
K = 3
B = 3


def _batch(seed: int, sizes: tuple[int, ...] = SIZES, batch: int = B) -> blur.Batch:
    kx, ky = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (batch, sizes[0]), jnp.float32)
    y = jax.random.randint(ky, (batch,), 0, sizes[-1])
    return blur.Batch(x=x, y=y)


# ------------------------------------------------------------------------- spec validation


BAD_SPECS: list[tuple[dict[str, Any], str]] = [
    ({"num_states": 0}, "num_states"),
    ({"num_states": -2}, "num_states"),
    ({"num_states": 1}, "num_states"),
    ({"num_states": 2.0}, "num_states"),
    ({"layer_sizes": (3,)}, "layer_sizes"),
    ({"layer_sizes": (3, 0, 2)}, "layer_sizes"),
    ({"forward_activation": "gelu"}, "forward_activation"),
    ({"backward_activation": "Relu"}, "backward_activation"),
    ({"last_activation": "softmax"}, "last_activation"),
    ({"backward_update": "subtractive"}, "backward_update"),
    ({"neuron_norm": "layer"}, "neuron_norm"),
    ({"feedback": "onehot"}, "feedback"),
    ({"hebbian_reduce": "max"}, "hebbian_reduce"),
    ({"synapse_stabiliser": ("oja", "clip")}, "synapse_stabiliser"),
    ({"synapse_stabiliser": ("oja", "oja")}, "synapse_stabiliser"),
    ({"synapse_keep_max": 0.0}, "synapse_keep_max"),
]


@pytest.mark.parametrize(("kwargs", "field"), BAD_SPECS, ids=[f for _, f in BAD_SPECS])
def test_bad_spec_raises_naming_field(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"layer_sizes": SIZES, "num_states": K, **kwargs}
    with pytest.raises(ValueError, match=field):
        blur.NetworkSpec(**args)


def test_spec_is_hashable_and_normalised() -> None:
    a = blur.NetworkSpec([3, 4, 2], synapse_stabiliser=["oja"])  # type: ignore[arg-type]
    b = blur.NetworkSpec((3, 4, 2), synapse_stabiliser=("oja",))
    assert a == b and hash(a) == hash(b)
    assert (a.num_layers, a.num_inputs, a.num_outputs) == (2, 3, 2)
    assert a.replace(num_states=4).num_states == 4


def test_genome_must_fit_spec() -> None:
    spec = blur.NetworkSpec(SIZES, K)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="num_states"):  # wrong K
        blur.init_state(key, blur.random_genome(key, K + 1), spec)
    per = blur.random_genome(key, K, spec.num_layers)
    with pytest.raises(ValueError, match="per_layer_genome"):  # per-layer genome, shared spec
        blur.init_state(key, per, spec)
    per_spec = spec.replace(per_layer_genome=True)
    with pytest.raises(ValueError, match="per_layer_genome"):  # wrong L
        blur.init_state(key, blur.random_genome(key, K, spec.num_layers + 1), per_spec)
    with pytest.raises(ValueError, match="per_layer_genome"):  # shared genome, per-layer spec
        blur.init_state(key, blur.random_genome(key, K), per_spec)
    # the same checks guard step and predict, also under jit (shapes are static)
    good = blur.init_state(key, blur.random_genome(key, K), spec, B)
    bad = blur.random_genome(key, K + 1)
    with pytest.raises(ValueError, match="num_states"):
        blur.step(bad, spec, good, _batch(0))
    with pytest.raises(ValueError, match="per_layer_genome"):
        jax.jit(blur.step, static_argnums=1)(per, spec, good, _batch(0))
    with pytest.raises(ValueError, match="num_states"):
        blur.predict(bad, spec, good, _batch(0).x)


# ---------------------------------------------------------------------------- activations


def test_activation_registry() -> None:
    assert set(blur.ACTIVATIONS) == {
        "relu", "tanh", "sigmoid", "linear", "relu_tanh",
        "binary_sigmoid", "binary_tanh", "binary_relu",
    }
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        get_activation("swish")


@pytest.mark.parametrize("name", sorted(blur.ACTIVATIONS))
def test_activation_values(name: str) -> None:
    """Unitary activations act on every state alike; binary ones give (s(x), s'(x), s'(x)...)."""
    x = np.linspace(-3.0, 3.0, 12, dtype=np.float32).reshape(2, 2, 3) + 0.05
    got = np.asarray(get_activation(name)(jnp.asarray(x)))
    # atol: s' = 1 - tanh^2 (and s (1 - s)) cancel in float32, absolute error ~ 2 ulp(1) = 2.4e-7
    np.testing.assert_allclose(got, ref_activation(name, x), rtol=1e-6, atol=3e-7)
    if name.startswith("binary_"):
        base = get_activation(name.removeprefix("binary_"))
        np.testing.assert_allclose(got[..., 0], base(jnp.asarray(x[..., 0])), rtol=1e-6)
        deriv = jax.vmap(jax.grad(lambda v: base(v)))(jnp.asarray(x[..., 1:]).ravel())
        np.testing.assert_allclose(got[..., 1:].ravel(), deriv, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(blur.ACTIVATIONS))
def test_activation_reachable_from_spec(name: str) -> None:
    """Each activation is what a 1-layer network's output layer applies."""
    spec = blur.NetworkSpec((3, 2), K, last_activation=name)
    lin = spec.replace(last_activation="linear")
    genome = rich_genome(jax.random.key(0), K)
    state = blur.init_state(jax.random.key(1), genome, spec, B)
    x = _batch(0).x * 3.0
    z = blur.forward(genome, lin, state, x)[-1]
    out = blur.forward(genome, spec, state, x)[-1]
    np.testing.assert_allclose(out, ref_activation(name, np.asarray(z)), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- init_state


@pytest.mark.parametrize("bias", [True, False])
def test_init_state_shapes(bias: bool) -> None:
    spec = blur.NetworkSpec(SIZES, K, bias=bias)
    genome = rich_genome(jax.random.key(0), K)
    state = blur.init_state(jax.random.key(1), genome, spec, batch_size=B)
    extra = int(bias)
    assert [w.shape for w in state.w_fwd] == [(3 + extra, 4, K), (4 + extra, 5, K),
                                              (5 + extra, 2, K)]
    assert [w.shape for w in state.w_bwd] == [(4, 3, K), (5, 4, K), (2, 5, K)]
    assert [n.shape for n in state.neurons] == [(B, n, K) for n in SIZES]
    for leaf in jax.tree_util.tree_leaves(state):
        assert leaf.dtype == jnp.float32
    assert all(float(jnp.max(jnp.abs(n))) == 0.0 for n in state.neurons)
    s = float(genome.init_scale)
    for w in state.w_fwd + state.w_bwd:
        assert float(jnp.max(jnp.abs(w))) <= s
    # the forward pass works without a bias row
    out = blur.forward(genome, spec, state, _batch(0).x)
    assert out[-1].shape == (B, 2, K)


def test_init_state_keys() -> None:
    spec = blur.NetworkSpec(SIZES, K)
    genome = rich_genome(jax.random.key(0), K)
    a = blur.init_state(jax.random.key(1), genome, spec)
    b = blur.init_state(jax.random.key(1), genome, spec)
    c = blur.init_state(jax.random.key(2), genome, spec)
    assert_tree_allclose(a, b, rtol=0, atol=0)
    assert not np.allclose(a.w_fwd[0], c.w_fwd[0])
    # forward and backward synapses are independent draws
    assert not np.allclose(a.w_bwd[0], np.transpose(a.w_fwd[0][:-1], (1, 0, 2)))


def test_fan_in_scaling_of_init() -> None:
    """U(-1, 1) * init_scale / sqrt(fan-in): std = init_scale / sqrt(3 fan-in)."""
    sizes = (200, 50, 8)
    spec = blur.NetworkSpec(sizes, 2, fan_in_scaling=True)
    genome = blur.random_genome(jax.random.key(0), 2, init_scale=0.8)
    state = blur.init_state(jax.random.key(1), genome, spec)
    plain = blur.init_state(jax.random.key(1), genome, spec.replace(fan_in_scaling=False))
    for l in range(2):
        for w, wp, fan in ((state.w_fwd[l], plain.w_fwd[l], sizes[l] + 1),
                           (state.w_bwd[l], plain.w_bwd[l], sizes[l + 1])):
            bound = 0.8 / np.sqrt(fan)
            np.testing.assert_allclose(w, wp / np.sqrt(fan), rtol=1e-6)  # same draw, rescaled
            assert 0.9 * bound < float(jnp.max(jnp.abs(w))) <= bound * (1 + 1e-6)
            if w.size > 10_000:
                np.testing.assert_allclose(float(jnp.std(w)), bound / np.sqrt(3), rtol=0.03)
    assert float(jnp.std(plain.w_fwd[0])) == pytest.approx(0.8 / np.sqrt(3), rel=0.03)


# ------------------------------------------------------------------ synapse tying over steps


def _steps(spec: blur.NetworkSpec, n: int) -> list[blur.NetworkState]:
    genome = rich_genome(jax.random.key(0), K)
    state = blur.init_state(jax.random.key(1), genome, spec, B)
    states = [state]
    for t in range(n):
        state, _ = blur.step(genome, spec, state, _batch(t))
        states.append(state)
    return states


@pytest.mark.parametrize("bias", [True, False])
def test_symmetric_synapses_stay_tied(bias: bool) -> None:
    spec = blur.NetworkSpec(SIZES, K, symmetric_synapses=True, bias=bias)
    states = _steps(spec, 4)
    for st in states:
        for wf, wb in zip(st.w_fwd, st.w_bwd, strict=True):
            n_in = wf.shape[0] - int(bias)
            np.testing.assert_array_equal(wb, np.transpose(np.asarray(wf)[:n_in], (1, 0, 2)))
    assert not np.allclose(states[-1].w_fwd[0], states[0].w_fwd[0], atol=1e-3)  # they moved


def test_asymmetric_synapses_untied() -> None:
    states = _steps(blur.NetworkSpec(SIZES, K), 3)
    for st in states:
        for wf, wb in zip(st.w_fwd, st.w_bwd, strict=True):
            assert not np.allclose(wb, np.transpose(np.asarray(wf)[:-1], (1, 0, 2)), atol=1e-3)


def test_single_state_synapses_keep_channels_equal() -> None:
    states = _steps(blur.NetworkSpec(SIZES, K, single_state_synapses=True), 4)
    for st in states:
        for w in st.w_fwd + st.w_bwd:
            for c in range(1, K):
                np.testing.assert_array_equal(w[..., c], w[..., 0])
    assert not np.allclose(states[-1].w_fwd[1], states[0].w_fwd[1], atol=1e-3)
    # multi-state synapses: channels differ (at init and after learning)
    multi = _steps(blur.NetworkSpec(SIZES, K), 2)
    for st in multi:
        assert not np.allclose(st.w_fwd[1][..., 1], st.w_fwd[1][..., 0], atol=1e-3)


def test_tie_and_single_state_helpers() -> None:
    w = jnp.arange(24.0).reshape(4, 3, 2)
    spec = blur.NetworkSpec((3, 3), 2)
    tied = tie_backward(spec, w)
    assert tied.shape == (3, 3, 2)
    np.testing.assert_array_equal(tied[2, 1], w[1, 2])
    tied_nb = tie_backward(spec.replace(bias=False), w)
    assert tied_nb.shape == (3, 4, 2)
    np.testing.assert_array_equal(single_state(w)[..., 1], w[..., 0])


# -------------------------------------------------------------------- step metrics, unroll


def test_step_metrics_values() -> None:
    spec = blur.NetworkSpec(SIZES, K, last_activation="linear")
    genome = rich_genome(jax.random.key(0), K)
    state = blur.init_state(jax.random.key(1), genome, spec, B)
    batch = blur.Batch(x=_batch(0).x, y=jnp.array([0, 1, 1]))
    logits = blur.predict(genome, spec, state, batch.x)
    new, m = blur.step(genome, spec, state, batch)
    logp = jax.nn.log_softmax(np.asarray(logits, np.float64), axis=-1)
    want_loss = -np.mean([logp[b, int(batch.y[b])] for b in range(B)])
    np.testing.assert_allclose(m.loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(cross_entropy(logits, batch.y), want_loss, rtol=1e-5)
    want_acc = np.mean(np.argmax(np.asarray(logits), axis=-1) == np.asarray(batch.y))
    assert float(m.accuracy) == pytest.approx(want_acc)
    assert bool(m.finite)
    all_w = np.concatenate([np.ravel(w) for w in new.w_fwd])
    np.testing.assert_allclose(m.synapse_norm, np.sqrt(np.mean(all_w**2)), rtol=1e-5)
    # a non-finite synapse is reported
    broken = state.replace(w_fwd=(state.w_fwd[0].at[0, 0, 0].set(jnp.inf), *state.w_fwd[1:]))
    _, m_bad = blur.step(genome, spec, broken, batch)
    assert not bool(m_bad.finite)
    # finiteness is read off the synapses' sum of squares: a NaN backward synapse of an
    # asymmetric network is caught, and so is a synapse whose square overflows float32
    asym = spec.replace(symmetric_synapses=False)
    s2 = blur.init_state(jax.random.key(1), genome, asym, B)
    assert bool(blur.step(genome, asym, s2, batch)[1].finite)
    nan_bwd = s2.replace(w_bwd=tuple(w.at[0, 0, 0].set(jnp.nan) for w in s2.w_bwd))
    assert any(w.size for w in s2.w_bwd)
    _, m_nan = blur.step(genome, asym, nan_bwd, batch)
    assert not bool(m_nan.finite)
    huge = state.replace(w_fwd=(state.w_fwd[0].at[0, 0, 0].set(3e19), *state.w_fwd[1:]))
    _, m_huge = blur.step(genome, spec, huge, batch)
    assert not bool(m_huge.finite)


def test_unroll_equals_loop_and_evaluate_equals_predict() -> None:
    spec = blur.NetworkSpec(SIZES, K)
    genome = rich_genome(jax.random.key(0), K)
    state = blur.init_state(jax.random.key(1), genome, spec, B)
    T = 3
    xs = jax.random.normal(jax.random.key(2), (T, B, SIZES[0]))
    ys = jax.random.randint(jax.random.key(3), (T, B), 0, SIZES[-1])
    final, metrics = blur.unroll(genome, spec, state, blur.Batch(xs, ys))
    final_r, metrics_r = blur.unroll(genome, spec, state, blur.Batch(xs, ys), remat=True)
    st, losses = state, []
    for t in range(T):
        st, m = blur.step(genome, spec, st, blur.Batch(xs[t], ys[t]))
        losses.append(m.loss)
    assert_tree_allclose(final, st, rtol=1e-5, atol=1e-6)
    assert_tree_allclose(final_r, st, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics.loss, np.array(losses), rtol=1e-5)
    assert metrics.accuracy.shape == (T,)
    # evaluate: mean loss / accuracy of predict over the flattened query batches
    loss, acc = blur.evaluate(genome, spec, final, blur.Batch(xs, ys))
    logits = jnp.concatenate([blur.predict(genome, spec, final, xs[t]) for t in range(T)])
    yflat = ys.reshape(-1)
    np.testing.assert_allclose(loss, cross_entropy(logits, yflat), rtol=1e-5)
    np.testing.assert_allclose(
        acc, np.mean(np.argmax(np.asarray(logits), -1) == np.asarray(yflat)), rtol=1e-6
    )


def test_network_state_is_a_pytree() -> None:
    spec = blur.NetworkSpec(SIZES, K)
    state = blur.init_state(jax.random.key(1), rich_genome(jax.random.key(0), K), spec, B)
    leaves, treedef = jax.tree_util.tree_flatten(state)
    assert len(leaves) == len(SIZES) + 2 * spec.num_layers
    again = jax.tree_util.tree_unflatten(treedef, leaves)
    assert_tree_allclose(again, state, rtol=0, atol=0)
    assert dataclasses.is_dataclass(state)
