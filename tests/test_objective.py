"""The meta-objective: a known genome's loss on fixed tasks, checked against a plain MLP + SGD.

Under ``blur.backprop_spec`` the genome ``blur.backprop_genome(lr)`` is exactly SGD on the
batch-mean softmax cross-entropy (tests/test_backprop_equivalence.py checks one step). Here the
whole objective is recomputed without BLUR: the same tasks and initial weights (same key
splitting as documented in ``meta_objective``), T SGD steps on an ordinary sigmoid MLP, then the
query loss. That checks the wiring of the objective: which key draws which task and which
synapse init, that the query (not the support) is scored, the loss formulas and the averaging
over tasks and replicas.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import blur
from blur.outer.objective import ObjectiveConfig, check_compatible, meta_objective
from blur.tasks import Mixture, get_family

SIZES = (2, 8, 2)
LR = 0.5
FAMILY = Mixture((get_family("xor"), get_family("and")))
SPEC = blur.backprop_spec(SIZES, "sigmoid", "softmax_error", "mean")
GENOME = blur.backprop_genome(LR)
CFG = ObjectiveConfig(num_steps=4, batch_size=16, num_query_batches=2, num_tasks=3,
                      num_replicas=2)
KEY = jax.random.key(42)


@functools.partial(jax.jit, static_argnames=("cfg",))
def objective(genome, key, cfg):
    with jax.default_matmul_precision("highest"):
        return meta_objective(genome, SPEC, FAMILY, key, cfg)


@jax.jit
def objective_and_grad(genome, key):
    """Loss, aux and meta-gradient for CFG (one compilation shared by several tests)."""
    with jax.default_matmul_precision("highest"):
        return jax.value_and_grad(meta_objective, has_aux=True)(genome, SPEC, FAMILY, key, CFG)


# ------------------------------------------------------------------ independent reference


def mlp_logits(params, x):
    h = x
    for i, (W, b) in enumerate(params):
        h = h @ W + b
        if i < len(params) - 1:
            h = jax.nn.sigmoid(h)
    return h


def ce(logits, y):
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(y.shape[0]), y])


def l2(logits, y):
    target = 2.0 * jax.nn.one_hot(y, logits.shape[-1]) - 1.0
    return jnp.mean(jnp.sum((logits - target) ** 2, axis=-1))


def reference_episode(lr, params, support, query, loss, points):
    """T SGD steps on the support batches; (query loss, query acc) averaged over the scoring
    points (numbers of steps taken), and the last batch's train acc."""
    train_acc = 0.0
    x_q = query.x.reshape(-1, query.x.shape[-1])
    y_q = query.y.reshape(-1)
    values, accs = [], []
    for t in range(support.x.shape[0]):
        x, y = support.x[t], support.y[t]
        train_acc = jnp.mean(jnp.argmax(mlp_logits(params, x), -1) == y)
        grads = jax.grad(lambda p, x=x, y=y: ce(mlp_logits(p, x), y))(params)
        params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
        if t + 1 in points:
            logits = mlp_logits(params, x_q)
            values.append(ce(logits, y_q) if loss == "cross_entropy" else l2(logits, y_q))
            accs.append(jnp.mean(jnp.argmax(logits, -1) == y_q))
    return jnp.mean(jnp.stack(values)), jnp.mean(jnp.stack(accs)), train_acc


@functools.partial(jax.jit, static_argnames=("cfg", "points"))
def reference(lr, key, cfg, points=None):
    """Per (task, replica) results, each [N, R], with the key splitting of meta_objective.

    ``points``: the step counts after which the query is scored (default: T only)."""
    points = points or (cfg.num_steps,)
    task_keys, init_keys = jax.random.split(key)
    task_keys = jax.random.split(task_keys, cfg.num_tasks)
    init_keys = jax.random.split(init_keys, (cfg.num_tasks, cfg.num_replicas))

    def one_task(task_key, keys):
        ep = FAMILY.sample(task_key, cfg.num_steps, cfg.batch_size, cfg.num_query_batches,
                           cfg.query_batch_size)

        def one_replica(k):
            # the initial weights: the replica's U(-1, 1) synapses, channel 0, bias row last
            state = blur.init_state(k, GENOME, SPEC, cfg.batch_size)
            params = [(w[:-1, :, 0], w[-1, :, 0]) for w in state.w_fwd]
            return reference_episode(lr, params, ep.support, ep.query, cfg.loss, points)

        return jax.vmap(one_replica)(keys)

    with jax.default_matmul_precision("highest"):
        return jax.vmap(one_task)(task_keys, init_keys)


# ---------------------------------------------------------------------------------- tests


def _check_against_reference(value, aux, cfg, points=None):
    losses, accs, train_accs = (
        np.asarray(a, np.float64) for a in reference(LR, KEY, cfg, points)
    )
    assert losses.shape == (cfg.num_tasks, cfg.num_replicas) == (3, 2)
    np.testing.assert_allclose(float(value), losses.mean(), rtol=2e-5)
    np.testing.assert_allclose(float(aux.loss), losses.mean(), rtol=2e-5)
    np.testing.assert_allclose(float(aux.accuracy), accs.mean(), atol=1e-6)
    np.testing.assert_allclose(float(aux.train_accuracy), train_accs.mean(), atol=1e-6)
    assert bool(aux.finite)
    # the mean is over 6 distinct episodes: tasks and replicas both differ, so a wrong key
    # split, a missing replica or task axis, or scoring one episode only would not match
    assert np.ptp(losses[:, 0]) > 1e-3 and np.ptp(losses[0, :]) > 1e-3
    # the query is scored after the T steps: an untrained network (lr 0) scores worse
    untrained = np.asarray(reference(0.0, KEY, cfg, points)[0], np.float64).mean()
    assert untrained > losses.mean() + 0.01


def test_backprop_genome_cross_entropy_objective_equals_sgd_mlp():
    (value, aux), _ = objective_and_grad(GENOME, KEY)
    _check_against_reference(value, aux, CFG)


def test_backprop_genome_l2_objective_equals_sgd_mlp():
    cfg = ObjectiveConfig(**{**CFG.__dict__, "loss": "l2"})
    value, aux = objective(GENOME, KEY, cfg)
    _check_against_reference(value, aux, cfg)
    (ce_value, _), _ = objective_and_grad(GENOME, KEY)
    assert abs(float(value) - float(ce_value)) > 1e-2  # the option changes the loss


def test_scoring_at_several_steps_averages_the_query_scores_after_each():
    """score_steps=(1, 2, 9) with T=4 scores after steps 1, 2 and 4 (9 >= T is ignored)."""
    cfg = ObjectiveConfig(**{**CFG.__dict__, "score_steps": (9, 2, 1)})
    assert cfg.score_points() == (1, 2, 4)
    value, aux = objective(GENOME, KEY, cfg)
    _check_against_reference(value, aux, cfg, points=(1, 2, 4))
    # and it is not the final-T score alone
    (final_only, final_aux), _ = objective_and_grad(GENOME, KEY)
    assert float(value) > float(final_only) + 1e-2
    assert float(aux.accuracy) != float(final_aux.accuracy)


def test_meta_gradient_matches_gradient_through_sgd():
    """d loss / d eta_tilde equals d loss / d lr of the SGD reference (both through T steps)."""
    _, grad = objective_and_grad(GENOME, KEY)
    ref_grad = jax.jit(jax.grad(lambda lr: jnp.mean(reference(lr, KEY, CFG)[0])))(
        jnp.float32(LR)
    )
    np.testing.assert_allclose(float(grad.eta_tilde), float(ref_grad), rtol=1e-3, atol=1e-6)
    assert abs(float(ref_grad)) > 1e-3  # not a vacuous comparison
    for leaf in jax.tree_util.tree_leaves(grad):
        assert np.all(np.isfinite(leaf))


def test_objective_is_deterministic_per_key():
    (a_loss, a_aux), a_grad = objective_and_grad(GENOME, KEY)
    (b_loss, b_aux), b_grad = objective_and_grad(GENOME, jax.random.key(42))
    assert float(a_loss) == float(b_loss)
    for x, y in zip(jax.tree_util.tree_leaves((a_aux, a_grad)),
                    jax.tree_util.tree_leaves((b_aux, b_grad)), strict=True):
        np.testing.assert_array_equal(x, y)
    (c_loss, _), _ = objective_and_grad(GENOME, jax.random.key(43))
    assert abs(float(c_loss) - float(a_loss)) > 1e-4


def test_objective_reports_non_finite_inner_loop():
    (value, aux), _ = objective_and_grad(GENOME.replace(eta_tilde=jnp.float32(jnp.nan)), KEY)
    assert not np.isfinite(float(value))
    assert not bool(aux.finite)


def test_objective_config_validation():
    with pytest.raises(ValueError, match="num_steps"):
        ObjectiveConfig(num_steps=0)
    with pytest.raises(ValueError, match="num_tasks"):
        ObjectiveConfig(num_tasks=-1)
    with pytest.raises(ValueError, match="batch_size"):
        ObjectiveConfig(batch_size=2.5)
    with pytest.raises(ValueError, match="loss"):
        ObjectiveConfig(loss="mse")
    with pytest.raises(ValueError, match="score_steps"):
        ObjectiveConfig(score_steps=(5, 0))
    assert ObjectiveConfig(num_steps=10, score_steps=(10, 15, 5)).score_points() == (5, 10)


def test_check_compatible():
    check_compatible(SPEC, FAMILY)
    with pytest.raises(ValueError, match="layer_sizes\\[0\\]=2"):
        check_compatible(blur.backprop_spec((3, 4, 2)), FAMILY)
    with pytest.raises(ValueError, match="classes"):
        check_compatible(blur.backprop_spec((2, 4, 1)), FAMILY)


@pytest.mark.slow  # 28 s; CI runs it in its slow step (.ci/run)
def test_checkpointing_each_step_changes_no_value_or_gradient():
    # remat is on by default (it is faster, too, on CPU); it must only trade memory for
    # recomputation: the same loss, aux and meta-gradient as storing every step.
    assert CFG.remat
    plain = ObjectiveConfig(**{**CFG.__dict__, "remat": False})
    genome = GENOME.replace(eta_tilde=GENOME.eta_tilde * 1.3)

    @functools.partial(jax.jit, static_argnames=("cfg",))
    def value_and_grad(genome, cfg):
        with jax.default_matmul_precision("highest"):
            return jax.value_and_grad(meta_objective, has_aux=True)(
                genome, SPEC, FAMILY, KEY, cfg
            )

    (a, a_aux), a_grad = value_and_grad(genome, CFG)
    (b, b_aux), b_grad = value_and_grad(genome, plain)
    np.testing.assert_allclose(float(a), float(b), rtol=1e-6)
    for x, y in zip(jax.tree_util.tree_leaves((a_aux, a_grad)),
                    jax.tree_util.tree_leaves((b_aux, b_grad)), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree_util.tree_leaves(a_grad))
