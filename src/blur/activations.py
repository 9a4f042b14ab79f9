"""Neuron activations, applied to a whole multi-state neuron ``[..., K]``.

"Unitary" activations (relu, tanh, sigmoid, linear, relu∘tanh) act on every state alike, as in the
paper (§3.2, point d). The "binary" activations implement φ(x, y) = (σ(x), σ'(y)) of eq. (4):
state 0 gets σ and every further state gets σ', which is what makes backprop a two-state BLUR
network (paper §3.1).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _relu_tanh(x: jax.Array) -> jax.Array:
    return jax.nn.relu(jnp.tanh(x))


def _binary(fn: Callable[[jax.Array], jax.Array], dfn: Callable[[jax.Array], jax.Array]):
    def act(x: jax.Array, axis: int = -1) -> jax.Array:
        first = jax.lax.slice_in_dim(x, 0, 1, axis=axis)
        rest = jax.lax.slice_in_dim(x, 1, x.shape[axis], axis=axis)
        return jnp.concatenate([fn(first), dfn(rest)], axis=axis)

    return act


def _dsigmoid(x: jax.Array) -> jax.Array:
    s = jax.nn.sigmoid(x)
    return s * (1.0 - s)


def _dtanh(x: jax.Array) -> jax.Array:
    return 1.0 - jnp.tanh(x) ** 2


def _drelu(x: jax.Array) -> jax.Array:
    return (x > 0).astype(x.dtype)


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "linear": lambda x: x,
    "relu_tanh": _relu_tanh,
    "binary_sigmoid": _binary(jax.nn.sigmoid, _dsigmoid),
    "binary_tanh": _binary(jnp.tanh, _dtanh),
    "binary_relu": _binary(jax.nn.relu, _drelu),
}
"""Activation name -> function of a ``[..., K]`` array (K = number of neuron states)."""


def apply_activation(name: str, x: jax.Array, state_axis: int = -1) -> jax.Array:
    """The activation called ``name`` applied to ``x`` whose neuron states lie on ``state_axis``
    (binary activations treat state 0 apart; unitary ones ignore the axis)."""
    fn = get_activation(name)
    if name.startswith("binary_"):
        return fn(x, axis=state_axis)  # type: ignore[call-arg]
    return fn(x)


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Return the activation called ``name``; raise ``ValueError`` listing the valid names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None
