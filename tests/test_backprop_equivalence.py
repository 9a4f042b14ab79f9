"""The first correctness anchor: the backprop genome under ``backprop_spec`` is exactly SGD.

For an ordinary MLP with weights W_l = w_fwd[l][:-1, :, 0] and biases b_l = w_fwd[l][-1, :, 0],
hidden activation sigmoid / tanh / relu and a linear output layer, one BLUR step with
``backprop_genome(lr)`` must equal one SGD step with learning rate lr on

  * feedback='softmax_error', hebbian_reduce='mean': the batch-mean softmax cross-entropy;
  * feedback='label', hebbian_reduce='sum': the correlation loss -sum_b sum_j y±_bj logits_bj,
    y± = 2 onehot - 1 (the reference code's protocol).

Both trajectories run independently for 20 steps on fresh random batches, in float32.

Tolerances: rtol 1e-5 and atol 1e-6 (predictions: see the test). The weights are O(1)
(U(-1, 1) init), so 1e-6 is ~8 float32 ulps of a typical weight. BLUR and the MLP sum the same
products in a different order (einsum over channels vs. a plain matmul), which after 20 steps
leaves differences of at most 0.13 x this tolerance (measured over all cases), while a wrong
sign, factor, transpose or missing sigma' term gives errors of 1e-3 or more. The learning rates
are kept below the regime where SGD's own map amplifies rounding differences step after step.

Matmul precision: ``jax.default_matmul_precision('highest')`` is set around tracing. On CPU
float32 matmuls are exact-float32 anyway; on GPU the default may use TF32 (10-bit mantissa),
which alone would put ~1e-3 differences between two mathematically equal computations.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import blur

RTOL = 1e-5
ATOL = 1e-6
STEPS = 20
B = 8


def learning_rate(feedback: str, activation: str) -> float:
    """Large enough that the weights move by O(0.01-1) over 20 steps, small enough that SGD
    stays out of the regime where its own map amplifies rounding differences step after step
    (at twice these rates two float32 runs of the same SGD drift apart by a few 1e-6). The
    correlation loss is unbounded below; with relu (also unbounded) SGD on it diverges to
    inf/NaN at 0.02, so relu gets a smaller rate there."""
    if feedback == "softmax_error":
        return 0.5
    return 0.0025 if activation == "relu" else 0.025


Params = list[tuple[jax.Array, jax.Array]]

HIDDEN_ACT: dict[str, Callable[[jax.Array], jax.Array]] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
}


def mlp_logits(
    params: Params, x: jax.Array, act: Callable[[jax.Array], jax.Array],
    offsets: list[jax.Array] | None = None,
) -> jax.Array:
    """Plain MLP; ``offsets[l]`` is added to hidden pre-activation l+1 (to take dL/dz)."""
    h = x
    for l, (W, b) in enumerate(params):
        z = h @ W + b
        if l == len(params) - 1:
            return z
        if offsets is not None:
            z = z + offsets[l]
        h = act(z)
    raise AssertionError("unreachable")


def summand_scale(
    params: Params, x: jax.Array, act: Callable[[jax.Array], jax.Array]
) -> jax.Array:
    """Per logit, sum_i |W_ij h_i| + |b_j|: the scale of the terms a logit is summed from."""
    h = x
    for W, b in params[:-1]:
        h = act(h @ W + b)
    W, b = params[-1]
    return jnp.abs(h) @ jnp.abs(W) + jnp.abs(b)


def mlp_loss(logits: jax.Array, y: jax.Array, feedback: str) -> jax.Array:
    onehot = jax.nn.one_hot(y, logits.shape[-1])
    if feedback == "softmax_error":  # batch-mean softmax cross-entropy
        return -jnp.mean(jnp.sum(onehot * jax.nn.log_softmax(logits), axis=-1))
    return -jnp.sum((2.0 * onehot - 1.0) * logits)  # correlation loss, summed over the batch


def params_of(state: blur.NetworkState) -> Params:
    return [(w[:-1, :, 0], w[-1, :, 0]) for w in state.w_fwd]


def make_runner(
    sizes: tuple[int, ...], activation: str, feedback: str, reduce: str
) -> Callable[..., tuple]:
    """A jitted 20-step scan running BLUR and SGD side by side from the same weights."""
    spec = blur.backprop_spec(sizes, activation, feedback, reduce)
    act = HIDDEN_ACT[activation]
    lr = learning_rate(feedback, activation)

    def sgd_step(params: Params, x: jax.Array, y: jax.Array) -> Params:
        grads = jax.grad(lambda p: mlp_loss(mlp_logits(p, x, act), y, feedback))(params)
        return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)

    def run(genome: blur.Genome, state: blur.NetworkState, xs: jax.Array, ys: jax.Array,
            x_test: jax.Array) -> tuple:
        def body(carry: tuple, xy: tuple) -> tuple:
            st, params = carry
            x, y = xy
            st, _ = blur.step(genome, spec, st, blur.Batch(x=x, y=y))
            params = sgd_step(params, x, y)
            out = (
                st.w_fwd, st.w_bwd, params,
                blur.predict(genome, spec, st, x_test), mlp_logits(params, x_test, act),
                summand_scale(params, x_test, act),
            )
            return (st, params), out

        return jax.lax.scan(body, (state, params_of(state)), (xs, ys))[1]

    return jax.jit(run)


def _data(seed: int, sizes: tuple[int, ...]) -> tuple[jax.Array, jax.Array, jax.Array]:
    kx, ky, kt = jax.random.split(jax.random.key(seed), 3)
    xs = jax.random.normal(kx, (STEPS, B, sizes[0]), jnp.float32)
    ys = jax.random.randint(ky, (STEPS, B), 0, sizes[-1])
    x_test = jax.random.normal(kt, (16, sizes[0]), jnp.float32)
    return xs, ys, x_test


SIZES = {
    1: (5, 7, 3),
    2: (4, 6, 9, 3),
    3: (3, 8, 5, 4, 2),
}
LOSSES = [("softmax_error", "mean"), ("label", "sum")]
ALL_CASES = [
    (depth, act, fb, red)
    for depth in (1, 2, 3)
    for act in ("sigmoid", "tanh")
    for fb, red in LOSSES
] + [(1, "relu", "softmax_error", "mean"), (2, "relu", "label", "sum"),
     (3, "relu", "softmax_error", "mean")]
# Each case compiles its own scan (~1-4 s). The fast set covers every pair of (depth,
# activation), (depth, loss) and (activation, loss) at least once; the rest is marked slow.
FAST = {
    (1, "sigmoid", "softmax_error"), (1, "tanh", "label"), (2, "tanh", "softmax_error"),
    (2, "sigmoid", "label"), (3, "sigmoid", "softmax_error"), (3, "tanh", "label"),
    (1, "relu", "softmax_error"),
}
CASES = [
    c if c[:3] in FAST else pytest.param(*c, marks=pytest.mark.slow) for c in ALL_CASES
]


@pytest.mark.parametrize(("depth", "activation", "feedback", "reduce"), CASES)
def test_blur_step_is_sgd(depth: int, activation: str, feedback: str, reduce: str) -> None:
    sizes = SIZES[depth]
    genome = blur.backprop_genome(learning_rate(feedback, activation))
    spec = blur.backprop_spec(sizes, activation, feedback, reduce)
    state = blur.init_state(jax.random.key(depth), genome, spec, B)
    xs, ys, x_test = _data(100 + depth, sizes)
    with jax.default_matmul_precision("highest"):
        w_fwd, w_bwd, params, pred_blur, pred_mlp, scale = make_runner(
            sizes, activation, feedback, reduce
        )(genome, state, xs, ys, x_test)
    moved = 0.0
    for l in range(spec.num_layers):
        W, b = params[l]  # [T, n_in, n_out], [T, n_out]
        np.testing.assert_allclose(w_fwd[l][:, :-1, :, 0], W, rtol=RTOL, atol=ATOL,
                                   err_msg=f"weights of layer {l}")
        np.testing.assert_allclose(w_fwd[l][:, -1, :, 0], b, rtol=RTOL, atol=ATOL,
                                   err_msg=f"biases of layer {l}")
        # both synapse channels stay equal, and the backward weights stay the tied transpose
        np.testing.assert_array_equal(w_fwd[l][..., 1], w_fwd[l][..., 0])
        np.testing.assert_array_equal(w_bwd[l], jnp.swapaxes(w_fwd[l][:, :-1], 1, 2))
        moved = max(moved, float(jnp.max(jnp.abs(W[-1] - state.w_fwd[l][:-1, :, 0]))))
    # A logit is a sum of O(10) terms W_ij h_i of size O(1); float32 rounding of those terms
    # (and of the ~1e-7 weight differences of every layer below) is relative to
    # sum_i |W_ij h_i|, not to the logit, which can cancel to ~0.01. So the absolute tolerance
    # is ATOL times that scale. Measured worst case over ALL_CASES: 0.75 of this bound (and
    # 0.13 of the weight tolerance).
    err = np.abs(np.asarray(pred_blur, np.float64) - np.asarray(pred_mlp, np.float64))
    bound = RTOL * np.abs(np.asarray(pred_mlp)) + ATOL * np.maximum(np.asarray(scale), 1.0)
    assert np.all(err <= bound), f"predictions: worst excess {np.max(err - bound):.3g}"
    assert np.all(np.isfinite(pred_mlp))
    # the comparison is not vacuous: training moved the weights >= 5000 x the tolerance
    assert moved > 5e-3, moved
    assert not np.allclose(pred_mlp[0], pred_mlp[-1], atol=1e-2)


@pytest.mark.parametrize(("activation", "feedback", "reduce"),
                         [("sigmoid", "softmax_error", "mean"), ("tanh", "label", "sum"),
                          ("relu", "softmax_error", "mean")])
def test_hidden_state_one_is_negative_gradient(activation: str, feedback: str,
                                               reduce: str) -> None:
    """After blur.backward, state 1 of every hidden layer is -dL/dz (z: pre-activation),
    state 0 is the activation, and the output's state 1 is -dL/dlogits.

    L is the loss summed over the batch: the per-example gradients, as the Hebbian rule needs
    them. For the cross-entropy case that is B x the gradient of the batch mean; the 1/B comes
    from hebbian_reduce='mean'.
    """
    sizes = (4, 6, 5, 7, 3)
    genome = blur.backprop_genome(0.1)
    spec = blur.backprop_spec(sizes, activation, feedback, reduce)
    state = blur.init_state(jax.random.key(0), genome, spec, B)
    xs, ys, _ = _data(1, sizes)
    x, y = xs[0], ys[0]
    act = HIDDEN_ACT[activation]
    params = params_of(state)
    scale = B if feedback == "softmax_error" else 1  # mean loss -> summed loss

    with jax.default_matmul_precision("highest"):
        neurons = blur.forward(genome, spec, state, x)
        neurons = blur.feedback(spec, neurons, y)
        neurons = blur.backward(genome, spec, state, neurons)

        offsets = [jnp.zeros((B, n)) for n in sizes[1:-1]]

        def loss_of(offs: list[jax.Array], logits_off: jax.Array) -> jax.Array:
            logits = mlp_logits(params, x, act, offs) + logits_off
            return scale * mlp_loss(logits, y, feedback)

        g_hidden, g_logits = jax.grad(loss_of, argnums=(0, 1))(offsets, jnp.zeros((B, sizes[-1])))
        h = x
        for l, (W, b) in enumerate(params[:-1]):
            h = act(h @ W + b)
            np.testing.assert_allclose(neurons[l + 1][..., 0], h, rtol=RTOL, atol=ATOL)
    for l, g in enumerate(g_hidden):
        assert float(jnp.max(jnp.abs(g))) > 1e-3  # non-trivial gradients
        np.testing.assert_allclose(neurons[l + 1][..., 1], -g, rtol=RTOL, atol=ATOL,
                                   err_msg=f"hidden layer {l + 1}")
    np.testing.assert_allclose(neurons[-1][..., 1], -g_logits, rtol=RTOL, atol=ATOL)
