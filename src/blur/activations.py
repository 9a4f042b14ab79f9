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
    def act(x: jax.Array) -> jax.Array:
        return jnp.concatenate([fn(x[..., :1]), dfn(x[..., 1:])], axis=-1)

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


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Return the activation called ``name``; raise ``ValueError`` listing the valid names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
        ) from None
