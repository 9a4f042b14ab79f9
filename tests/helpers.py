"""Shared test helpers: pytree comparison and a loop-based NumPy reference of the BLUR rules.

The reference below is written from the paper's equations (5)-(8) with explicit Python loops over
neurons, states and channels, in float64. It shares no code with ``blur.rules`` (which uses
einsums), so agreement between the two is a real check of the index conventions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

import blur

NORM_EPS = 1e-5  # the variance epsilon of blur.rules.normalize


def tree_allclose(a: Any, b: Any, rtol: float = 1e-6, atol: float = 0.0) -> bool:
    """True if two pytrees have the same structure and every pair of leaves is allclose.

    NaN equals NaN at the same position (e.g. ``StepMetrics.query_accuracy`` without a query);
    a NaN against a number is a difference."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    if ta != tb:
        return False
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
            return False
    return True


def assert_tree_allclose(a: Any, b: Any, rtol: float = 1e-6, atol: float = 0.0) -> None:
    """Assert :func:`tree_allclose`, reporting the first differing leaf and its worst error."""
    la, ta = jax.tree_util.tree_flatten_with_path(a)
    lb, tb = jax.tree_util.tree_flatten_with_path(b)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b), (ta, tb)
    for (path, x), (_, y) in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        name = jax.tree_util.keystr(path)
        assert x.shape == y.shape, f"{name}: shape {x.shape} != {y.shape}"
        if not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
            err = np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))
            raise AssertionError(f"{name}: max abs error {err:.3g} (rtol={rtol}, atol={atol})")


# ----------------------------------------------------------------------- NumPy reference


def np_genome(genome: blur.Genome) -> dict[str, np.ndarray]:
    """A (shared, per-layer-sliced) genome as a dict of float64 arrays."""
    return {k: np.asarray(v, np.float64) for k, v in vars(genome).items()}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def ref_activation(name: str, x: np.ndarray) -> np.ndarray:
    """The activations of blur.activations, from their textbook formulas. x: [..., K]."""
    x = np.asarray(x, np.float64)
    unitary = {
        "relu": lambda v: np.maximum(v, 0.0),
        "tanh": np.tanh,
        "sigmoid": _sigmoid,
        "linear": lambda v: v,
        "relu_tanh": lambda v: np.maximum(np.tanh(v), 0.0),
    }
    if name in unitary:
        return unitary[name](x)
    fn, dfn = {
        "binary_sigmoid": (_sigmoid, lambda v: _sigmoid(v) * (1.0 - _sigmoid(v))),
        "binary_tanh": (np.tanh, lambda v: 1.0 / np.cosh(v) ** 2),
        "binary_relu": (lambda v: np.maximum(v, 0.0), lambda v: (v > 0).astype(np.float64)),
    }[name]
    out = dfn(x)
    out[..., 0] = fn(x[..., 0])
    return out


def ref_normalize(x: np.ndarray, shift: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per-state normalisation over batch and neurons, then shift/scale. x: [B, n, K]."""
    out = np.empty_like(x)
    for c in range(x.shape[-1]):
        v = x[..., c]
        out[..., c] = (v - v.mean()) / np.sqrt(v.var() + NORM_EPS) * scale[c] + shift[c]
    return out


def _layer_genome(genome: blur.Genome, spec: blur.NetworkSpec, layer: int) -> dict:
    g = np_genome(genome)
    if spec.per_layer_genome:
        return {k: v[layer] for k, v in g.items()}
    return g


def _unit_columns(w: np.ndarray) -> np.ndarray:
    out = np.empty_like(w)
    for j in range(w.shape[1]):
        for c in range(w.shape[2]):
            out[:, j, c] = w[:, j, c] / np.sqrt(np.sum(w[:, j, c] ** 2) + 1e-9)
    return out


def _add_bias(spec: blur.NetworkSpec, a: np.ndarray) -> np.ndarray:
    if not spec.bias:
        return a
    ones = np.ones((a.shape[0], 1, a.shape[2]))
    return np.concatenate([a, ones], axis=1)


def ref_forward(
    genome: blur.Genome,
    spec: blur.NetworkSpec,
    w_fwd: Sequence[Any],
    x: Any,
    prev: Sequence[Any] | None = None,
    input_layer: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Eq. (5) with loops: a_j^c <- act(f a_j^c + eta sum_{i,d} w_ij^c nu^{cd} a_i^d).

    ``input_layer`` [B, n_0, K] replaces the usual input layer (x in state 0, zeros elsewhere).
    """
    x = np.asarray(x, np.float64)
    B, K = x.shape[0], spec.num_states
    a0 = np.zeros((B, x.shape[1], K))
    a0[..., 0] = x
    layers = [a0 if input_layer is None else np.asarray(input_layer, np.float64)]
    for l in range(spec.num_layers):
        g = _layer_genome(genome, spec, l)
        w = np.asarray(w_fwd[l], np.float64)
        if "normalize" in spec.synapse_stabiliser:
            w = _unit_columns(w)
        a = _add_bias(spec, layers[-1])
        n_in, n_out = w.shape[0], w.shape[1]
        u = np.zeros((B, n_out, K))
        for b in range(B):
            for j in range(n_out):
                for c in range(K):
                    u[b, j, c] = sum(
                        w[i, j, c] * g["nu"][c, d] * a[b, i, d]
                        for i in range(n_in)
                        for d in range(K)
                    )
        z = g["eta"] * u
        if not spec.reset_neurons:
            z = z + g["f"] * np.asarray(prev[l + 1], np.float64)
        last = l == spec.num_layers - 1
        if spec.neuron_norm in ("forward", "both") and (spec.norm_output or not last):
            z = ref_normalize(z, g["fwd_norm_shift"], g["fwd_norm_scale"])
        layers.append(ref_activation(spec.last_activation if last else spec.forward_activation, z))
    return layers


def ref_feedback(spec: blur.NetworkSpec, layers: list[np.ndarray], y: Any) -> list[np.ndarray]:
    """Output = [prediction, signal, 0, ...] with the paper's / blur's feedback signals."""
    y = np.asarray(y)
    out = layers[-1]
    pred = out[..., 0]
    B, C = pred.shape
    onehot = np.zeros((B, C))
    onehot[np.arange(B), y] = 1.0
    if spec.feedback == "label":
        signal = 2.0 * onehot - 1.0
    elif spec.feedback == "error":
        signal = onehot - pred
    else:
        e = np.exp(pred - pred.max(axis=1, keepdims=True))
        signal = onehot - e / e.sum(axis=1, keepdims=True)
    top = np.zeros_like(out)
    top[..., 0] = pred
    top[..., 1] = signal
    return [*layers[:-1], top]


def ref_backward(
    genome: blur.Genome, spec: blur.NetworkSpec, w_bwd: Sequence[Any], layers: list[np.ndarray]
) -> list[np.ndarray]:
    """Eq. (6) with loops, top down over hidden layers, in the three update modes."""
    layers = [np.array(a) for a in layers]
    K = spec.num_states
    for l in range(spec.num_layers - 1, 0, -1):
        g = _layer_genome(genome, spec, l)
        w = np.asarray(w_bwd[l], np.float64)  # [n_{l+1}, n_l, K]
        if "normalize" in spec.synapse_stabiliser:
            w = _unit_columns(w)
        upper, a = layers[l + 1], layers[l]
        B, n_up, n_lo = a.shape[0], w.shape[0], w.shape[1]
        v = np.zeros((B, n_lo, K))
        for b in range(B):
            for i in range(n_lo):
                for c in range(K):
                    v[b, i, c] = sum(
                        w[j, i, c] * g["mu"][c, d] * upper[b, j, d]
                        for j in range(n_up)
                        for d in range(K)
                    )
        if spec.backward_update == "additive":
            z = g["f"] * a + g["eta"] * v
        elif spec.backward_update == "multiplicative":
            z = g["f"] * a * v
        else:
            z = g["f"] * a.copy()
            z[..., 1:] = g["f"] * a[..., 1:] * v[..., 1:]
        if spec.neuron_norm in ("backward", "both"):
            z = ref_normalize(z, g["bwd_norm_shift"], g["bwd_norm_scale"])
        layers[l] = ref_activation(spec.backward_activation, z)
    return layers


def ref_hebbian_update(
    g: dict, spec: blur.NetworkSpec, pre: np.ndarray, post: np.ndarray, w: Any, fan: int
) -> np.ndarray:
    """Eqs. (7)-(8) with loops for one synapse matrix w [n_pre, n_post, K]."""
    w = np.asarray(w, np.float64)
    B, n_pre, K = pre.shape
    n_post = post.shape[1]
    hebb = np.zeros_like(w)
    for i in range(n_pre):
        for j in range(n_post):
            for c in range(K):
                total = 0.0
                for b in range(B):
                    p = sum(pre[b, i, e] * g["nu_tilde"][e, c] for e in range(K))
                    q = sum(g["mu_tilde"][c, d] * post[b, j, d] for d in range(K))
                    total += p * q
                    if "oja" in spec.synapse_stabiliser:
                        total -= np.sign(g["eta_tilde"]) * abs(g["oja"]) * w[i, j, c] * q * q
                hebb[i, j, c] = total
    if spec.hebbian_reduce == "mean":
        hebb = hebb / B
    keep = g["f_tilde"]
    if spec.synapse_keep_max is not None:
        keep = min(keep, spec.synapse_keep_max)
    rate = g["eta_tilde"] / fan if spec.fan_in_scaling else g["eta_tilde"]
    w_new = keep * w + rate * hebb
    if "saturate" in spec.synapse_stabiliser:
        alpha = abs(g["alpha"]) + 1e-6
        w_new = alpha * np.tanh(w_new / alpha)
    if spec.single_state_synapses:
        w_new = np.repeat(w_new[..., :1], K, axis=-1)
    return w_new


def ref_hebbian(
    genome: blur.Genome,
    spec: blur.NetworkSpec,
    w_fwd: Sequence[Any],
    w_bwd: Sequence[Any],
    layers: list[np.ndarray],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """New (w_fwd, w_bwd) for every synapse layer."""
    new_f, new_b = [], []
    for l in range(spec.num_layers):
        g = _layer_genome(genome, spec, l)
        lower, upper = layers[l], layers[l + 1]
        fan_f = spec.layer_sizes[l] + int(spec.bias)
        fan_b = spec.layer_sizes[l + 1]
        wf = ref_hebbian_update(g, spec, _add_bias(spec, lower), upper, w_fwd[l], fan_f)
        if spec.symmetric_synapses:
            wb = np.transpose(wf[: spec.layer_sizes[l]], (1, 0, 2))
        elif l == 0:  # feeds the input layer, which is never updated: never read, kept as is
            wb = np.asarray(w_bwd[0], np.float64)
        else:
            wb = ref_hebbian_update(g, spec, upper, lower, w_bwd[l], fan_b)
        new_f.append(wf)
        new_b.append(wb)
    return new_f, new_b


def ref_step(
    genome: blur.Genome, spec: blur.NetworkSpec, state: blur.NetworkState, x: Any, y: Any,
    t: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """One reference BLUR step ``t`` (0 for a fresh network): (neurons, w_fwd, w_bwd).

    With ``spec.unsupervised_update`` the Hebbian update is applied once to the forward
    neurons (before the feedback) and the rest of the step starts from those synapses. With
    ``spec.hebbian_decay`` = d every synapse moves 1 / (1 + d t) of its change.
    """
    prev = None if spec.reset_neurons else state.neurons
    layers = ref_forward(genome, spec, state.w_fwd, x, prev)
    w_fwd, w_bwd = list(state.w_fwd), list(state.w_bwd)
    if spec.unsupervised_update:
        w_fwd, w_bwd = ref_hebbian(genome, spec, w_fwd, w_bwd, layers)
    layers = ref_feedback(spec, layers, y)
    layers = ref_backward(genome, spec, w_bwd, layers)
    w_fwd, w_bwd = ref_hebbian(genome, spec, w_fwd, w_bwd, layers)
    if spec.hebbian_decay:
        r = 1.0 / (1.0 + spec.hebbian_decay * t)
        w_fwd = [w0 + r * (w1 - w0) for w0, w1 in zip(state.w_fwd, w_fwd, strict=True)]
        w_bwd = [w0 + r * (w1 - w0) for w0, w1 in zip(state.w_bwd, w_bwd, strict=True)]
    return layers, w_fwd, w_bwd


def rich_genome(key: jax.Array, num_states: int, num_layers: int | None = None) -> blur.Genome:
    """A random genome whose scalar gates and normalisation affine are all non-trivial.

    With f = eta = f~ = 1 a forgotten gate would go unnoticed; here every field differs from its
    neutral value (and, for a per-layer genome, from layer to layer).
    """
    K = num_states
    lead = () if num_layers is None else (num_layers,)
    keys = jax.random.split(key, 4)
    g = blur.random_genome(keys[0], K, num_layers)
    ks = jax.random.split(keys[1], 4)
    scalars = jax.random.uniform(keys[2], (7, *lead), minval=0.6, maxval=1.4)
    return g.replace(
        f=scalars[0] * 0.8,
        eta=scalars[1] * 1.2,
        f_tilde=scalars[2] * 0.9,
        eta_tilde=scalars[3] * 0.05,
        oja=scalars[4] * 0.5,
        alpha=scalars[5],
        init_scale=scalars[6] * 0.6,
        fwd_norm_shift=0.3 * jax.random.normal(ks[0], (*lead, K)),
        fwd_norm_scale=jax.random.uniform(ks[1], (*lead, K), minval=0.5, maxval=1.5),
        bwd_norm_shift=0.3 * jax.random.normal(ks[2], (*lead, K)),
        bwd_norm_scale=jax.random.uniform(ks[3], (*lead, K), minval=0.5, maxval=1.5),
    )


def rich_setup(
    spec: blur.NetworkSpec, batch_size: int, steps: tuple[int, ...] = ()
) -> tuple[blur.Genome, blur.NetworkState, blur.Batch]:
    """A :func:`rich_genome` for ``spec``, fresh synapses, and a random batch x
    [*steps, B, n_0], y [*steps, B] (fixed keys)."""
    genome = rich_genome(jax.random.key(0), spec.num_states)
    state = blur.init_state(jax.random.key(1), genome, spec, batch_size)
    kx, ky = jax.random.split(jax.random.key(2))
    shape = (*steps, batch_size)
    batch = blur.Batch(x=jax.random.normal(kx, (*shape, spec.num_inputs)),
                       y=jax.random.randint(ky, shape, 0, spec.num_outputs))
    return genome, state, batch

