"""The genome: the small learned rule shared by every neuron and synapse of a BLUR network.

Paper: Sandler et al., "Meta-Learning Bidirectional Update Rules", ICML 2021 (arXiv 2104.04657),
§3.2, Table 1, eqs. (5)-(8). The genome G = {nu, mu, nu~, mu~, f, eta, f~, eta~} plus the
stabilisers of §3.4 / App. B-C (learnable per-state normalisation, Oja multiplier, synapse
saturation) and the scale of the synapse initialisation.

Orientation of the K x K matrices (c, d index states):
  * ``nu[c, d]``: forward, post-synaptic state c reads pre-synaptic state d (eq. 5).
  * ``mu[c, d]``: backward, lower-layer state c reads upper-layer state d (eq. 6).
  * ``nu_tilde[e, c]``: pre-synaptic factor of synapse channel c reads pre state e (eq. 7).
  * ``mu_tilde[c, d]``: post-synaptic factor of synapse channel c reads post state d (eq. 7).

A genome is either shared by all layers (every field unbatched, e.g. ``nu: [K, K]``) or
per layer, with a leading layer axis on every field (``nu: [L, K, K]``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, get_args

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from blur._pytree import pytree_dataclass, tree_all_finite

# What feedback writes into output state 1 (blur.network.NetworkSpec.feedback).
Feedback = Literal["label", "error", "softmax_error"]
FEEDBACKS: tuple[str, ...] = get_args(Feedback)

SCHEMA = "blur.genome"
SCHEMA_VERSION = 2
"""Written version; v2 files may carry the network and method (blur.io.genome_file)."""
READABLE_VERSIONS = (1, 2)

MATRIX_FIELDS = ("nu", "mu", "nu_tilde", "mu_tilde")
STATE_FIELDS = ("fwd_norm_shift", "fwd_norm_scale", "bwd_norm_shift", "bwd_norm_scale")
SCALAR_FIELDS = ("f", "eta", "f_tilde", "eta_tilde", "oja", "alpha", "init_scale")


@pytree_dataclass
class Genome:
    """A BLUR learning rule (pytree). Shapes for a shared genome; per-layer adds a leading [L].

    Attributes:
      nu: [K, K] forward neuron transform ν (eq. 5).
      mu: [K, K] backward neuron transform μ (eq. 6).
      nu_tilde: [K, K] pre-synaptic transform ν̃ (eq. 7).
      mu_tilde: [K, K] post-synaptic transform μ̃ (eq. 7).
      f: [] neuron forget (keep) gate.
      eta: [] neuron update gate η.
      f_tilde: [] synapse forget (keep) gate f̃.
      eta_tilde: [] synapse update gate (Hebbian rate) η̃.
      fwd_norm_shift, fwd_norm_scale: [K] learnable mean / scale of the forward normalisation.
      bwd_norm_shift, bwd_norm_scale: [K] the same for the backward pass (§3.4).
      oja: [] multiplier of the first Oja term (eq. 8, App. C.5).
      alpha: [] synapse saturation α in α·tanh(w/α) (§3.4).
      init_scale: [] scale of the uniform synapse initialisation.
    """

    nu: jax.Array
    mu: jax.Array
    nu_tilde: jax.Array
    mu_tilde: jax.Array
    f: jax.Array
    eta: jax.Array
    f_tilde: jax.Array
    eta_tilde: jax.Array
    fwd_norm_shift: jax.Array
    fwd_norm_scale: jax.Array
    bwd_norm_shift: jax.Array
    bwd_norm_scale: jax.Array
    oja: jax.Array
    alpha: jax.Array
    init_scale: jax.Array

    @property
    def num_states(self) -> int:
        """K, the number of neuron states and synapse channels."""
        return int(self.nu.shape[-1])

    @property
    def num_layers(self) -> int | None:
        """L for a per-layer genome, ``None`` for a genome shared by all layers."""
        return int(self.nu.shape[0]) if self.nu.ndim == 3 else None

    def layer(self, index: int) -> Genome:
        """The genome that acts on synapse layer ``index`` (itself when shared)."""
        if self.num_layers is None:
            return self
        return jax.tree_util.tree_map(lambda a: a[index], self)


def expected_shapes(num_states: int, num_layers: int | None = None) -> dict[str, tuple[int, ...]]:
    """Field name -> shape for a genome with K = ``num_states`` (and L = ``num_layers``)."""
    lead = () if num_layers is None else (num_layers,)
    shapes: dict[str, tuple[int, ...]] = {}
    for name in MATRIX_FIELDS:
        shapes[name] = (*lead, num_states, num_states)
    for name in STATE_FIELDS:
        shapes[name] = (*lead, num_states)
    for name in SCALAR_FIELDS:
        shapes[name] = lead
    return shapes


def _build(
    num_states: int,
    num_layers: int | None,
    matrices: dict[str, Any],
    **scalars: float | Sequence[float],
) -> Genome:
    """A genome from K x K (or [L, K, K]) matrices; a scalar given as a sequence is per layer."""
    K = num_states
    values: dict[str, Any] = {
        "f": 1.0,
        "eta": 1.0,
        "f_tilde": 1.0,
        "eta_tilde": -1e-3,
        "oja": 1.0,
        "alpha": 1.0,
        "init_scale": 0.1,
    }
    values.update(scalars)
    fields: dict[str, jax.Array] = {n: jnp.asarray(matrices[n], jnp.float32) for n in MATRIX_FIELDS}
    fields["fwd_norm_shift"] = jnp.zeros((K,), jnp.float32)
    fields["fwd_norm_scale"] = jnp.ones((K,), jnp.float32)
    fields["bwd_norm_shift"] = jnp.zeros((K,), jnp.float32)
    fields["bwd_norm_scale"] = jnp.ones((K,), jnp.float32)
    per_layer = {n: v for n, v in values.items() if np.ndim(v) > 0}
    for name in SCALAR_FIELDS:
        fields[name] = jnp.asarray(0.0 if name in per_layer else values[name], jnp.float32)
    genome = Genome(**fields)
    if num_layers is not None:
        genome = stack_layers([genome] * num_layers)
    for name, v in per_layer.items():
        if num_layers is None or np.shape(v) != (num_layers,):
            raise ValueError(
                f"{name} has shape {np.shape(v)}: a per-layer value needs a per-layer genome "
                f"with one entry per synapse layer (num_layers={num_layers}); pass a float to "
                "share it across layers"
            )
        genome = genome.replace(**{name: jnp.asarray(v, jnp.float32)})  # type: ignore[attr-defined]
    return genome


def _embed(block: list[list[float]], K: int) -> np.ndarray:
    """Put a small matrix in the top-left corner of a K x K zero matrix."""
    out = np.zeros((K, K), np.float32)
    b = np.asarray(block, np.float32)[:K, :K]
    out[: b.shape[0], : b.shape[1]] = b
    return out


def stack_layers(genomes: list[Genome]) -> Genome:
    """Stack shared genomes into one per-layer genome (leading axis L = len(genomes))."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *genomes)


def scale_output_logits(genome: Genome, factor: float) -> Genome:
    """``genome`` with its output layer's forward-normalisation scale times ``factor``.

    With the output layer normalised, the logits are ``fwd_norm_scale[-1]`` times normalised
    pre-activations (plus the shift), so this sets the logits' spread, a temperature.

    Args:
      genome: a per-layer genome (``fwd_norm_scale`` [L, K]).
      factor: > 0.
    """
    if genome.fwd_norm_scale.ndim != 2:
        raise ValueError(
            "scale_output_logits needs a per-layer genome (fwd_norm_scale [L, K]); this one is "
            f"shared by every layer (shape {tuple(genome.fwd_norm_scale.shape)})"
        )
    scale = genome.fwd_norm_scale.at[-1].multiply(jnp.float32(factor))
    return dataclasses.replace(genome, fwd_norm_scale=scale)


def random_genome(
    key: jax.Array,
    num_states: int,
    num_layers: int | None = None,
    *,
    transform_std: float = 1.0,
    eta_tilde: float | Sequence[float] = -1e-3,
    init_scale: float | Sequence[float] = 0.1,
) -> Genome:
    """The authors' random initialisation (reference code ``create_random_genome``).

    nu, mu, nu~, mu~ ~ N(0, transform_std²); f = eta = f~ = 1; eta~ = -1e-3; synapse init scale
    0.1. A per-layer genome draws independent transforms for each layer.
    """
    if num_states < 1:
        raise ValueError(f"num_states must be >= 1, got {num_states}")
    K = num_states
    lead = () if num_layers is None else (num_layers,)
    keys = jax.random.split(key, 4)
    mats = {
        name: transform_std * jax.random.normal(k, (*lead, K, K), jnp.float32)
        for name, k in zip(MATRIX_FIELDS, keys, strict=True)
    }
    base = _build(
        K,
        num_layers,
        {n: np.zeros((K, K)) for n in MATRIX_FIELDS},
        eta_tilde=eta_tilde,
        init_scale=init_scale,
    )
    return base.replace(**mats)  # type: ignore[attr-defined]


def near_backprop_genome(
    num_states: int = 2,
    num_layers: int | None = None,
    *,
    eta_tilde: float | Sequence[float] = 1e-2,
    init_scale: float | Sequence[float] = 0.1,
) -> Genome:
    """The "close to backprop" initialisation of paper §4.5, embedded in K x K.

    nu = [[1,0],[1,0]], mu = I, nu~ = I, mu~ = [[0,1],[1,0]]. calibration.md found that this
    init, as reconstructed, learns nothing before meta-training (its post factor is the ±1
    label itself, a correlation rule); see :func:`delta_genome`.
    """
    K = num_states
    mats = {
        "nu": _embed([[1, 0], [1, 0]], K),
        "mu": _embed(np.eye(2), K),
        "nu_tilde": _embed(np.eye(2), K),
        "mu_tilde": _embed([[0, 1], [1, 0]], K),
    }
    return _build(K, num_layers, mats, eta_tilde=eta_tilde, init_scale=init_scale)


def delta_genome(
    num_states: int = 2,
    num_layers: int | None = None,
    *,
    eta_tilde: float | Sequence[float] = 10.0,
    init_scale: float | Sequence[float] = 1.0,
    feedback: Feedback = "label",
) -> Genome:
    """An error-driven ("delta") variant of the near-backprop init (calibration.md, trap 1).

    The forward pass copies the activity into states 0 and 1 (nu = [[1,0],[1,0]], as in the
    near-backprop init). Feedback replaces the output's state 1 by the label, so the post factor
    of every channel, state 1 - state 0 (mu~[:, :2] = [-1, 1]), is label - prediction at the
    output. The backward pass adds the same difference of the layer above into state 1 of the
    hidden neurons (mu[1, :2] = [-1, 1]) and leaves state 0 alone, so there too state 1 - state 0
    is the back-propagated error (gated by the backward activation's slope). The pre factor is
    the forward activity (state 0) on every channel.

    With ``feedback='error'`` or ``'softmax_error'`` (:class:`blur.network.NetworkSpec`) the
    output's state 1 already holds the error, so the last synapse layer reads state 1 alone:
    its post factor and the backward mixing into the top hidden layer are mu~[:, :2] = [0, 1]
    and mu[1, :2] = [0, 1]. Lower layers keep state 1 - state 0. That needs one genome per
    layer (``num_layers``). With ``softmax_error``, ``relu_tanh`` / ``tanh`` activations,
    He-scale synapses (``init_scale`` = sqrt(6)) and ``eta_tilde`` ≈ (200, 100, 50), a fresh
    784-256-128-10 network trains about as fast as oracle-tuned SGD with no meta-training.

    It needs states 0 and 1 to see the same weights, so use it with ``symmetric_synapses`` and
    ``single_state_synapses``, ``fan_in_scaling`` and ``hebbian_reduce='mean'`` (the rate
    ``eta_tilde`` is then per unit of fan-in). On sklearn digits, 64-64-10, B=64, K=2, that
    reaches about 80% test accuracy after 50 steps with no meta-training, where the random and
    near-backprop inits stay at chance (tests/test_genome_inits.py).

    Args:
      num_states: K >= 2.
      num_layers: L synapse layers for a per-layer genome, or None for one shared genome.
      eta_tilde, init_scale: a float, or one value per layer (per-layer genome only).
      feedback: the network's ``feedback`` option.
    """
    K = num_states
    if K < 2:
        raise ValueError("delta_genome needs num_states >= 2 (state 1 carries the error)")
    if feedback not in FEEDBACKS:
        raise ValueError(f"unknown feedback {feedback!r}; choose one of {FEEDBACKS}")
    error_feedback = feedback != "label"
    if error_feedback and num_layers is None:
        raise ValueError(
            f"delta_genome with feedback={feedback!r} needs a per-layer genome: its last layer "
            "reads the error from output state 1 alone, lower layers from state 1 - state 0. "
            "Pass num_layers (per_layer_genome=True in a NetworkSpec / NetworkConfig)."
        )
    nu = np.zeros((K, K), np.float32)
    nu[0, 0] = nu[1, 0] = 1.0
    mu = np.zeros((K, K), np.float32)
    mu[1, 0], mu[1, 1] = -1.0, 1.0
    nu_tilde = np.zeros((K, K), np.float32)
    nu_tilde[0, :] = 1.0
    mu_tilde = np.zeros((K, K), np.float32)
    mu_tilde[:, 0], mu_tilde[:, 1] = -1.0, 1.0
    mats = {"nu": nu, "mu": mu, "nu_tilde": nu_tilde, "mu_tilde": mu_tilde}
    genome = _build(K, num_layers, mats, eta_tilde=eta_tilde, init_scale=init_scale)
    if error_feedback:  # the last layer reads the output error from state 1 alone
        genome = genome.replace(  # type: ignore[attr-defined]
            mu=genome.mu.at[-1, 1, 0].set(0.0), mu_tilde=genome.mu_tilde.at[-1, :, 0].set(0.0)
        )
    return genome


def calibration_delta_genome(
    num_states: int = 2,
    num_layers: int | None = None,
    *,
    eta_tilde: float | Sequence[float] = 0.3,
    init_scale: float | Sequence[float] = 1.0,
) -> Genome:
    """The calibration prototype's "delta" start for CMA-ES (calibration.md, CMA-ES section).

    In blur's convention, embedded in K x K: nu = [[1,0],[0,0]] (state 0 carries the
    activity, state 1 is free for the error), mu = [[0,0],[-1,1]] (the backward pass adds
    state 1 - state 0 of the layer above into state 1 and nothing into state 0),
    nu~ = I, mu~ = [[-1,1],[1,0]] (channel 0's post factor is label - prediction),
    f = eta = f~ = 1, eta~ = 0.3, oja = 0, normalisation shifts 0 and scales 1. Synapses start
    U(-1, 1) (``init_scale`` 1), for a network without fan-in scaling. It is not
    :func:`delta_genome` (which copies the activity into both states).

    Under the prototype's network (196-512-10, K = 2, ``neuron_norm='both'``, symmetric
    multi-channel synapses, ``hebbian_reduce='mean'``, no fan-in scaling) it scores about
    48% on 14x14 MNIST after 15 steps before any search (calibration.md).
    """
    K = num_states
    if K < 2:
        raise ValueError("calibration_delta_genome needs num_states >= 2 (state 1 is the error)")
    mats = {
        "nu": _embed([[1, 0], [0, 0]], K),
        "mu": _embed([[0, 0], [-1, 1]], K),
        "nu_tilde": _embed(np.eye(2), K),
        "mu_tilde": _embed([[-1, 1], [1, 0]], K),
    }
    return _build(K, num_layers, mats, eta_tilde=eta_tilde, init_scale=init_scale, oja=0.0)


def backprop_genome(learning_rate: float = 0.1, *, init_scale: float = 1.0) -> Genome:
    """The exact two-state backprop genome (paper eq. 4), for :func:`blur.network.backprop_spec`.

    nu = [[1,0],[1,0]] (both states read the activation; the binary activation turns them into
    σ(z), σ'(z)); mu = I (state 1, the error, flows down); every synapse channel takes the pre
    activation (nu~[0, :] = 1) times the post error (mu~[:, 1] = 1); f = eta = f~ = 1 and
    eta~ = the SGD learning rate. With that spec one BLUR step is one SGD step.
    """
    mats = {
        "nu": [[1, 0], [1, 0]],
        "mu": np.eye(2),
        "nu_tilde": [[1, 1], [0, 0]],
        "mu_tilde": [[0, 1], [0, 1]],
    }
    return _build(2, None, mats, eta_tilde=learning_rate, oja=0.0, init_scale=init_scale)


INITIALISERS: dict[str, Callable[..., Genome]] = {
    "random": random_genome,
    "near_backprop": near_backprop_genome,
    "delta": delta_genome,
    "calibration_delta": calibration_delta_genome,
}


def init_genome(
    name: str, key: jax.Array, num_states: int, num_layers: int | None = None, **kwargs: Any
) -> Genome:
    """Build a genome by initialiser name: ``random``, ``near_backprop``, ``delta``,
    ``calibration_delta``."""
    if name == "random":
        return random_genome(key, num_states, num_layers, **kwargs)
    if name in INITIALISERS:
        return INITIALISERS[name](num_states, num_layers, **kwargs)
    raise ValueError(f"unknown genome init {name!r}; choose one of {sorted(INITIALISERS)}")


@functools.cache
def _unravel_fn(num_states: int, num_layers: int | None) -> Callable[[jax.Array], Genome]:
    template = Genome(
        **{
            name: jnp.zeros(shape, jnp.float32)
            for name, shape in expected_shapes(num_states, num_layers).items()
        }
    )
    return ravel_pytree(template)[1]


def ravel_genome(genome: Genome) -> tuple[jax.Array, Callable[[jax.Array], Genome]]:
    """Flatten a genome to one float32 vector [D] and return it with its inverse (for ES).

    The inverse is the same object for every genome of the same K and L, so jitted functions
    that take it as a static argument (``score_population``) compile once per process.
    """
    flat, _ = ravel_pytree(genome)
    return flat, _unravel_fn(genome.num_states, genome.num_layers)


GATE_FIELDS = ("f", "eta", "f_tilde", "eta_tilde")
"""The four scalar gates of eqs. (5)-(7)."""
RULE_FIELDS = MATRIX_FIELDS + GATE_FIELDS
"""The paper's 20 rule values at K = 2 (4 matrices + 4 gates), without stabilisers."""
FIELD_NAMES = MATRIX_FIELDS + STATE_FIELDS + SCALAR_FIELDS


@dataclasses.dataclass(frozen=True)
class GenomeSubspace:
    """A searched subset of a genome's values as one flat vector; the rest stay fixed.

    Evolution searches ``dim`` numbers; :meth:`__call__` writes them into a copy of the base
    genome (the initial one), so unsearched fields keep the base's values. In a per-layer
    genome a field named in ``shared_fields`` is searched as one value (or matrix) used by
    every layer. Hashable, and equal for equal settings and bases, so jitted functions that
    take it as a static argument (``score_population``) compile once per setting.

    Build it with :func:`genome_subspace`.

    Attributes:
      num_states, num_layers: K and L (None: shared genome) of the genome.
      fields: searched field names, in genome order.
      shared_fields: searched fields tied across layers (per-layer genomes only).
      base: the full flat base genome (:func:`ravel_genome` order), zero where searched.
      targets, sources: full-vector positions written and the searched index each reads.
    """

    num_states: int
    num_layers: int | None
    fields: tuple[str, ...]
    shared_fields: tuple[str, ...]
    base: tuple[float, ...]
    targets: tuple[int, ...]
    sources: tuple[int, ...]

    @property
    def dim(self) -> int:
        """D, the number of searched values."""
        return max(self.sources, default=-1) + 1

    def __call__(self, flat: jax.Array) -> Genome:
        """The genome for searched values ``flat`` [D] (float32)."""
        flat = jnp.asarray(flat, jnp.float32)
        if flat.shape != (self.dim,):
            raise ValueError(
                f"GenomeSubspace expects {self.dim} searched values, got shape {flat.shape}"
            )
        full = jnp.asarray(self.base, jnp.float32)
        full = full.at[np.asarray(self.targets, np.int32)].set(
            flat[np.asarray(self.sources, np.int32)]
        )
        return _unravel_fn(self.num_states, self.num_layers)(full)

    def field_names(self) -> tuple[str, ...]:
        """The genome field of each searched value, [D] names in search order."""
        positions = _unravel_fn(self.num_states, self.num_layers)(
            jnp.arange(len(self.base), dtype=jnp.float32)
        )
        field_of = np.empty(len(self.base), object)
        for name in FIELD_NAMES:
            field_of[np.asarray(getattr(positions, name)).astype(np.int64).ravel()] = name
        names: list[str] = [""] * self.dim
        for t, src in zip(self.targets, self.sources, strict=True):
            names[src] = str(field_of[t])
        return tuple(names)

    def ravel(self, genome: Genome) -> jax.Array:
        """The searched values [D] of ``genome`` (layer 0's for a shared field)."""
        full = ravel_pytree(genome)[0]
        first = np.zeros(self.dim, np.int32)
        # targets are in ascending order per source, so the last write wins: go backwards.
        for t, src in zip(reversed(self.targets), reversed(self.sources), strict=True):
            first[src] = t
        return full[first]


def genome_subspace(
    genome: Genome,
    fields: Sequence[str] | None = None,
    shared_fields: Sequence[str] = (),
    frozen: Mapping[str, Sequence[int]] | None = None,
) -> tuple[jax.Array, GenomeSubspace]:
    """Flatten the searched ``fields`` of ``genome`` (all: None) and return the inverse.

    Args:
      genome: the initial genome; unsearched fields keep its values.
      fields: names from :data:`FIELD_NAMES` (e.g. :data:`RULE_FIELDS` + :data:`STATE_FIELDS`,
        calibration.md's CMA-ES search), or None for every field.
      shared_fields: searched fields of a per-layer genome that take one value for all layers
        (their per-layer values in ``genome`` must be equal).
      frozen: field -> layers of a per-layer genome that keep ``genome``'s values although
        the field is searched (e.g. :func:`blur.rules.unused_genome_fields`, values the
        network never reads). A field frozen in every layer is not searched; a shared field is
        searched while one of its layers is not frozen.

    Returns:
      (searched values [D] float32, the :class:`GenomeSubspace` mapping them back).
    """
    names = FIELD_NAMES if fields is None else tuple(fields)
    unknown = sorted(set(names) - set(FIELD_NAMES)) + sorted(set(shared_fields) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(f"unknown genome fields {unknown}; choose from {list(FIELD_NAMES)}")
    if not names:
        raise ValueError("genome_subspace needs at least one searched field (fields=() given)")
    if len(set(names)) != len(names):
        raise ValueError(f"genome_subspace fields={list(names)} repeats a field")
    loose = sorted(set(shared_fields) - set(names))
    if loose:
        raise ValueError(
            f"shared_fields {loose} are not searched; add them to fields or drop them"
        )
    L = genome.num_layers
    if shared_fields and L is None:
        raise ValueError(
            "shared_fields need a per-layer genome (a shared genome already uses one value for "
            "every layer); pass shared_fields=()"
        )
    frozen = {k: frozenset(int(i) for i in v) for k, v in (frozen or {}).items()}
    unknown = sorted(set(frozen) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(f"frozen names unknown genome fields {unknown}")
    if frozen and L is None:
        raise ValueError(
            "frozen layers need a per-layer genome; for a shared genome leave the field out of "
            "fields instead"
        )
    full, _ = ravel_pytree(genome)
    unravel = _unravel_fn(genome.num_states, L)
    positions = unravel(jnp.arange(full.size, dtype=jnp.float32))
    targets: list[int] = []
    sources: list[int] = []
    searched: set[str] = set()
    for name in (f.name for f in dataclasses.fields(Genome)):  # genome order
        if name not in names:
            continue
        pos = np.asarray(getattr(positions, name)).astype(np.int64)
        kept = [] if L is None else [i for i in range(L) if i not in frozen.get(name, ())]
        if L is not None and not kept:
            continue  # frozen in every layer: keeps the base values, not searched
        searched.add(name)
        if name in shared_fields:
            values = np.asarray(getattr(genome, name))
            if not np.all(values == values[:1]):
                raise ValueError(
                    f"shared field {name!r} differs between layers in the initial genome "
                    f"({values.tolist()}); start from equal layers or do not share it"
                )
            start = max(sources, default=-1) + 1
            per_layer = pos.reshape(L, -1)
            for row in per_layer:
                targets.extend(row.tolist())
                sources.extend(range(start, start + row.size))
        else:
            start = max(sources, default=-1) + 1
            rows = pos.reshape(-1) if L is None else pos.reshape(L, -1)[kept].reshape(-1)
            targets.extend(rows.tolist())
            sources.extend(range(start, start + rows.size))
    if not searched:
        raise ValueError(
            f"genome_subspace: every searched field {list(names)} is frozen in every layer; "
            "nothing is left to search"
        )
    order = np.argsort(np.asarray(targets), kind="stable")
    base = np.asarray(full, np.float32).copy()
    base[np.asarray(targets, np.int64)] = 0.0  # overwritten by every call: not part of equality
    subspace = GenomeSubspace(
        num_states=genome.num_states,
        num_layers=L,
        fields=tuple(n for n in FIELD_NAMES if n in searched),
        shared_fields=tuple(n for n in FIELD_NAMES if n in shared_fields and n in searched),
        base=tuple(float(v) for v in base),
        targets=tuple(int(targets[i]) for i in order),
        sources=tuple(int(sources[i]) for i in order),
    )
    return subspace.ravel(genome), subspace


def genome_to_dict(genome: Genome) -> dict[str, Any]:
    """A JSON-ready dict: schema, version, K, L and every field as nested lists."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "num_states": genome.num_states,
        "num_layers": genome.num_layers,
        "fields": {
            f.name: np.asarray(getattr(genome, f.name), np.float32).tolist()
            for f in dataclasses.fields(Genome)
        },
    }


def _is_numeric_tree(value: Any) -> bool:
    """Nested lists of JSON numbers (int / float, not bool), or a numeric numpy array."""
    if isinstance(value, list | tuple):
        return all(_is_numeric_tree(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "iuf"
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


class GenomeFormatError(ValueError):
    """A genome file or dict is malformed: wrong schema, shape, dtype or non-finite values."""


def genome_from_dict(data: Any, *, source: str = "genome") -> Genome:
    """Validate and build a genome from :func:`genome_to_dict` output. Strict: nothing is guessed.

    Raises:
      GenomeFormatError: naming ``source`` and the offending field, for a wrong schema or
        version, missing or unknown fields, wrong shapes, non-numeric or non-finite values.
    """

    def fail(msg: str) -> GenomeFormatError:
        return GenomeFormatError(f"{source}: {msg}")

    if not isinstance(data, dict):
        raise fail("expected a JSON object with 'schema', 'schema_version' and 'fields'")
    if data.get("schema") != SCHEMA:
        raise fail(f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")
    if data.get("schema_version") not in READABLE_VERSIONS:
        raise fail(
            f"schema_version {data.get('schema_version')!r} is not supported "
            f"(this blur reads versions {list(READABLE_VERSIONS)}); upgrade blur to read it"
        )
    K = data.get("num_states")
    L = data.get("num_layers")
    if not isinstance(K, int) or isinstance(K, bool) or K < 1:
        raise fail(f"num_states must be a positive integer, got {K!r}")
    if L is not None and (not isinstance(L, int) or isinstance(L, bool) or L < 1):
        raise fail(f"num_layers must be null or a positive integer, got {L!r}")
    fields = data.get("fields")
    if not isinstance(fields, dict):
        raise fail("'fields' must be an object mapping field names to arrays")
    shapes = expected_shapes(K, L)
    missing = sorted(set(shapes) - set(fields))
    extra = sorted(set(fields) - set(shapes))
    if missing:
        raise fail(f"missing fields {missing}")
    if extra:
        raise fail(f"unknown fields {extra}")
    arrays: dict[str, jax.Array] = {}
    for name, shape in shapes.items():
        if not _is_numeric_tree(fields[name]):
            raise fail(
                f"field {name!r} is not a numeric array (numbers only, no strings, "
                "booleans or nulls)"
            )
        try:
            arr = np.asarray(fields[name], dtype=np.float64)
        except (TypeError, ValueError):
            raise fail(f"field {name!r} is not a numeric array") from None
        if arr.dtype == object or arr.shape != shape:
            raise fail(f"field {name!r} has shape {arr.shape}, expected {shape} for K={K}, L={L}")
        if not np.all(np.isfinite(arr)):
            raise fail(f"field {name!r} holds non-finite values (NaN or inf)")
        if np.any(np.abs(arr) > np.finfo(np.float32).max):
            raise fail(f"field {name!r} overflows float32")
        arrays[name] = jnp.asarray(arr, jnp.float32)
    return Genome(**arrays)


def genome_is_finite(genome: Genome) -> jax.Array:
    """Scalar bool: every value of the genome is finite."""
    return tree_all_finite(genome)


def num_parameters(genome: Genome) -> int:
    """Number of scalars in the genome."""
    return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(genome))
