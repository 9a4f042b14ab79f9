"""Network specification (static) and network state (neurons and synapses).

Shapes for one network with layer sizes ``(n_0, ..., n_L)``, K states, batch B:
  neurons[l]: [B, n_l, K]
  w_fwd[l]:   [n_l + bias, n_{l+1}, K]   forward synapses, bias row last (paper §3.1)
  w_bwd[l]:   [n_{l+1}, n_l, K]          backward synapses (no bias)
for synapse layers l = 0..L-1. With ``symmetric_synapses`` the backward weights are the
transposed forward weights, kept tied at every step. Populations are ``jax.vmap`` over these.

This public layout (channel last) is what users, tests and checkpoints see. The rules compute
in a channel-first layout, :class:`ChannelFirstState` (``to_channel_first`` /
``from_channel_first``): neurons [K, B, n], synapses [Kw, n_in, n_out] with the bias row apart,
Kw = 1 for single-state synapses (the K channels are equal, so one is stored and updated) and
no backward synapses where nothing reads them (symmetric networks, and layer 0). ``blur.unroll``
converts once before its ``lax.scan`` and once after, so a training step pays no conversion.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal, Protocol, get_args, get_type_hints

import jax
import jax.numpy as jnp

from blur._pytree import pytree_dataclass
from blur.activations import ACTIVATIONS
from blur.genome import FEEDBACKS, Feedback, Genome, expected_shapes

BackwardUpdate = Literal["additive", "multiplicative", "multiplicative_second_state"]
NeuronNorm = Literal["none", "forward", "backward", "both"]
Stabiliser = Literal["oja", "normalize", "saturate"]
HebbianReduce = Literal["sum", "mean"]


def _check_choice(field: str, value: object, choices: tuple[object, ...]) -> None:
    if value not in choices:
        raise ValueError(f"NetworkSpec.{field}={value!r} is invalid; choose one of {list(choices)}")


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """Static configuration of a BLUR network (hashable; pass it as a static jit argument).

    Attributes:
      layer_sizes: (n_0, ..., n_L), input width first, number of outputs last.
      num_states: K, states per neuron and channels per synapse.
      forward_activation: activation of hidden layers on the forward pass (eq. 5).
      backward_activation: activation of hidden layers on the backward pass (eq. 6).
      last_activation: activation of the output layer on the forward pass.
      backward_update: ``additive`` (eq. 6), ``multiplicative`` (a ← σ(f·a ⊙ v)), or
        ``multiplicative_second_state`` (state 0 kept, states 1.. gated by v: backprop).
      symmetric_synapses: backward weights are the transposed forward weights.
      single_state_synapses: every synapse channel equals channel 0.
      neuron_norm: per-state normalisation with the genome's learnable shift and scale, on
        ``forward``, ``backward``, ``both`` or ``none`` of the passes (§3.4).
      synapse_stabiliser: any of ``oja`` (first term of eq. 8 with a learnable multiplier),
        ``normalize`` (App. C.6: unit-norm incoming weights when computing activations) and
        ``saturate`` (w ← α·tanh(w/α)); empty for none.
      reset_neurons: neurons are zeroed at the start of every step (reference default).
      bias: a constant-1 unit appended to each layer's input (paper §3.1).
      hebbian_reduce: the Hebbian update sums (reference) or averages over the batch.
      feedback: what goes into output state 1: ``label`` (±1 one-hot, paper §3.3),
        ``error`` (one-hot - prediction) or ``softmax_error`` (one-hot - softmax(prediction),
        the negative cross-entropy gradient).
      fan_in_scaling: synapse init scaled by 1/sqrt(fan-in) and Hebbian step by 1/fan-in, so
        one genome transfers across layer widths (calibration.md, trap 3).
      per_layer_genome: the genome carries a leading layer axis of length L.
      synapse_keep_max: if set, the synapse keep gate f~ is clipped to at most this value
        (calibration.md, trap 2: f~ > 1 makes weights grow exponentially).
      unsupervised_update: also apply the Hebbian update (eqs. 7-8) once right after the
        forward pass, from the forward neurons alone, before the label is written (the
        paper's §5 future work, "weight updates on the forward pass"); the backward pass and
        the usual supervised update then start from those synapses. Off by default.
      norm_output: where the forward pass is normalised (``neuron_norm`` ``forward`` or
        ``both``), whether the output layer is too (the reference's choice, the default).
        False leaves the logits unnormalised, as on an MLP: they can grow as the network
        becomes confident. Tried on mnist10 against the fall-back past the meta-training
        horizon of a rule with normalised logits, and worse there: near chance by step 50
        (issue 10, ``results/mnist10-preset/README.md``).
      hebbian_decay: d >= 0, a step size on the synapse change that decays with the inner
        step count t (0 for a fresh network's first step): w_{t+1} = w_t + r_t (w'_t - w_t),
        r_t = 1 / (1 + d t), where w'_t is what eqs. (7)-(8) (and every stabiliser) would
        make of w_t. Beyond the paper: the Robbins-Monro schedule, against a rule whose
        accuracy oscillates or collapses past its meta-training horizon. 0 (the default)
        is the paper's rule, unchanged.
    """

    layer_sizes: tuple[int, ...]
    num_states: int = 2
    forward_activation: str = "relu_tanh"
    backward_activation: str = "relu_tanh"
    last_activation: str = "tanh"
    backward_update: BackwardUpdate = "additive"
    symmetric_synapses: bool = False
    single_state_synapses: bool = False
    neuron_norm: NeuronNorm = "none"
    synapse_stabiliser: tuple[Stabiliser, ...] = ()
    reset_neurons: bool = True
    bias: bool = True
    hebbian_reduce: HebbianReduce = "sum"
    feedback: Feedback = "label"
    fan_in_scaling: bool = False
    per_layer_genome: bool = False
    synapse_keep_max: float | None = None
    unsupervised_update: bool = False
    norm_output: bool = True
    hebbian_decay: float = 0.0

    def __post_init__(self) -> None:
        sizes = tuple(self.layer_sizes)
        object.__setattr__(self, "layer_sizes", sizes)
        object.__setattr__(self, "synapse_stabiliser", tuple(self.synapse_stabiliser))
        if len(sizes) < 2:
            raise ValueError(
                f"NetworkSpec.layer_sizes={sizes} needs at least an input and an output size"
            )
        if any((not isinstance(n, int)) or n < 1 for n in sizes):
            raise ValueError(f"NetworkSpec.layer_sizes={sizes} must be positive integers")
        if not isinstance(self.num_states, int) or self.num_states < 1:
            raise ValueError(f"NetworkSpec.num_states={self.num_states!r} must be >= 1")
        if self.num_states < 2:
            raise ValueError(
                f"NetworkSpec.num_states={self.num_states} is too small: the label is written "
                "into state 1 of the output neurons, so K >= 2 is needed"
            )
        for name in ("forward_activation", "backward_activation", "last_activation"):
            _check_choice(name, getattr(self, name), tuple(ACTIVATIONS))
        _check_choice("backward_update", self.backward_update, get_args(BackwardUpdate))
        _check_choice("neuron_norm", self.neuron_norm, get_args(NeuronNorm))
        _check_choice("feedback", self.feedback, FEEDBACKS)
        _check_choice("hebbian_reduce", self.hebbian_reduce, get_args(HebbianReduce))
        for s in self.synapse_stabiliser:
            _check_choice("synapse_stabiliser", s, get_args(Stabiliser))
        if len(set(self.synapse_stabiliser)) != len(self.synapse_stabiliser):
            raise ValueError(
                f"NetworkSpec.synapse_stabiliser={self.synapse_stabiliser} repeats an entry"
            )
        if self.synapse_keep_max is not None and not self.synapse_keep_max > 0:
            raise ValueError(f"NetworkSpec.synapse_keep_max={self.synapse_keep_max} must be > 0")
        if not (isinstance(self.hebbian_decay, int | float) and 0 <= self.hebbian_decay < math.inf):
            raise ValueError(
                f"NetworkSpec.hebbian_decay={self.hebbian_decay!r} must be a finite number >= 0 "
                "(0 turns the step-size decay off)"
            )
        object.__setattr__(self, "hebbian_decay", float(self.hebbian_decay))

    @property
    def num_layers(self) -> int:
        """L, the number of synapse layers (layer pairs)."""
        return len(self.layer_sizes) - 1

    @property
    def num_inputs(self) -> int:
        return self.layer_sizes[0]

    @property
    def num_outputs(self) -> int:
        return self.layer_sizes[-1]

    def replace(self, **changes: object) -> NetworkSpec:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def check_genome(self, genome: Genome) -> None:
        """Raise ``ValueError`` naming the field if ``genome`` does not fit this spec."""
        L = self.num_layers if self.per_layer_genome else None
        if genome.num_layers is not None and not self.per_layer_genome:
            raise ValueError(
                f"genome is per-layer (leading axis {genome.num_layers}) but "
                "NetworkSpec.per_layer_genome=False; set per_layer_genome=True"
            )
        shapes = expected_shapes(self.num_states, L)
        for name, shape in shapes.items():
            got = tuple(getattr(genome, name).shape)
            if got != shape:
                raise ValueError(
                    f"genome field {name!r} has shape {got}, expected {shape} for "
                    f"NetworkSpec.num_states={self.num_states}, "
                    f"per_layer_genome={self.per_layer_genome} with {self.num_layers} layers"
                )


class _HasWidths(Protocol):
    @property
    def num_inputs(self) -> int: ...

    @property
    def num_classes(self) -> int: ...


class _NetworkConfigMethods:
    """Methods of :class:`NetworkConfig` (its fields are generated from NetworkSpec's)."""

    hidden: tuple[int, ...]
    num_states: int
    per_layer_genome: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "synapse_stabiliser", tuple(self.synapse_stabiliser))  # type: ignore[attr-defined]
        self.spec(1, 2)  # validate every field now, with the spec's own messages

    def spec(self, num_inputs: int, num_outputs: int) -> NetworkSpec:
        """The :class:`NetworkSpec` for data with these input and output widths."""
        fields = dataclasses.asdict(self)  # type: ignore[call-overload]
        hidden = fields.pop("hidden")
        return NetworkSpec(layer_sizes=(num_inputs, *hidden, num_outputs), **fields)

    def spec_for(self, family: _HasWidths) -> NetworkSpec:
        """The spec for a task family (anything with ``num_inputs`` and ``num_classes``)."""
        return self.spec(family.num_inputs, family.num_classes)

    @classmethod
    def from_spec(cls, spec: NetworkSpec) -> Any:
        """The config of ``spec`` (its hidden widths and every other field)."""
        fields = dataclasses.asdict(spec)
        sizes = fields.pop("layer_sizes")
        return cls(hidden=tuple(sizes[1:-1]), **fields)

    @property
    def num_layers(self) -> int:
        """L, the number of synapse layers."""
        return len(self.hidden) + 1


def _config_fields() -> list[tuple[str, Any, Any]]:
    hints = get_type_hints(NetworkSpec)
    fields: list[tuple[str, Any, Any]] = [
        ("hidden", tuple[int, ...], dataclasses.field(default=(20,)))
    ]
    for f in dataclasses.fields(NetworkSpec):
        if f.name != "layer_sizes":
            fields.append((f.name, hints[f.name], dataclasses.field(default=f.default)))
    return fields


NetworkConfig = dataclasses.make_dataclass(
    "NetworkConfig", _config_fields(), bases=(_NetworkConfigMethods,), frozen=True
)
NetworkConfig.__module__ = __name__
NetworkConfig.__doc__ = """A :class:`NetworkSpec` without the input and output widths (from data).

Generated from :class:`NetworkSpec`: the same fields, types and defaults, except that
``layer_sizes`` is replaced by ``hidden`` (the hidden widths, default ``(20,)``), so a new spec
option is reachable from run configs, presets and the CLI at once. This is what a run config,
a preset, a genome file (schema v2) and ``BlurClassifier`` hold: the network a genome was
meta-trained for, independent of any data set. ``spec(n_in, n_out)`` builds the spec.
"""


@pytree_dataclass
class NetworkState:
    """Neuron states and synapses of one network (see the module docstring for shapes)."""

    neurons: tuple[jax.Array, ...]
    w_fwd: tuple[jax.Array, ...]
    w_bwd: tuple[jax.Array, ...]


@pytree_dataclass
class ChannelFirstState:
    """The rules' internal layout of a :class:`NetworkState` (module docstring).

    Attributes:
      neurons: tuple of [K, B, n_l].
      w: tuple of [Kw, n_l, n_{l+1}], forward synapses without the bias row.
      b: tuple of [Kw, n_{l+1}], the forward bias row (empty tuple when ``spec.bias`` is off).
      wb: tuple of [Kw, n_{l+1}, n_l], backward synapses of layers 1..L-1 (empty tuple for
        symmetric synapses, which use the transposed ``w``).
    """

    neurons: tuple[jax.Array, ...]
    w: tuple[jax.Array, ...]
    b: tuple[jax.Array, ...]
    wb: tuple[jax.Array, ...]


def synapse_channels(spec: NetworkSpec) -> int:
    """Kw, the synapse channels stored in the channel-first layout (1 if single-state)."""
    return 1 if spec.single_state_synapses else spec.num_states


def neurons_channel_first(neurons: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
    """[B, n, K] -> [K, B, n] for each layer."""
    return tuple(jnp.moveaxis(a, -1, 0) for a in neurons)


def neurons_channel_last(neurons: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
    """[K, B, n] -> [B, n, K] for each layer."""
    return tuple(jnp.moveaxis(a, 0, -1) for a in neurons)


def to_channel_first(spec: NetworkSpec, state: NetworkState) -> ChannelFirstState:
    """The channel-first copy of ``state`` that the rules compute on.

    Single-state synapses keep channel 0 (the others equal it in any state this library
    makes); symmetric synapses drop ``w_bwd`` (it equals the transposed ``w_fwd``), and
    ``w_bwd[0]``, which nothing reads, is dropped too (``from_channel_first`` puts it back).
    """
    kw = synapse_channels(spec)
    w, b, wb = [], [], []
    for l in range(spec.num_layers):
        n_in = spec.layer_sizes[l]
        wf = state.w_fwd[l][..., :kw]  # [n_in + bias, n_out, Kw]
        w.append(jnp.transpose(wf[:n_in], (2, 0, 1)))
        if spec.bias:
            b.append(jnp.transpose(wf[n_in], (1, 0)))
        if not spec.symmetric_synapses and l > 0:
            wb.append(jnp.transpose(state.w_bwd[l][..., :kw], (2, 0, 1)))
    return ChannelFirstState(
        neurons=neurons_channel_first(state.neurons), w=tuple(w), b=tuple(b), wb=tuple(wb)
    )


def from_channel_first(
    spec: NetworkSpec, fast: ChannelFirstState, like: NetworkState
) -> NetworkState:
    """The public (channel-last) state of ``fast``; ``like`` supplies ``w_bwd[0]`` of
    asymmetric networks (never updated, so carried over unchanged)."""
    K = spec.num_states
    w_fwd, w_bwd = [], []
    for l in range(spec.num_layers):
        wf = jnp.transpose(fast.w[l], (1, 2, 0))  # [n_in, n_out, Kw]
        if spec.bias:
            wf = jnp.concatenate([wf, jnp.transpose(fast.b[l], (1, 0))[None]], axis=0)
        wf = jnp.broadcast_to(wf, (*wf.shape[:2], K))
        w_fwd.append(wf)
        if spec.symmetric_synapses:
            w_bwd.append(tie_backward(spec, wf))
        elif l == 0:
            w_bwd.append(like.w_bwd[0])
        else:
            wb = jnp.transpose(fast.wb[l - 1], (1, 2, 0))
            w_bwd.append(jnp.broadcast_to(wb, (*wb.shape[:2], K)))
    return NetworkState(
        neurons=neurons_channel_last(fast.neurons), w_fwd=tuple(w_fwd), w_bwd=tuple(w_bwd)
    )


def fan_in(spec: NetworkSpec, layer: int) -> tuple[int, int]:
    """(forward fan-in, backward fan-in) of synapse layer ``layer``."""
    return spec.layer_sizes[layer] + int(spec.bias), spec.layer_sizes[layer + 1]


def tie_backward(spec: NetworkSpec, w_fwd: jax.Array) -> jax.Array:
    """Backward weights [n_out, n_in, K] equal to the transposed forward weights (no bias row)."""
    n_in = w_fwd.shape[0] - int(spec.bias)
    return jnp.transpose(w_fwd[:n_in], (1, 0, 2))


def single_state(w: jax.Array) -> jax.Array:
    """Copy synapse channel 0 into every channel ([..., K] -> [..., K], all equal)."""
    return jnp.broadcast_to(w[..., :1], w.shape)


def init_state(
    key: jax.Array, genome: Genome, spec: NetworkSpec, batch_size: int = 1
) -> NetworkState:
    """Fresh synapses ~ U(-1, 1)·init_scale (÷ sqrt(fan-in) when ``fan_in_scaling``), zero neurons.

    Args:
      key: PRNG key; different keys give the replicas of one genome.
      genome: supplies ``init_scale`` (per layer for a per-layer genome).
      spec: the network.
      batch_size: B of the neuron state arrays.
    """
    spec.check_genome(genome)
    K = spec.num_states
    keys = jax.random.split(key, 2 * spec.num_layers)
    w_fwd, w_bwd = [], []
    for layer in range(spec.num_layers):
        g = genome.layer(layer) if spec.per_layer_genome else genome
        n_in, n_out = spec.layer_sizes[layer], spec.layer_sizes[layer + 1]
        fi_f, fi_b = fan_in(spec, layer)
        scale_f = g.init_scale / (jnp.sqrt(fi_f) if spec.fan_in_scaling else 1.0)
        scale_b = g.init_scale / (jnp.sqrt(fi_b) if spec.fan_in_scaling else 1.0)
        shape_f = (n_in + int(spec.bias), n_out, K)
        wf = scale_f * jax.random.uniform(keys[2 * layer], shape_f, jnp.float32, -1.0, 1.0)
        wb = scale_b * jax.random.uniform(keys[2 * layer + 1], (n_out, n_in, K), jnp.float32,
                                          -1.0, 1.0)
        if spec.single_state_synapses:
            wf, wb = single_state(wf), single_state(wb)
        if spec.symmetric_synapses:
            wb = tie_backward(spec, wf)
        w_fwd.append(wf)
        w_bwd.append(wb)
    neurons = tuple(jnp.zeros((batch_size, n, K), jnp.float32) for n in spec.layer_sizes)
    return NetworkState(neurons=neurons, w_fwd=tuple(w_fwd), w_bwd=tuple(w_bwd))


def backprop_spec(
    layer_sizes: tuple[int, ...],
    activation: Literal["sigmoid", "tanh", "relu"] = "sigmoid",
    feedback: Feedback = "softmax_error",
    hebbian_reduce: HebbianReduce = "mean",
) -> NetworkSpec:
    """The spec under which :func:`blur.genome.backprop_genome` is exactly SGD on an MLP.

    K = 2; hidden layers use the binary activation (σ on state 0, σ' on state 1); the output is
    linear (logits in state 0); backward updates are multiplicative on the second state only;
    synapses are symmetric and single-state (paper App. C.7). With ``feedback='softmax_error'``
    and ``hebbian_reduce='mean'`` a step is SGD on the batch-mean softmax cross-entropy; with
    ``feedback='label'`` it is SGD on the correlation loss -Σ y±·logits (reference code).
    """
    return NetworkSpec(
        layer_sizes=tuple(layer_sizes),
        num_states=2,
        forward_activation=f"binary_{activation}",
        backward_activation="linear",
        last_activation="linear",
        backward_update="multiplicative_second_state",
        symmetric_synapses=True,
        single_state_synapses=True,
        neuron_norm="none",
        synapse_stabiliser=(),
        reset_neurons=True,
        bias=True,
        hebbian_reduce=hebbian_reduce,
        feedback=feedback,
    )
