"""``NetworkSpec.unsupervised_update`` (the paper's §5 future work): a label-free Hebbian update
right after the forward pass. Off (the default) the step is bit-identical to the supervised
step; on, the synapses change after the forward pass even when the label feedback is zero.
(The NumPy loop reference covers the option too: ``test_rules.SPEC_CASES``.)"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import rich_setup

import blur
from blur import inner
from blur.network import from_channel_first, to_channel_first
from blur.rules import cf_backward, cf_feedback, cf_forward, cf_hebbian

SIZES = (3, 6, 4)
K = 3
B = 8


def _setup(spec: blur.NetworkSpec) -> tuple[blur.Genome, blur.NetworkState, blur.Batch]:
    return rich_setup(spec, B)


def _leaves(tree: object) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _assert_identical(a: object, b: object) -> None:
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("symmetric", [False, True])
def test_off_is_bit_identical_to_the_supervised_step(symmetric: bool):
    """The default spec runs forward, feedback, backward, Hebbian exactly as before."""
    spec = blur.NetworkSpec(SIZES, K, symmetric_synapses=symmetric)
    assert spec.unsupervised_update is False
    genome, state, batch = _setup(spec)
    cf = to_channel_first(spec, state)
    neurons = cf_forward(genome, spec, cf, batch.x)
    neurons = cf_feedback(spec, neurons, batch.y)
    neurons = cf_backward(genome, spec, cf, neurons)
    expected = cf_hebbian(genome, spec, cf, neurons)
    got, _ = inner.cf_step(genome, spec, cf, batch)
    _assert_identical(got, expected)
    # And through the jitted unroll: off explicitly == the default.
    batches = blur.Batch(x=jnp.stack([batch.x] * 3), y=jnp.stack([batch.y] * 3))
    a, _ = inner.unroll_jit(genome, spec, state, batches)
    b, _ = inner.unroll_jit(genome, spec.replace(unsupervised_update=False), state, batches)
    _assert_identical(a, b)


@pytest.mark.parametrize("symmetric", [False, True])
def test_on_is_the_supervised_step_after_a_hebbian_update_of_the_forward_neurons(
        symmetric: bool):
    off = blur.NetworkSpec(SIZES, K, symmetric_synapses=symmetric)
    on = off.replace(unsupervised_update=True)
    genome, state, batch = _setup(off)
    cf = to_channel_first(off, state)
    neurons = cf_forward(genome, on, cf, batch.x)  # with the synapses before the update
    pre = inner.cf_unsupervised(genome, on, cf, neurons)
    neurons = cf_feedback(on, neurons, batch.y)
    neurons = cf_backward(genome, on, pre, neurons)
    expected = cf_hebbian(genome, on, pre, neurons)
    got, _ = inner.cf_step(genome, on, cf, batch)
    _assert_identical(got, expected)
    changed, _ = inner.cf_step(genome, off, cf, batch)
    assert max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(got.w, changed.w,
                                                               strict=True)) > 1e-4


def test_on_changes_the_synapses_after_a_forward_pass_when_the_label_feedback_is_zero(
        monkeypatch: pytest.MonkeyPatch):
    """With output state 1 (the feedback) zeroed, the labels carry no signal at all: the steps
    with different labels agree, and the option still moves the synapses."""

    def no_feedback(spec: blur.NetworkSpec, neurons: tuple, y: jax.Array) -> tuple:
        out = neurons[-1]
        return (*neurons[:-1], out.at[1:].set(0.0))

    monkeypatch.setattr(inner, "cf_feedback", no_feedback)
    off = blur.NetworkSpec(SIZES, K)
    on = off.replace(unsupervised_update=True)
    genome, state, batch = _setup(off)
    other = blur.Batch(x=batch.x, y=(batch.y + 1) % SIZES[-1])
    s_off, _ = blur.step(genome, off, state, batch)
    s_on, _ = blur.step(genome, on, state, batch)
    s_on_other, _ = blur.step(genome, on, state, other)
    _assert_identical(s_on, s_on_other)  # the labels do not enter
    diff = max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(s_on.w_fwd, s_off.w_fwd,
                                                              strict=True))
    assert diff > 1e-4
    # The forward-pass update alone moves every synapse layer, from x only.
    cf = to_channel_first(on, state)
    moved = from_channel_first(on, inner.cf_unsupervised(
        genome, on, cf, cf_forward(genome, on, cf, batch.x)), state)
    for new, old in zip(moved.w_fwd, state.w_fwd, strict=True):
        assert np.all(np.isfinite(np.asarray(new)))
        assert float(jnp.max(jnp.abs(new - old))) > 1e-4
