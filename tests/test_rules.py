"""The four BLUR rules (forward, feedback, backward, Hebbian) and every NetworkSpec option.

Most options are checked two ways: against the loop-based float64 reference of eqs. (5)-(8) in
``helpers.py`` (one step from a shared state, two consecutive steps), and by a property that
the option exists to guarantee (zero mean / unit variance, scale invariance, |w| <= alpha, ...).

Tolerances against the float64 reference: blur runs in float32 on O(1) values with sums of at
most ~20 products, so rounding errors are ~1e-6; rtol = atol = 1e-5 leaves a 10x margin while
any wrong index, gate or sign gives O(0.01-1) errors.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    NORM_EPS,
    assert_tree_allclose,
    np_genome,
    ref_forward,
    ref_hebbian_update,
    ref_step,
    rich_genome,
)

import blur
from blur import rules
from blur.network import fan_in

RTOL = 1e-5
ATOL = 1e-5
SIZES = (3, 4, 5, 2)  # two hidden layers: the backward pass rewrites two layers
K = 3
B = 3


def _batch(seed: int, sizes: tuple[int, ...] = SIZES, batch: int = B) -> blur.Batch:
    kx, ky = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (batch, sizes[0]), jnp.float32)
    y = jax.random.randint(ky, (batch,), 0, sizes[-1])
    return blur.Batch(x=x, y=y)


def _setup(
    spec: blur.NetworkSpec, seed: int = 0
) -> tuple[blur.Genome, blur.NetworkState]:
    L = spec.num_layers if spec.per_layer_genome else None
    genome = rich_genome(jax.random.key(seed), spec.num_states, L)
    state = blur.init_state(jax.random.key(seed + 1), genome, spec, B)
    return genome, state


# Every NetworkSpec option value appears at least once (defaults cover the remaining ones).
SPEC_CASES: dict[str, dict[str, Any]] = {
    "default": {},
    "fwd_relu": {"forward_activation": "relu"},
    "fwd_tanh": {"forward_activation": "tanh"},
    "fwd_sigmoid_bwd_linear": {"forward_activation": "sigmoid", "backward_activation": "linear"},
    "fwd_linear_last_relu": {"forward_activation": "linear", "last_activation": "relu"},
    "bwd_sigmoid_last_sigmoid": {"backward_activation": "sigmoid", "last_activation": "sigmoid"},
    "binary_sigmoid": {"forward_activation": "binary_sigmoid", "backward_activation": "tanh"},
    "binary_tanh": {"forward_activation": "binary_tanh", "last_activation": "binary_tanh"},
    "binary_relu": {"forward_activation": "binary_relu", "backward_activation": "binary_relu"},
    "multiplicative": {"backward_update": "multiplicative"},
    "multiplicative_second_state": {"backward_update": "multiplicative_second_state"},
    "symmetric": {"symmetric_synapses": True},
    "single_state": {"single_state_synapses": True},
    "symmetric_single_state": {"symmetric_synapses": True, "single_state_synapses": True},
    "norm_forward": {"neuron_norm": "forward"},
    "norm_backward": {"neuron_norm": "backward"},
    "norm_both": {"neuron_norm": "both", "last_activation": "linear"},
    "oja": {"synapse_stabiliser": ("oja",)},
    "normalize": {"synapse_stabiliser": ("normalize",)},
    "saturate": {"synapse_stabiliser": ("saturate",)},
    "oja_normalize": {"synapse_stabiliser": ("oja", "normalize")},
    "all_stabilisers": {"synapse_stabiliser": ("saturate", "oja", "normalize")},
    "no_reset": {"reset_neurons": False},
    "no_bias": {"bias": False},
    "no_bias_symmetric": {"bias": False, "symmetric_synapses": True},
    "mean": {"hebbian_reduce": "mean"},
    "feedback_error": {"feedback": "error"},
    "feedback_softmax_error": {"feedback": "softmax_error", "last_activation": "linear"},
    "fan_in_scaling": {"fan_in_scaling": True},
    "per_layer": {"per_layer_genome": True},
    "per_layer_everything": {
        "per_layer_genome": True,
        "neuron_norm": "both",
        "synapse_stabiliser": ("oja", "saturate"),
        "fan_in_scaling": True,
        "hebbian_reduce": "mean",
    },
    "keep_max": {"synapse_keep_max": 0.5},
    "norm_both_output_free": {"neuron_norm": "both", "norm_output": False,
                              "per_layer_genome": True},
    "unsupervised": {"unsupervised_update": True},
    "unsupervised_asymmetric_oja": {"unsupervised_update": True, "synapse_stabiliser": ("oja",),
                                    "feedback": "softmax_error", "last_activation": "linear"},
    "unsupervised_symmetric_per_layer": {"unsupervised_update": True,
                                         "symmetric_synapses": True, "per_layer_genome": True},
    "hebbian_decay": {"hebbian_decay": 0.7},
    "hebbian_decay_symmetric_saturate": {"hebbian_decay": 0.7, "symmetric_synapses": True,
                                         "synapse_stabiliser": ("saturate",)},
}


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_step_matches_loop_reference(case: str) -> None:
    """Two consecutive blur.step calls equal the loop reference applied to the same state."""
    spec = blur.NetworkSpec(SIZES, K, **SPEC_CASES[case])
    genome, state = _setup(spec)
    for t in range(2):  # steps t = 3, 4 of a run (the step count matters with hebbian_decay)
        batch = _batch(10 + t)
        new, _ = blur.step(genome, spec, state, batch, t=3 + t)
        neurons, w_fwd, w_bwd = ref_step(genome, spec, state, batch.x, batch.y, t=3 + t)
        assert_tree_allclose(tuple(new.neurons), tuple(neurons), RTOL, ATOL)
        assert_tree_allclose(tuple(new.w_fwd), tuple(w_fwd), RTOL, ATOL)
        assert_tree_allclose(tuple(new.w_bwd), tuple(w_bwd), RTOL, ATOL)
        # The step must actually change the synapses (else the comparison is vacuous).
        assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(new.w_fwd, state.w_fwd,
                                                                    strict=True)) > 1e-3
        state = new


def test_all_spec_options_are_covered() -> None:
    """Guard: a new NetworkSpec field or choice must be added to SPEC_CASES."""
    from typing import get_args

    from blur import network

    seen: dict[str, set] = {}
    for kw in SPEC_CASES.values():
        for k, v in kw.items():
            vals = v if k == "synapse_stabiliser" else (v,)
            seen.setdefault(k, set()).update(vals)
    for name in ("forward_activation", "backward_activation", "last_activation"):
        seen.setdefault(name, set()).add(getattr(blur.NetworkSpec(SIZES), name))
    acts = set().union(*(seen[n] for n in ("forward_activation", "backward_activation",
                                           "last_activation")))
    assert acts == set(blur.ACTIVATIONS)
    assert seen["backward_update"] | {"additive"} == set(get_args(network.BackwardUpdate))
    assert seen["neuron_norm"] | {"none"} == set(get_args(network.NeuronNorm))
    assert seen["synapse_stabiliser"] == set(get_args(network.Stabiliser))
    assert seen["feedback"] | {"label"} == set(get_args(network.Feedback))
    assert seen["hebbian_reduce"] | {"sum"} == set(get_args(network.HebbianReduce))
    import dataclasses

    fields = {f.name for f in dataclasses.fields(blur.NetworkSpec)} - {"layer_sizes", "num_states"}
    assert fields <= set(seen), fields - set(seen)


# ------------------------------------------------------------------------ backward modes


def test_backward_update_modes_hand_computed() -> None:
    """Eq. (6) on a 1-2-1 net with K=2, written out by hand for each update mode.

    Upper (output) neuron a_up = (p0, p1) = (0.5, -2.0); w_bwd[1][0, i, c] = [[1, 2], [3, -1]]
    (row i, column c); mu = [[1, 0], [1, 1]] so (mu a_up) = (0.5, -1.5);
    v[i, c] = w[0, i, c] (mu a_up)^c = [[0.5, -3.0], [1.5, 1.5]].
    Hidden neurons a = [[0.2, 0.4], [-0.6, 1.0]], f = 0.5, eta = 2, backward activation linear.
    """
    spec = blur.NetworkSpec((1, 2, 1), 2, backward_activation="linear", bias=False)
    genome = blur.random_genome(jax.random.key(0), 2).replace(
        mu=jnp.array([[1.0, 0.0], [1.0, 1.0]]), f=jnp.float32(0.5), eta=jnp.float32(2.0)
    )
    w_bwd1 = jnp.array([[[1.0, 2.0], [3.0, -1.0]]])  # [n_up=1, n_lo=2, K=2]
    state = blur.init_state(jax.random.key(1), genome, spec, 1)
    state = state.replace(w_bwd=(state.w_bwd[0], w_bwd1))
    hidden = jnp.array([[[0.2, 0.4], [-0.6, 1.0]]])
    upper = jnp.array([[[0.5, -2.0]]])
    neurons = (jnp.zeros((1, 1, 2)), hidden, upper)
    expected = {
        # f a + eta v
        "additive": [[0.1 + 1.0, 0.2 - 6.0], [-0.3 + 3.0, 0.5 + 3.0]],
        # f a v
        "multiplicative": [[0.5 * 0.2 * 0.5, 0.5 * 0.4 * -3.0],
                           [0.5 * -0.6 * 1.5, 0.5 * 1.0 * 1.5]],
        # state 0: f a; state 1: f a v
        "multiplicative_second_state": [[0.1, 0.5 * 0.4 * -3.0], [-0.3, 0.5 * 1.0 * 1.5]],
    }
    for mode, want in expected.items():
        out = blur.backward(genome, spec.replace(backward_update=mode), state, neurons)
        np.testing.assert_allclose(out[1][0], np.array(want), rtol=1e-6, atol=1e-7, err_msg=mode)
        np.testing.assert_array_equal(out[2], upper)  # the output layer is not rewritten
        np.testing.assert_array_equal(out[0], neurons[0])  # nor the input layer


def test_forward_hand_computed() -> None:
    """Eq. (5) on a 2-1 net with bias, K=2: z_j^c = eta sum_i w_ij^c (nu a_i)^c."""
    spec = blur.NetworkSpec((2, 1), 2, last_activation="linear")
    genome = blur.random_genome(jax.random.key(0), 2).replace(
        nu=jnp.array([[1.0, 0.0], [2.0, 0.0]]), eta=jnp.float32(0.5)
    )
    # rows: input 0, input 1, bias; channel c in the last axis
    w = jnp.array([[[1.0, -1.0]], [[2.0, 0.5]], [[0.25, 3.0]]])
    state = blur.init_state(jax.random.key(1), genome, spec, 1).replace(w_fwd=(w,))
    x = jnp.array([[1.0, -2.0]])
    out = blur.forward(genome, spec, state, x)[-1]
    # state 0 reads (nu a)^0 = a^0: inputs (1, -2), bias unit 1 (bias is 1 in every state)
    # state 1 reads (nu a)^1 = 2 a^0: inputs (2, -4), bias 2
    z0 = 0.5 * (1.0 * 1.0 + 2.0 * -2.0 + 0.25 * 1.0)
    z1 = 0.5 * (-1.0 * 2.0 + 0.5 * -4.0 + 3.0 * 2.0)
    np.testing.assert_allclose(out[0, 0], [z0, z1], rtol=1e-6)


def test_hebbian_hand_computed() -> None:
    """Eq. (7) for one synapse with K=2, B=2, written out by hand."""
    spec = blur.NetworkSpec((1, 1), 2)
    nu_t = jnp.array([[1.0, 0.0], [1.0, 2.0]])  # p^c = sum_e a^e nu~[e, c]
    mu_t = jnp.array([[0.0, 1.0], [1.0, -1.0]])  # q^c = sum_d mu~[c, d] a^d
    genome = blur.random_genome(jax.random.key(0), 2).replace(
        nu_tilde=nu_t, mu_tilde=mu_t, f_tilde=jnp.float32(0.5), eta_tilde=jnp.float32(0.1)
    )
    pre = jnp.array([[[1.0, 2.0]], [[-1.0, 0.5]]])  # [B, 1, K]
    post = jnp.array([[[3.0, 1.0]], [[0.0, -2.0]]])
    w = jnp.array([[[0.4, -0.2]]])
    # b=0: p = (1 + 2, 4) = (3, 4); q = (1, 3 - 1) = (1, 2)   -> p q = (3, 8)
    # b=1: p = (-1 + 0.5, 1) = (-0.5, 1); q = (-2, 0 + 2) = (-2, 2) -> p q = (1, 2)
    hebb = np.array([4.0, 10.0])
    want = 0.5 * np.array([0.4, -0.2]) + 0.1 * hebb
    got = rules.hebbian_update(genome, spec, pre, post, w, fan=1)
    np.testing.assert_allclose(got[0, 0], want, rtol=1e-6)
    mean = rules.hebbian_update(genome, spec.replace(hebbian_reduce="mean"), pre, post, w, fan=1)
    np.testing.assert_allclose(mean[0, 0], 0.5 * np.array([0.4, -0.2]) + 0.1 * hebb / 2, rtol=1e-6)


# ------------------------------------------------------------------------------ feedback


@pytest.mark.parametrize("mode", ["label", "error", "softmax_error"])
def test_feedback_values(mode: str) -> None:
    spec = blur.NetworkSpec((2, 3), 4, feedback=mode)
    out = jnp.array(np.random.default_rng(0).normal(size=(2, 3, 4)), jnp.float32)
    y = jnp.array([2, 0])
    top = blur.feedback(spec, (jnp.zeros((2, 2, 4)), out), y)[-1]
    pred = np.asarray(out[..., 0])
    onehot = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    if mode == "label":
        want = np.array([[-1.0, -1.0, 1.0], [1.0, -1.0, -1.0]])
    elif mode == "error":
        want = onehot - pred
    else:
        e = np.exp(pred)
        want = onehot - e / e.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(top[..., 0], pred)
    np.testing.assert_allclose(top[..., 1], want, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(top[..., 2:], 0.0)


# ------------------------------------------------------------------------- normalisation


def test_normalize_zero_mean_unit_variance() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 7, 3)) * np.array([0.5, 3.0, 20.0]) + np.array([1.0, -4.0, 9.0])
    x = jnp.asarray(x, jnp.float32)
    out = np.asarray(rules.normalize(x, jnp.zeros(3), jnp.ones(3)), np.float64)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), 0.0, atol=1e-5)
    var = np.asarray(x, np.float64).var(axis=(0, 1))
    np.testing.assert_allclose(out.var(axis=(0, 1)), var / (var + NORM_EPS), rtol=1e-4)
    np.testing.assert_allclose(out.var(axis=(0, 1)), 1.0, rtol=1e-3)
    # the affine is applied after the normalisation: mean -> shift, std -> scale
    shift, scale = jnp.array([0.5, -1.0, 2.0]), jnp.array([2.0, 0.5, 3.0])
    aff = np.asarray(rules.normalize(x, shift, scale), np.float64)
    np.testing.assert_allclose(aff, out * np.asarray(scale) + np.asarray(shift), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(aff.mean(axis=(0, 1)), shift, atol=1e-5)
    np.testing.assert_allclose(aff.std(axis=(0, 1)), scale, rtol=1e-3)


@pytest.mark.parametrize("norm", ["none", "forward", "backward", "both"])
def test_neuron_norm_modes(norm: str) -> None:
    """Forward normalisation fixes the output's per-state mean/std to the genome's shift/scale;
    backward normalisation does the same for the hidden layers after the backward pass."""
    spec = blur.NetworkSpec(SIZES, K, forward_activation="linear",
                            backward_activation="linear", last_activation="linear",
                            neuron_norm=norm)
    genome, state = _setup(spec)
    batch = _batch(3)
    fwd = blur.forward(genome, spec, state, batch.x)
    bwd = blur.backward(genome, spec, state, blur.feedback(spec, fwd, batch.y))
    out = np.asarray(fwd[-1], np.float64)
    fwd_on = norm in ("forward", "both")
    bwd_on = norm in ("backward", "both")
    match_out = np.allclose(out.mean(axis=(0, 1)), genome.fwd_norm_shift, atol=1e-4) and \
        np.allclose(out.std(axis=(0, 1)), genome.fwd_norm_scale, rtol=1e-3)
    assert match_out == fwd_on
    for hidden in bwd[1:-1]:
        h = np.asarray(hidden, np.float64)
        match = np.allclose(h.mean(axis=(0, 1)), genome.bwd_norm_shift, atol=1e-4) and \
            np.allclose(h.std(axis=(0, 1)), genome.bwd_norm_scale, rtol=1e-3)
        assert match == bwd_on
    # backward normalisation leaves the forward pass alone, and vice versa
    fwd_none = blur.forward(genome, spec.replace(neuron_norm="none"), state, batch.x)
    assert np.allclose(fwd[-1], fwd_none[-1]) == (not fwd_on)


def test_norm_output_false_leaves_only_the_logits_unnormalised() -> None:
    """``norm_output=False``: the hidden layers are normalised as before; the output layer is
    not: its logits are the pre-activations that normalisation would have mapped to the
    genome's shift and scale (linear activations, so the layer's output is its z)."""
    spec = blur.NetworkSpec(SIZES, K, forward_activation="linear",
                            backward_activation="linear", last_activation="linear",
                            neuron_norm="forward")
    genome, state = _setup(spec)
    genome = genome.replace(fwd_norm_scale=jnp.full_like(genome.fwd_norm_scale, 1.7))
    x = _batch(3).x
    normed = blur.forward(genome, spec, state, x)
    free = blur.forward(genome, spec.replace(norm_output=False), state, x)
    for a, b in zip(normed[:-1], free[:-1], strict=True):  # input and hidden layers
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.asarray(normed[-1], np.float64).std(axis=(0, 1)), 1.7,
                               rtol=1e-3)
    again = rules.normalize(free[-1], genome.fwd_norm_shift, genome.fwd_norm_scale)
    np.testing.assert_allclose(again, normed[-1], rtol=1e-4, atol=1e-5)
    assert not np.allclose(np.asarray(free[-1], np.float64).std(axis=(0, 1)), 1.7, rtol=0.05)


# ---------------------------------------------------------------------- synapse stabilisers


def _run(genome: blur.Genome, spec: blur.NetworkSpec, state: blur.NetworkState,
         steps: int) -> blur.NetworkState:
    """``steps`` eager steps on fixed random batches (eager: tiny shapes compile faster so)."""
    for t in range(steps):
        state, _ = blur.step(genome, spec, state, _batch(100 + t, spec.layer_sizes))
    return state


def _rms(state: blur.NetworkState) -> float:
    return float(np.sqrt(np.mean(np.concatenate([np.ravel(w) ** 2 for w in state.w_fwd]))))


def test_oja_reduces_weight_growth() -> None:
    """Same genome, same start, same batches: Oja's decay keeps the weights smaller."""
    spec = blur.NetworkSpec(SIZES, K)
    genome, state = _setup(spec)
    genome = genome.replace(f_tilde=jnp.float32(1.0), eta_tilde=jnp.float32(0.2),
                            oja=jnp.float32(1.0))
    plain = _run(genome, spec, state, 10)
    oja = _run(genome, spec.replace(synapse_stabiliser=("oja",)), state, 10)
    r0, r_plain, r_oja = _rms(state), _rms(plain), _rms(oja)
    assert np.isfinite(r_plain) and np.isfinite(r_oja)
    assert r_plain > 1.5 * r0  # the plain Hebbian rule grows the weights
    assert r_oja < 0.8 * r_plain


def test_oja_term_value() -> None:
    """Eq. (8), first term: the Oja run minus the plain run is
    -eta~ sign(eta~) |oja| w sum_b q^2 = -|eta~| |oja| w sum_b q^2, whatever the sign of eta~."""
    spec = blur.NetworkSpec((4, 3), 2)
    rng = np.random.default_rng(1)
    pre = jnp.asarray(rng.normal(size=(5, 4, 2)), jnp.float32)
    post = jnp.asarray(rng.normal(size=(5, 3, 2)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(4, 3, 2)), jnp.float32)
    for eta_t in (0.1, -0.1):
        genome = rich_genome(jax.random.key(2), 2).replace(
            eta_tilde=jnp.float32(eta_t), oja=jnp.float32(-0.7)
        )
        plain = rules.hebbian_update(genome, spec, pre, post, w, fan=4)
        oja = rules.hebbian_update(genome, spec.replace(synapse_stabiliser=("oja",)), pre, post,
                                   w, fan=4)
        q = np.einsum("bjd,cd->bjc", np.asarray(post), np.asarray(genome.mu_tilde))
        want = -abs(eta_t) * 0.7 * np.asarray(w) * np.sum(q * q, axis=0)[None]
        np.testing.assert_allclose(oja - plain, want, rtol=1e-4, atol=1e-6)


def test_normalize_makes_activations_scale_invariant() -> None:
    """With 'normalize' the passes see unit-norm columns: scaling every synapse by a constant
    leaves forward and backward unchanged; the stored weights are not normalised."""
    for stab in (("normalize",), ("oja", "normalize")):
        spec = blur.NetworkSpec(SIZES, K, synapse_stabiliser=stab)
        genome, state = _setup(spec)
        batch = _batch(1)
        scaled = state.replace(w_fwd=tuple(3.7 * w for w in state.w_fwd),
                               w_bwd=tuple(0.21 * w for w in state.w_bwd))
        for st in (state, scaled):
            fwd = blur.forward(genome, spec, st, batch.x)
            bwd = blur.backward(genome, spec, st, blur.feedback(spec, fwd, batch.y))
            if st is state:
                ref = (fwd, bwd)
            else:
                assert_tree_allclose((fwd, bwd), ref, rtol=1e-5, atol=1e-6)
        # without the stabiliser the same scaling changes the output
        plain = spec.replace(synapse_stabiliser=())
        a = blur.forward(genome, plain, state, batch.x)[-1]
        b = blur.forward(genome, plain, scaled, batch.x)[-1]
        assert not np.allclose(a, b, atol=1e-3)
        # stored synapses keep their scale (normalisation only acts inside the passes)
        new, _ = blur.step(genome, spec, scaled, batch)
        col_norms = np.linalg.norm(np.asarray(new.w_fwd[0]), axis=0)
        assert np.all(col_norms > 1.5)


def test_saturate_bounds_weights() -> None:
    spec = blur.NetworkSpec(SIZES, K, synapse_stabiliser=("saturate",))
    genome, state = _setup(spec)
    genome = genome.replace(f_tilde=jnp.float32(1.0), eta_tilde=jnp.float32(2.0),
                            alpha=jnp.float32(-0.3))  # |alpha| is used
    final = _run(genome, spec, state, 6)
    # w_bwd[0] is never updated (nothing reads it), so only the updated synapses are bounded.
    wmax = max(float(jnp.max(jnp.abs(w))) for w in final.w_fwd + final.w_bwd[1:])
    # w = alpha' tanh(.) with alpha' = |alpha| + 1e-6 (blur's guard against alpha = 0), so
    # |w| <= alpha' up to one float32 rounding
    assert wmax <= (0.3 + 1e-6) * (1 + 2**-23)
    assert wmax > 0.25  # the bound is reached: without saturation these weights would be larger
    free = _run(genome, spec.replace(synapse_stabiliser=()), state, 6)
    assert max(float(jnp.max(jnp.abs(w))) for w in free.w_fwd) > 1.0


def test_synapse_keep_max_clips_f_tilde() -> None:
    spec = blur.NetworkSpec((4, 3), 2)
    genome = rich_genome(jax.random.key(0), 2).replace(
        f_tilde=jnp.float32(1.5), eta_tilde=jnp.float32(0.0)
    )
    rng = np.random.default_rng(0)
    pre = jnp.asarray(rng.normal(size=(2, 4, 2)), jnp.float32)
    post = jnp.asarray(rng.normal(size=(2, 3, 2)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(4, 3, 2)), jnp.float32)
    np.testing.assert_allclose(rules.hebbian_update(genome, spec, pre, post, w, 4), 1.5 * w)
    clipped = spec.replace(synapse_keep_max=0.9)
    np.testing.assert_allclose(rules.hebbian_update(genome, clipped, pre, post, w, 4), 0.9 * w)
    # a keep gate below the maximum passes unchanged
    low = genome.replace(f_tilde=jnp.float32(0.8))
    np.testing.assert_allclose(rules.hebbian_update(low, clipped, pre, post, w, 4), 0.8 * w)


# ------------------------------------------------------------------ neuron reset, reduce, fan


def test_reset_neurons_false_carries_state() -> None:
    """Without reset, layer 1's pre-activation is f a_prev + eta u (u: the synaptic input)."""
    spec = blur.NetworkSpec(SIZES, K, forward_activation="linear", last_activation="linear",
                            backward_activation="tanh", reset_neurons=False)
    genome, state = _setup(spec)
    state, _ = blur.step(genome, spec, state, _batch(0))  # neurons now hold the last step
    prev = state.neurons
    assert float(jnp.max(jnp.abs(prev[1]))) > 0.1
    batch = _batch(1)
    carried = blur.forward(genome, spec, state, batch.x)
    reset = blur.forward(genome, spec.replace(reset_neurons=True), state, batch.x)
    # by hand: u = sum_i w_i1^c (nu a_i)^c over inputs + bias, z = f prev + eta u
    a0 = np.concatenate([np.asarray(reset[0]), np.ones((B, 1, K))], axis=1)
    g = np_genome(genome)
    u = np.einsum("bid,cd,ijc->bjc", a0, g["nu"], np.asarray(state.w_fwd[0], np.float64))
    np.testing.assert_allclose(reset[1], g["eta"] * u, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(carried[1], g["f"] * np.asarray(prev[1]) + g["eta"] * u,
                               rtol=1e-5, atol=1e-5)
    assert not np.allclose(carried[-1], reset[-1], atol=1e-3)
    # predict always starts from zero neurons, so it ignores the carried state
    np.testing.assert_allclose(blur.predict(genome, spec, state, batch.x), reset[-1][..., 0],
                               rtol=1e-6, atol=1e-6)
    # a batch of another size cannot reuse the stored neurons: they are taken as zero
    other = _batch(2, batch=B + 2)
    np.testing.assert_allclose(
        blur.forward(genome, spec, state, other.x)[-1],
        blur.forward(genome, spec.replace(reset_neurons=True), state, other.x)[-1],
        rtol=1e-6, atol=1e-6,
    )


def test_hebbian_reduce_sum_is_batch_times_mean() -> None:
    spec = blur.NetworkSpec(SIZES, K, hebbian_reduce="sum")
    genome, state = _setup(spec)
    batch = _batch(4)
    s, _ = blur.step(genome, spec, state, batch)
    m, _ = blur.step(genome, spec.replace(hebbian_reduce="mean"), state, batch)
    for l in range(spec.num_layers):
        keep_f = genome.f_tilde * state.w_fwd[l]
        keep_b = genome.f_tilde * state.w_bwd[l]
        np.testing.assert_allclose(s.w_fwd[l] - keep_f, B * (m.w_fwd[l] - keep_f), rtol=1e-4,
                                   atol=1e-6)
        if l == 0:  # w_bwd[0] is not updated (nothing reads it)
            continue
        np.testing.assert_allclose(s.w_bwd[l] - keep_b, B * (m.w_bwd[l] - keep_b), rtol=1e-4,
                                   atol=1e-6)


def test_fan_in_scaling_divides_hebbian_step() -> None:
    spec = blur.NetworkSpec((3, 5, 2), K)
    genome, state = _setup(spec)
    batch = _batch(4, spec.layer_sizes)
    plain, _ = blur.step(genome, spec, state, batch)
    scaled, _ = blur.step(genome, spec.replace(fan_in_scaling=True), state, batch)
    for l in range(spec.num_layers):
        fan_f, fan_b = fan_in(spec, l)
        assert (fan_f, fan_b) == (spec.layer_sizes[l] + 1, spec.layer_sizes[l + 1])
        pairs = [(plain.w_fwd[l], scaled.w_fwd[l], state.w_fwd[l], fan_f)]
        if l > 0:  # w_bwd[0] is not updated (nothing reads it)
            pairs.append((plain.w_bwd[l], scaled.w_bwd[l], state.w_bwd[l], fan_b))
        for new_p, new_s, old, fan in pairs:
            keep = genome.f_tilde * old
            np.testing.assert_allclose(new_s - keep, (new_p - keep) / fan, rtol=1e-4, atol=1e-7)


# ------------------------------------------------------------------------- per-layer genome


def test_per_layer_genome_of_identical_layers_equals_shared() -> None:
    spec = blur.NetworkSpec(SIZES, K, neuron_norm="both", synapse_stabiliser=("oja",))
    genome, state = _setup(spec)
    per_spec = spec.replace(per_layer_genome=True)
    stacked = blur.stack_layers([genome] * spec.num_layers)
    assert stacked.num_layers == spec.num_layers
    state_p = blur.init_state(jax.random.key(1), stacked, per_spec, B)
    assert_tree_allclose(state_p, state, rtol=0, atol=0)
    batch = _batch(2)
    a, ma = blur.step(genome, spec, state, batch)
    b, mb = blur.step(stacked, per_spec, state, batch)
    assert_tree_allclose((a, ma), (b, mb), rtol=1e-6, atol=1e-7)


def test_per_layer_genome_uses_each_layers_rule() -> None:
    """Layer l of a per-layer genome acts exactly like the shared genome g_l on that layer."""
    spec = blur.NetworkSpec(SIZES, K, forward_activation="tanh", last_activation="tanh",
                            per_layer_genome=True)
    layers = [rich_genome(jax.random.key(10 + l), K) for l in range(spec.num_layers)]
    per = blur.stack_layers(layers)
    state = blur.init_state(jax.random.key(3), per, spec, B)
    # init_scale is per layer: |w| <= init_scale of that layer
    for l, g in enumerate(layers):
        assert float(jnp.max(jnp.abs(state.w_fwd[l]))) <= float(g.init_scale) + 1e-7
    batch = _batch(7)
    out = blur.forward(per, spec, state, batch.x)
    for l, g in enumerate(layers):
        # one shared-genome layer n_l -> n_{l+1} with rule g_l, fed the per-layer net's layer l
        want = ref_forward(g, blur.NetworkSpec(SIZES[l: l + 2], K, last_activation="tanh"),
                           [state.w_fwd[l]], np.zeros((B, SIZES[l])), prev=None,
                           input_layer=np.asarray(out[l], np.float64))[-1]
        np.testing.assert_allclose(out[l + 1], want, rtol=RTOL, atol=ATOL)
    # and the layers really differ: the shared genome of layer 0 gives another output
    alt = blur.forward(layers[0], spec.replace(per_layer_genome=False), state, batch.x)[-1]
    assert not np.allclose(alt, out[-1], atol=1e-3)


def test_per_layer_hebbian_uses_each_layers_rule() -> None:
    spec = blur.NetworkSpec(SIZES, K, per_layer_genome=True)
    layers = [rich_genome(jax.random.key(20 + l), K) for l in range(spec.num_layers)]
    per = blur.stack_layers(layers)
    state = blur.init_state(jax.random.key(3), per, spec, B)
    batch = _batch(8)
    new, _ = blur.step(per, spec, state, batch)
    fwd = blur.forward(per, spec, state, batch.x)
    neurons = blur.backward(per, spec, state, blur.feedback(spec, fwd, batch.y))
    for l, g in enumerate(layers):
        pre = np.concatenate([np.asarray(neurons[l], np.float64), np.ones((B, 1, K))], axis=1)
        want = ref_hebbian_update(np_genome(g), spec, pre, np.asarray(neurons[l + 1], np.float64),
                                  state.w_fwd[l], spec.layer_sizes[l] + 1)
        np.testing.assert_allclose(new.w_fwd[l], want, rtol=RTOL, atol=ATOL)


def test_forward_reference_sanity() -> None:
    """The reference itself is not vacuous: a wrong nu orientation is detected."""
    spec = blur.NetworkSpec(SIZES, K)
    genome, state = _setup(spec)
    batch = _batch(0)
    good = ref_forward(genome, spec, state.w_fwd, batch.x)
    bad = ref_forward(genome.replace(nu=genome.nu.T), spec, state.w_fwd, batch.x)
    got = blur.forward(genome, spec, state, batch.x)
    np.testing.assert_allclose(got[-1], good[-1], rtol=RTOL, atol=ATOL)
    assert not np.allclose(got[-1], bad[-1], rtol=RTOL, atol=ATOL)


@pytest.mark.slow  # 29 s; CI runs it in its slow step (.ci/run)
def test_asymmetric_hebbian_leaves_unread_input_backward_weights_alone():
    # w_bwd[0] would write the input layer, which is never updated; w_bwd[1] is read.
    spec = blur.NetworkSpec((3, 4, 5, 2), 2)
    genome = blur.random_genome(jax.random.PRNGKey(0), 2, eta_tilde=0.5)
    state = blur.init_state(jax.random.PRNGKey(1), genome, spec, batch_size=6)
    x = jax.random.normal(jax.random.PRNGKey(2), (6, 3))
    y = jnp.arange(6) % 2
    new, _ = blur.step(genome, spec, state, blur.Batch(x, y))
    assert np.array_equal(np.asarray(new.w_bwd[0]), np.asarray(state.w_bwd[0]))
    assert not np.allclose(np.asarray(new.w_bwd[1]), np.asarray(state.w_bwd[1]))
    # and nothing reads it: another w_bwd[0] gives the same step
    other = state.replace(w_bwd=(state.w_bwd[0] * 3.0 + 1.0, *state.w_bwd[1:]))
    new_other, _ = blur.step(genome, spec, other, blur.Batch(x, y))
    for a, b in zip(new.w_fwd, new_other.w_fwd, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("shape", [(4, 4), (1, 4), (4, 1), (2, 3)])
def test_state_mixing_values_and_derivatives_match_the_einsum(shape):
    # _mix runs unrolled and carries its own JVP (the einsum's); a JVP rule that dropped or
    # mis-shaped a term would make meta-gradients (reverse) or the symmetry test's Jacobians
    # (forward) wrong while the values stayed right.
    km, ka, kt = jax.random.split(jax.random.key(0), 3)
    m = jax.random.normal(km, shape)
    a = jax.random.normal(ka, (shape[1], 3, 5))

    def ref(m, a):
        return jnp.einsum("cd,d...->c...", m, a)

    def f(mix):
        return lambda m, a: jnp.sum(jnp.sin(mix(m, a)) * jnp.arange(15.0).reshape(3, 5))

    np.testing.assert_allclose(rules._mix(m, a), ref(m, a), rtol=1e-6, atol=1e-6)
    for got, want in zip(
        jax.grad(f(rules._mix), argnums=(0, 1))(m, a),
        jax.grad(f(ref), argnums=(0, 1))(m, a),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for got, want in zip(
        jax.jacfwd(rules._mix, argnums=(0, 1))(m, a),
        jax.jacfwd(ref, argnums=(0, 1))(m, a),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    _, tangent = jax.jvp(rules._mix, (m, a), (jnp.ones_like(m), jax.random.normal(kt, a.shape)))
    _, want_t = jax.jvp(ref, (m, a), (jnp.ones_like(m), jax.random.normal(kt, a.shape)))
    np.testing.assert_allclose(tangent, want_t, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("K", [1, 2, 4])
def test_input_product_values_and_derivatives_match_the_broadcast(K):
    # The first layer's ν^{c0} (x W) is a dot_general (an outer product) for speed; it must be
    # the broadcast product in value, gradient and forward derivative, and keep [K, B, n].
    kn, kx = jax.random.split(jax.random.key(1))
    nu0 = jax.random.normal(kn, (K,))
    xw = jax.random.normal(kx, (3, 5))

    def ref(nu0, xw):
        return nu0[:, None, None] * xw[None]

    def f(prod):
        return lambda nu0, xw: jnp.sum(jnp.sin(prod(nu0, xw)) * jnp.arange(15.0).reshape(3, 5))

    got = rules._input_product(nu0, xw)
    assert got.shape == (K, 3, 5)
    np.testing.assert_allclose(got, ref(nu0, xw), rtol=1e-6, atol=1e-6)
    for g, w in zip(jax.grad(f(rules._input_product), argnums=(0, 1))(nu0, xw),
                    jax.grad(f(ref), argnums=(0, 1))(nu0, xw), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    for g, w in zip(jax.jacfwd(rules._input_product, argnums=(0, 1))(nu0, xw),
                    jax.jacfwd(ref, argnums=(0, 1))(nu0, xw), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("argnums", [(0, 1, 2), (0,), (2,), (1,)])
def test_input_channel_product_derivatives_match_the_scaled_input_form(argnums):
    # Multi-channel synapses: the first layer's (ν^{c0} x) W^c runs as K matmuls of the shared
    # input, each scaled after; with any subset of arguments differentiated, its value,
    # gradient and forward Jacobian are those of the scaled-input form.
    kn, kx, kw = jax.random.split(jax.random.key(2), 3)
    nu0 = jax.random.normal(kn, (3,))
    x = jax.random.normal(kx, (4, 5))
    w = jax.random.normal(kw, (3, 5, 2))

    def ref(nu0, x, w):
        return jnp.einsum("cbi,cij->cbj", nu0[:, None, None] * x[None], w)

    def f(prod):
        return lambda *a: jnp.sum(jnp.sin(prod(*a)) * jnp.arange(8.0).reshape(4, 2))

    args = (nu0, x, w)
    np.testing.assert_allclose(rules._input_channel_product(*args), ref(*args), rtol=1e-5,
                               atol=1e-5)
    for g, want in zip(jax.grad(f(rules._input_channel_product), argnums=argnums)(*args),
                       jax.grad(f(ref), argnums=argnums)(*args), strict=True):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)
    for g, want in zip(jax.jacfwd(rules._input_channel_product, argnums=argnums)(*args),
                       jax.jacfwd(ref, argnums=argnums)(*args), strict=True):
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5)
