"""The four parts of a BLUR step: forward, feedback, backward and Hebbian synapse update.

Paper: Sandler et al. 2021 (arXiv 2104.04657), eqs. (5)-(8) and §3.3-§3.4. Each function acts on
one network; populations come from ``jax.vmap``. Shapes: B batch, n_l layer widths, K states.

  forward (eq. 5):  a_j^c ← σ(f·a_j^c + η Σ_{i,d} w_ij^c ν^{cd} a_i^d)
  backward (eq. 6): a_i^c ← σ(f·a_i^c + η Σ_{j,d} w_ji^c μ^{cd} a_j^d)
  hebbian (eq. 7):  w_ij^c ← f̃·w_ij^c + η̃ Σ_b Σ_{e,d} a_i^e ν̃^{ec} μ̃^{cd} a_j^d
  oja (eq. 8, first term, App. C.5): Δw_ij^c -= sign(η̃)|ω| w_ij^c Σ_b (Σ_d μ̃^{cd} a_j^d)²

The public functions take and return the channel-last layout of :class:`NetworkState`
(neurons [B, n, K]); the work is done by the ``cf_*`` functions on the channel-first layout of
:class:`blur.network.ChannelFirstState` (neurons [K, B, n], synapses [Kw, n_in, n_out]), which
``blur.step`` / ``blur.unroll`` call directly. There, mixing states is one [K, K] @ [K, B·n]
matmul, and the K synapse channels are one batched matmul with the channel as the leading
(contiguous) batch axis, so no channel slice is copied; a step costs about K backprop steps.
Single-state synapses store and update one channel (Kw = 1): their Hebbian update costs one
channel's, and the first layer's forward matmul (only input state 0 is non-zero) is done once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from blur.activations import apply_activation
from blur.genome import Genome
from blur.network import (
    ChannelFirstState,
    NetworkSpec,
    NetworkState,
    fan_in,
    from_channel_first,
    neurons_channel_first,
    neurons_channel_last,
    to_channel_first,
)

_EPS = 1e-5
Neurons = tuple[jax.Array, ...]


def _g(genome: Genome, spec: NetworkSpec, layer: int) -> Genome:
    return genome.layer(layer) if spec.per_layer_genome else genome


def unused_genome_fields(spec: NetworkSpec) -> dict[str, tuple[int, ...]]:
    """Genome values that a step under ``spec`` never reads: field -> synapse layers.

    Structural facts of eqs. (5)-(8) as implemented here, so a search (CMA-ES) need not spend
    dimensions on them:

    * the backward pass (eq. 6) rewrites hidden layers L-1..1 with layer l's genome, so layer
      0's backward values (``mu``, ``bwd_norm_*``) are never read: the input layer is fixed;
    * normalisation values of a pass that ``spec.neuron_norm`` leaves unnormalised, and the
      output layer's forward ones under ``spec.norm_output=False``;
    * ``oja`` without the ``oja`` stabiliser, ``alpha`` without ``saturate``.

    A shared genome reads a field as soon as one layer does: a field is unused by it only
    when every layer ``0..spec.num_layers-1`` is listed. Tested against the engine in
    ``tests/test_rules_unused.py`` (perturbing a listed value leaves a run unchanged).
    """
    every = tuple(range(spec.num_layers))
    unused: dict[str, tuple[int, ...]] = {"mu": (0,)}
    backward = every if spec.neuron_norm not in ("backward", "both") else (0,)
    unused["bwd_norm_shift"] = unused["bwd_norm_scale"] = backward
    if spec.neuron_norm not in ("forward", "both"):
        unused["fwd_norm_shift"] = unused["fwd_norm_scale"] = every
    elif not spec.norm_output:  # the output layer's forward pass is not normalised
        unused["fwd_norm_shift"] = unused["fwd_norm_scale"] = (spec.num_layers - 1,)
    if "oja" not in spec.synapse_stabiliser:
        unused["oja"] = every
    if "saturate" not in spec.synapse_stabiliser:
        unused["alpha"] = every
    return unused


def normalize(x: jax.Array, shift: jax.Array, scale: jax.Array, state_axis: int = -1) -> jax.Array:
    """Per-state normalisation over batch and neurons, then a learnable affine (§3.4).

    Args:
      x: [B, n, K] pre-activations (or [K, B, n] with ``state_axis=0``).
      shift, scale: [K] learnable mean and deviation.
      state_axis: where the K states are.

    Returns:
      x's shape; before the affine every state has zero mean and unit variance.
    """
    axes = tuple(a for a in range(x.ndim) if a != state_axis % x.ndim)
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.var(x, axis=axes, keepdims=True)
    shape = [1] * x.ndim
    shape[state_axis] = -1
    return (x - mean) * jax.lax.rsqrt(var + _EPS) * scale.reshape(shape) + shift.reshape(shape)


def normalize_synapses(w: jax.Array) -> jax.Array:
    """Unit L2 norm over the input axis (App. C.6): w_ij / sqrt(Σ_i' w_i'j²).

    w: [n_in, n_out, K] -> same shape.
    """
    return w * jax.lax.rsqrt(jnp.sum(w * w, axis=0, keepdims=True) + 1e-9)


def _mix_unrolled(m: jax.Array, a: jax.Array) -> jax.Array:
    """Σ_d m[c, d] a[d, ...] as D scaled adds of whole slices (one elementwise loop)."""
    C, D = m.shape
    ones = (1,) * (a.ndim - 1)
    out = m[:, 0].reshape(C, *ones) * a[0][None]
    for d in range(1, D):
        out = out + m[:, d].reshape(C, *ones) * a[d][None]
    return out


@jax.custom_jvp
def _mix(m: jax.Array, a: jax.Array) -> jax.Array:
    """Σ_d m[c, d] a[d, ...]: m [C, D], a [D, ...] -> [C, ...] (the genome's state mixing).

    Evaluated as D scaled adds of whole [B, n] slices, which XLA fuses into one elementwise
    loop; as an ``einsum`` with its contraction of length K <= 8, XLA:CPU turns it into a
    broadcast-multiply-reduce over a strided axis. Differentiated through the ``einsum``
    form (the custom JVP below), whose transpose keeps the genome's gradient a matmul over
    the batch and neurons; written unrolled, that gradient becomes reductions that made the
    mnist10 meta-step 65% slower (benchmarks/OUTER_BOUNDS.md). Same values either way up to
    float rounding.
    """
    return _mix_unrolled(m, a)


@_mix.defjvp
def _mix_jvp(
    primals: tuple[jax.Array, jax.Array], tangents: tuple[jax.Array, jax.Array]
) -> tuple[jax.Array, jax.Array]:
    m, a = primals
    dm, da = tangents
    tangent = jnp.einsum("cd,d...->c...", dm, a) + jnp.einsum("cd,d...->c...", m, da)
    return _mix_unrolled(m, a), tangent


def _channel_matmul(a: jax.Array, w: jax.Array, transpose_w: bool = False) -> jax.Array:
    """Per-channel a^c @ w^c: a [K, B, n], w [Kw, n, m] (or [Kw, m, n] with ``transpose_w``)
    -> [K, B, m]. Kw = 1 shares one matrix across channels: a single [K·B, n] @ [n, m]."""
    if w.shape[0] == 1:
        return jnp.einsum("cbi,ji->cbj" if transpose_w else "cbi,ij->cbj", a, w[0])
    return jnp.einsum("cbi,cji->cbj" if transpose_w else "cbi,cij->cbj", a, w)


def _act(name: str, z: jax.Array) -> jax.Array:
    return apply_activation(name, z, state_axis=0)


def _input_product(nu0: jax.Array, xw: jax.Array) -> jax.Array:
    """ν^{c0} (x W) for every state c: [K] and [B, n] -> [K, B, n] (eq. 5, first layer).

    An outer product written as a ``dot_general`` (contraction of length 1), so that its
    transpose, Σ_c ν^{c0} ∂u^c in the meta-gradient, is a [1, K] @ [K, B·n] product. Written
    as a broadcast multiply, XLA:CPU ran that transpose as a strided reduction over the state
    axis: the largest thunk of the mnist10 meta-step, which is 15% faster this way
    (benchmarks/outer_bounds_tried/). Same values either way.
    """
    out = jax.lax.dot_general(nu0[:, None], xw.reshape(1, -1), (((1,), (0,)), ((), ())))
    return out.reshape(nu0.shape[0], *xw.shape)


def _input_channel_product(nu0: jax.Array, x: jax.Array, w: jax.Array) -> jax.Array:
    """ν^{c0} (x W^c) for every channel c: [K], [B, n] and [K, n, m] -> [K, B, m] (eq. 5,
    first layer, one synapse matrix per channel).

    K matmuls of the shared input, each scaled after. Scaling the input first, (ν^{c0} x) W^c
    as one batched matmul, saves a [K, B, n] copy of the input at every step of a
    meta-gradient and takes ν's gradient as a reduction over it: the C2 meta-gradient is 6-9%
    faster this way, a CMA-ES generation the same (benchmarks/outer_bounds_tried/). Same
    values up to float rounding.
    """
    return jnp.stack([nu0[c] * (x @ w[c]) for c in range(w.shape[0])])


def cf_forward(
    genome: Genome, spec: NetworkSpec, state: ChannelFirstState, x: jax.Array
) -> Neurons:
    """Forward pass (eq. 5) in the channel-first layout: writes every layer above the input.

    Args:
      genome: the rule.
      spec: the network.
      state: synapses, and neurons (read when ``reset_neurons`` is False).
      x: [B, n_0] inputs; the input layer holds x in state 0 and zeros elsewhere.

    Returns:
      neurons: tuple of [K, B, n_l]; the prediction is ``neurons[-1][0]``.
    """
    B = x.shape[0]
    K = spec.num_states
    x = x.astype(jnp.float32)
    layers = [jnp.concatenate([x[None], jnp.zeros((K - 1, *x.shape), jnp.float32)], axis=0)]
    for l in range(spec.num_layers):
        g = _g(genome, spec, l)
        w = state.w[l]  # [Kw, n_l, n_{l+1}]
        if l == 0 and w.shape[0] == 1:
            # Only input state 0 is non-zero: (ν a)^c = ν^{c0} x, so one shared matmul.
            u = _input_product(g.nu[:, 0], x @ w[0])
        elif l == 0:
            u = _input_channel_product(g.nu[:, 0], x, w)
        else:
            u = _channel_matmul(_mix(g.nu, layers[-1]), w)  # Eq. (5): Σ_i w_ij^c (ν a_i)^c
        sq = jnp.sum(w * w, axis=1) if "normalize" in spec.synapse_stabiliser else None
        if spec.bias:
            b = state.b[l]  # [Kw, n_{l+1}]; the bias unit is 1 in every state
            u = u + jnp.sum(g.nu, axis=1)[:, None, None] * b[:, None, :]
            sq = None if sq is None else sq + b * b
        if sq is not None:  # App. C.6: unit-norm incoming weights, applied to the sums
            u = u * jax.lax.rsqrt(sq + 1e-9)[:, None, :]
        if spec.reset_neurons:
            z = g.eta * u
        else:
            prev = state.neurons[l + 1]
            if prev.shape[1] != B:
                prev = jnp.zeros((prev.shape[0], B, prev.shape[2]), prev.dtype)
            z = g.f * prev + g.eta * u
        last = l == spec.num_layers - 1
        if spec.neuron_norm in ("forward", "both") and (spec.norm_output or not last):
            z = normalize(z, g.fwd_norm_shift, g.fwd_norm_scale, state_axis=0)
        layers.append(_act(spec.last_activation if last else spec.forward_activation, z))
    return tuple(layers)


def cf_feedback(spec: NetworkSpec, neurons: Neurons, y: jax.Array) -> Neurons:
    """:func:`feedback` in the channel-first layout (output layer [K, B, n_L])."""
    pred = neurons[-1][0]
    onehot = jax.nn.one_hot(y, spec.num_outputs, dtype=jnp.float32)
    if spec.feedback == "label":
        signal = 2.0 * onehot - 1.0
    elif spec.feedback == "error":
        signal = onehot - pred
    else:
        signal = onehot - jax.nn.softmax(pred, axis=-1)
    rest = jnp.zeros((spec.num_states - 2, *pred.shape), jnp.float32)
    return (*neurons[:-1], jnp.concatenate([pred[None], signal[None], rest], axis=0))


def cf_backward(
    genome: Genome, spec: NetworkSpec, state: ChannelFirstState, neurons: Neurons
) -> Neurons:
    """Backward pass (eq. 6) in the channel-first layout: rewrites hidden layers L-1..1."""
    layers = list(neurons)
    for l in range(spec.num_layers - 1, 0, -1):
        g = _g(genome, spec, l)
        mixed = _mix(g.mu, layers[l + 1])  # [K, B, n_{l+1}]: Σ_d μ^{cd} a^d
        if spec.symmetric_synapses:
            w = state.w[l]  # [Kw, n_l, n_{l+1}]: w_ji = w_fwd_ij (no bias row)
            v = _channel_matmul(mixed, w, transpose_w=True)
            sq_axis = 2
        else:
            w = state.wb[l - 1]  # [Kw, n_{l+1}, n_l]
            v = _channel_matmul(mixed, w)  # Eq. (6): Σ_j w_ji^c (μ a_j)^c
            sq_axis = 1
        if "normalize" in spec.synapse_stabiliser:
            v = v * jax.lax.rsqrt(jnp.sum(w * w, axis=sq_axis) + 1e-9)[:, None, :]
        a = layers[l]
        if spec.backward_update == "additive":
            z = g.f * a + g.eta * v
        elif spec.backward_update == "multiplicative":
            z = g.f * a * v
        else:  # multiplicative_second_state: state 0 passes, states 1.. are gated by v
            z = g.f * jnp.concatenate([a[:1], a[1:] * v[1:]], axis=0)
        if spec.neuron_norm in ("backward", "both"):
            z = normalize(z, g.bwd_norm_shift, g.bwd_norm_scale, state_axis=0)
        layers[l] = _act(spec.backward_activation, z)
    return tuple(layers)


def _settle(
    genome: Genome, spec: NetworkSpec, w: jax.Array, hebb: jax.Array, q_sq: jax.Array,
    fan: int, batch: int,
) -> jax.Array:
    """Eqs. (7)-(8) given the Hebbian sum ``hebb`` and Σ_b q² (broadcastable to ``w``)."""
    if "oja" in spec.synapse_stabiliser:  # Eq. (8), first term with a learnable multiplier
        hebb = hebb - jnp.sign(genome.eta_tilde) * jnp.abs(genome.oja) * w * q_sq
    if spec.hebbian_reduce == "mean":
        hebb = hebb / batch
    keep = genome.f_tilde
    if spec.synapse_keep_max is not None:
        keep = jnp.minimum(keep, spec.synapse_keep_max)
    rate = genome.eta_tilde / fan if spec.fan_in_scaling else genome.eta_tilde
    w = keep * w + rate * hebb
    if "saturate" in spec.synapse_stabiliser:
        alpha = jnp.abs(genome.alpha) + 1e-6
        w = alpha * jnp.tanh(w / alpha)
    return w


def cf_hebbian_update(
    genome: Genome, spec: NetworkSpec, pre: jax.Array, post: jax.Array, w: jax.Array,
    fan: int, b: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array | None]:
    """One synapse matrix's update (eqs. 7-8) and stabilisers, channel-first.

    Args:
      genome: the rule for this layer.
      spec: the network.
      pre: [K, B, n_pre] pre-synaptic neurons (without the bias unit).
      post: [K, B, n_post] post-synaptic neurons.
      w: [Kw, n_pre, n_post] current synapses; only channels < Kw are computed.
      fan: the synapses' fan-in, for ``fan_in_scaling``.
      b: [Kw, n_post] synapses from a bias unit (1 in every state), or None.

    Returns:
      (new w, new b or None).
    """
    kw, batch = w.shape[0], pre.shape[1]
    p = _mix(genome.nu_tilde[:, :kw].T, pre)  # [Kw, B, n_pre]: Σ_e a_i^e ν̃^{ec}
    q = _mix(genome.mu_tilde[:kw], post)  # [Kw, B, n_post]: Σ_d μ̃^{cd} a_j^d
    hebb = jnp.einsum("cbi,cbj->cij", p, q)  # Eq. (7), summed over the batch
    q_sq = jnp.sum(q * q, axis=1)  # [Kw, n_post]
    w = _settle(genome, spec, w, hebb, q_sq[:, None, :], fan, batch)
    if b is not None:
        hebb_b = jnp.sum(genome.nu_tilde[:, :kw], axis=0)[:, None] * jnp.sum(q, axis=1)
        b = _settle(genome, spec, b, hebb_b, q_sq, fan, batch)
    return w, b


def cf_hebbian(
    genome: Genome, spec: NetworkSpec, state: ChannelFirstState, neurons: Neurons
) -> ChannelFirstState:
    """Hebbian update of every stored synapse from the post-backward neurons, channel-first.

    Forward synapse i→j: pre = a^l (and the bias unit), post = a^{l+1}; backward synapse j→i
    (asymmetric networks, layers >= 1): pre = a^{l+1}, post = a^l. Symmetric networks keep
    only the forward synapses (the backward ones are their transpose). Backward synapses of
    layer 0 would write the input layer, which is never updated, so they are not kept.
    """
    w, b, wb = [], [], []
    for l in range(spec.num_layers):
        g = _g(genome, spec, l)
        fan_f, fan_b = fan_in(spec, l)
        lower, upper = neurons[l], neurons[l + 1]
        wf, bf = cf_hebbian_update(
            g, spec, lower, upper, state.w[l], fan_f, state.b[l] if spec.bias else None
        )
        w.append(wf)
        if bf is not None:
            b.append(bf)
        if not spec.symmetric_synapses and l > 0:
            wb.append(cf_hebbian_update(g, spec, upper, lower, state.wb[l - 1], fan_b)[0])
    return ChannelFirstState(neurons=tuple(neurons), w=tuple(w), b=tuple(b), wb=tuple(wb))


# ----------------------------------------------------- public (channel-last) interface


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
    return neurons_channel_last(cf_forward(genome, spec, to_channel_first(spec, state), x))


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
    top = cf_feedback(spec, (jnp.moveaxis(neurons[-1], -1, 0),), y)[-1]
    return (*neurons[:-1], jnp.moveaxis(top, 0, -1))


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
    out = cf_backward(
        genome, spec, to_channel_first(spec, state), neurons_channel_first(neurons)
    )
    return neurons_channel_last(out)


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
    K = w.shape[-1]
    kw = 1 if spec.single_state_synapses else K
    new, _ = cf_hebbian_update(
        genome, spec, jnp.moveaxis(pre, -1, 0), jnp.moveaxis(post, -1, 0),
        jnp.transpose(w[..., :kw], (2, 0, 1)), fan,
    )
    new = jnp.transpose(new, (1, 2, 0))
    return jnp.broadcast_to(new, (*new.shape[:2], K))


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
    fast = to_channel_first(spec, state.replace(neurons=tuple(neurons)))  # type: ignore[attr-defined]
    return from_channel_first(spec, cf_hebbian(genome, spec, fast, fast.neurons), state)
