"""The four parts of a BLUR step: forward, feedback, backward and Hebbian synapse update.

Paper: Sandler et al. 2021 (arXiv 2104.04657), eqs. (5)-(8) and §3.3-§3.4. Each function acts on
one network; populations come from ``jax.vmap``. Shapes: B batch, n_l layer widths, K states.

  forward (eq. 5):  a_j^c ← σ(f·a_j^c + η Σ_{i,d} w_ij^c ν^{cd} a_i^d)
  backward (eq. 6): a_i^c ← σ(f·a_i^c + η Σ_{j,d} w_ji^c μ^{cd} a_j^d)
  hebbian (eq. 7):  w_ij^c ← f̃·w_ij^c + η̃ Σ_b Σ_{e,d} a_i^e ν̃^{ec} μ̃^{cd} a_j^d
  oja (eq. 8, first term, App. C.5): Δw_ij^c -= sign(η̃)|ω| w_ij^c Σ_b (Σ_d μ̃^{cd} a_j^d)²

Each pass first mixes states (a [B, n, K] @ ν^T, cheap) and then does K channel matmuls as one
batched einsum, so a step costs about K backprop steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from blur.activations import get_activation
from blur.genome import Genome
from blur.network import NetworkSpec, NetworkState, fan_in, single_state, tie_backward

_EPS = 1e-5


def _g(genome: Genome, spec: NetworkSpec, layer: int) -> Genome:
    return genome.layer(layer) if spec.per_layer_genome else genome


def normalize(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
    """Per-state normalisation over batch and neurons, then a learnable affine (§3.4).

    Args:
      x: [B, n, K] pre-activations.
      shift, scale: [K] learnable mean and deviation.

    Returns:
      [B, n, K]; before the affine every state has zero mean and unit variance.
    """
    mean = jnp.mean(x, axis=(0, 1), keepdims=True)
    var = jnp.var(x, axis=(0, 1), keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + _EPS) * scale + shift


def normalize_synapses(w: jax.Array) -> jax.Array:
    """Unit L2 norm over the input axis (App. C.6): w_ij / sqrt(Σ_i' w_i'j²).

    w: [n_in, n_out, K] -> same shape.
    """
    return w * jax.lax.rsqrt(jnp.sum(w * w, axis=0, keepdims=True) + 1e-9)


def channel_einsum(pattern: str, a: jax.Array, b: jax.Array) -> jax.Array:
    """``jnp.einsum(pattern, a, b)`` for patterns whose last index ``c`` (the synapse channel)
    is a batch index on every operand, e.g. ``'bic,ijc->bjc'``.

    On CPU, XLA's batched matmul with the batch axis last is about 30% slower than K plain
    matmuls (benchmarks/inner_step.py), so there the K channels are separate matmuls; other
    backends get the single batched einsum. Same values either way.
    """
    if jax.default_backend() != "cpu":
        return jnp.einsum(pattern, a, b)
    plain = pattern.replace("c", "")
    return jnp.stack(
        [jnp.einsum(plain, a[..., c], b[..., c]) for c in range(a.shape[-1])], axis=-1
    )


def _with_bias(spec: NetworkSpec, a: jax.Array) -> jax.Array:
    if not spec.bias:
        return a
    ones = jnp.ones((*a.shape[:-2], 1, a.shape[-1]), a.dtype)
    return jnp.concatenate([a, ones], axis=-2)


def input_layer(spec: NetworkSpec, x: jax.Array) -> jax.Array:
    """Input neurons [B, n_0, K]: x [B, n_0] in state 0, other states 0 (reference step 1)."""
    pad = jnp.zeros((*x.shape, spec.num_states - 1), jnp.float32)
    return jnp.concatenate([x.astype(jnp.float32)[..., None], pad], axis=-1)


def forward(
    genome: Genome, spec: NetworkSpec, state: NetworkState, x: jax.Array
) -> tuple[jax.Array, ...]:
    """Forward pass (eq. 5): writes every layer above the input, bottom up.

    Args:
      genome: the rule.
      spec: the network.
      state: synapses, and neurons (used when ``reset_neurons`` is False).
      x: [B, n_0] inputs.

    Returns:
      neurons: tuple of [B, n_l, K]; the prediction is ``neurons[-1][..., 0]``.
    """
    B = x.shape[0]
    layers = [input_layer(spec, x)]
    for l in range(spec.num_layers):
        g = _g(genome, spec, l)
        w = state.w_fwd[l]
        if "normalize" in spec.synapse_stabiliser:
            w = normalize_synapses(w)
        mixed = _with_bias(spec, layers[-1]) @ g.nu.T  # [B, n_l+1, K]: Σ_d ν^{cd} a^d
        u = channel_einsum("bic,ijc->bjc", mixed, w)  # Eq. (5): Σ_i w_ij^c (ν a_i)^c
        if spec.reset_neurons:
            z = g.eta * u
        else:
            prev = state.neurons[l + 1]
            if prev.shape[0] != B:
                prev = jnp.zeros((B, *prev.shape[1:]), prev.dtype)
            z = g.f * prev + g.eta * u
        if spec.neuron_norm in ("forward", "both"):
            z = normalize(z, g.fwd_norm_shift, g.fwd_norm_scale)
        last = l == spec.num_layers - 1
        act = get_activation(spec.last_activation if last else spec.forward_activation)
        layers.append(act(z))
    return tuple(layers)


def feedback(
    spec: NetworkSpec, neurons: tuple[jax.Array, ...], y: jax.Array
) -> tuple[jax.Array, ...]:
    """Write the ground truth into output state 1 (paper §3.3); zero states 2..K-1.

    Args:
      spec: the network (``feedback`` picks what is written).
      neurons: from :func:`forward`; the output layer is [B, n_L, K].
      y: [B] integer class ids.

    Returns:
      neurons with the output layer = [prediction, signal, 0, ...], where signal is the ±1
      one-hot label, one-hot - prediction, or one-hot - softmax(prediction).
    """
    out = neurons[-1]
    pred = out[..., 0]
    onehot = jax.nn.one_hot(y, spec.num_outputs, dtype=jnp.float32)
    if spec.feedback == "label":
        signal = 2.0 * onehot - 1.0
    elif spec.feedback == "error":
        signal = onehot - pred
    else:
        signal = onehot - jax.nn.softmax(pred, axis=-1)
    rest = jnp.zeros((*pred.shape, spec.num_states - 2), jnp.float32)
    top = jnp.concatenate([pred[..., None], signal[..., None], rest], axis=-1)
    return (*neurons[:-1], top)


def backward(
    genome: Genome, spec: NetworkSpec, state: NetworkState, neurons: tuple[jax.Array, ...]
) -> tuple[jax.Array, ...]:
    """Backward pass (eq. 6): top down, rewrites hidden layers L-1..1 from the layer above.

    The output layer (written by feedback) and the input layer are not changed.

    Args:
      genome, spec, state: as in :func:`forward`.
      neurons: tuple of [B, n_l, K] after :func:`feedback`.

    Returns:
      neurons after the backward pass.
    """
    layers = list(neurons)
    act = get_activation(spec.backward_activation)
    for l in range(spec.num_layers - 1, 0, -1):
        g = _g(genome, spec, l)
        w = state.w_bwd[l]  # [n_{l+1}, n_l, K]
        if "normalize" in spec.synapse_stabiliser:
            w = normalize_synapses(w)
        mixed = layers[l + 1] @ g.mu.T  # [B, n_{l+1}, K]: Σ_d μ^{cd} a^d
        v = channel_einsum("bjc,jic->bic", mixed, w)  # Eq. (6): Σ_j w_ji^c (μ a_j)^c
        a = layers[l]
        if spec.backward_update == "additive":
            z = g.f * a + g.eta * v
        elif spec.backward_update == "multiplicative":
            z = g.f * a * v
        else:  # multiplicative_second_state: state 0 passes, states 1.. are gated by v
            z = g.f * jnp.concatenate([a[..., :1], a[..., 1:] * v[..., 1:]], axis=-1)
        if spec.neuron_norm in ("backward", "both"):
            z = normalize(z, g.bwd_norm_shift, g.bwd_norm_scale)
        layers[l] = act(z)
    return tuple(layers)


def hebbian_update(
    genome: Genome, spec: NetworkSpec, pre: jax.Array, post: jax.Array, w: jax.Array, fan: int
) -> jax.Array:
    """One synapse matrix's update (eqs. 7-8) and stabilisers.

    Args:
      genome: the rule for this layer.
      spec: the network.
      pre: [B, n_pre, K] pre-synaptic neurons (bias unit included where the synapse has one).
      post: [B, n_post, K] post-synaptic neurons.
      w: [n_pre, n_post, K] current synapses.
      fan: the synapses' fan-in, for ``fan_in_scaling``.

    Returns:
      [n_pre, n_post, K] new synapses.
    """
    p = pre @ genome.nu_tilde  # [B, n_pre, K]: Σ_e a_i^e ν̃^{ec}
    q = post @ genome.mu_tilde.T  # [B, n_post, K]: Σ_d μ̃^{cd} a_j^d
    hebb = channel_einsum("bic,bjc->ijc", p, q)  # Eq. (7), summed over the batch
    if "oja" in spec.synapse_stabiliser:  # Eq. (8), first term with a learnable multiplier
        hebb = (
            hebb
            - jnp.sign(genome.eta_tilde) * jnp.abs(genome.oja) * w * jnp.sum(q * q, axis=0)[None]
        )
    if spec.hebbian_reduce == "mean":
        hebb = hebb / pre.shape[0]
    keep = genome.f_tilde
    if spec.synapse_keep_max is not None:
        keep = jnp.minimum(keep, spec.synapse_keep_max)
    rate = genome.eta_tilde / fan if spec.fan_in_scaling else genome.eta_tilde
    w = keep * w + rate * hebb
    if "saturate" in spec.synapse_stabiliser:
        alpha = jnp.abs(genome.alpha) + 1e-6
        w = alpha * jnp.tanh(w / alpha)
    if spec.single_state_synapses:
        w = single_state(w)
    return w


def hebbian(
    genome: Genome, spec: NetworkSpec, state: NetworkState, neurons: tuple[jax.Array, ...]
) -> NetworkState:
    """Hebbian update of every synapse layer from the post-backward neuron states.

    Forward synapse i→j takes pre = a^l (with the bias unit), post = a^{l+1}; backward synapse
    j→i takes pre = a^{l+1}, post = a^l. Symmetric networks update the forward weights and tie
    the backward ones to them. ``w_bwd[0]`` is never read (the input layer is not updatable)
    and is not updated.

    Returns:
      the new state, holding ``neurons`` and the updated synapses.
    """
    w_fwd, w_bwd = [], []
    for l in range(spec.num_layers):
        g = _g(genome, spec, l)
        fan_f, fan_b = fan_in(spec, l)
        lower, upper = neurons[l], neurons[l + 1]
        wf = hebbian_update(g, spec, _with_bias(spec, lower), upper, state.w_fwd[l], fan_f)
        if spec.symmetric_synapses:
            wb = tie_backward(spec, wf)
        elif l == 0:
            # w_bwd[0] would write the input layer, which the backward pass never updates, so
            # nothing reads it: leaving it as initialised saves a third of the Hebbian work of
            # a one-hidden-layer network.
            wb = state.w_bwd[0]
        else:
            wb = hebbian_update(g, spec, upper, lower, state.w_bwd[l], fan_b)
        w_fwd.append(wf)
        w_bwd.append(wb)
    return NetworkState(neurons=tuple(neurons), w_fwd=tuple(w_fwd), w_bwd=tuple(w_bwd))
