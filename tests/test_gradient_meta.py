"""Gradient meta-training: Adam through the unrolled inner loop on R runs side by side.

The tiny network, task mix, objective and optimizer come from run_helpers.py (shared with
test_divergence.py, so the jitted ``meta_step`` is compiled once for both).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from run_helpers import CFG, FAMILY, LR, OPT, SPEC

import blur
from blur.outer import gradient
from blur.outer.gradient import Curriculum
from blur.outer.objective import meta_objective, score_genomes


def two_runs() -> blur.Genome:
    """Two different starting genomes: the delta init and a random one."""
    return blur.stack_layers([blur.delta_genome(2), blur.random_genome(jax.random.key(1), 2)])


def unstack(genomes, r):
    return jax.tree_util.tree_map(lambda x: x[r], genomes)


# --------------------------------------------------------------------------- curriculum


def test_curriculum_num_steps():
    c = Curriculum(start=10, increment=5, every=300, maximum=20)
    assert [c.num_steps(s) for s in (0, 1, 299, 300, 599, 600, 899, 900, 10**6)] == [
        10, 10, 10, 15, 15, 20, 20, 20, 20,
    ]
    fixed = Curriculum(start=7, increment=5, every=0, maximum=50)
    assert {fixed.num_steps(s) for s in (0, 1, 10**6)} == {7}
    no_growth = Curriculum(start=3, increment=0, every=2, maximum=3)
    assert [no_growth.num_steps(s) for s in range(6)] == [3] * 6
    odd = Curriculum(start=1, increment=2, every=3, maximum=6)
    assert [odd.num_steps(s) for s in range(12)] == [1, 1, 1, 3, 3, 3, 5, 5, 5, 6, 6, 6]


@pytest.mark.parametrize("kwargs", [
    {"start": 0}, {"start": 10, "maximum": 5}, {"increment": -1}, {"every": -3},
])
def test_curriculum_rejects_invalid(kwargs):
    with pytest.raises(ValueError, match="Curriculum"):
        Curriculum(**kwargs)


# ---------------------------------------------------------------------------- optimizer


def test_make_optimizer_clips_then_adam():
    opt = gradient.make_optimizer(0.1, 2.0)
    params = {"a": jnp.zeros(4)}
    grads = {"a": jnp.array([30.0, -40.0, 0.0, 0.0])}  # global norm 50 -> clipped to 2
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    # first Adam step: -lr * m / (sqrt(v) + eps) = -lr * sign(g) where g != 0
    np.testing.assert_allclose(updates["a"], [-0.1, 0.1, 0.0, 0.0], rtol=1e-5)
    adam_state = state[1][0]
    np.testing.assert_allclose(adam_state.mu["a"], 0.1 * np.array([1.2, -1.6, 0, 0]), rtol=1e-5)
    assert int(adam_state.count) == 1


def test_make_optimizer_scale_by_parameter_gives_relative_steps():
    """Each field's Adam step is multiplied by its RMS, floored at 1: per-layer Hebbian rates
    (200, 100, 50) move RMS = 132x further than with plain Adam; an O(1) or zero field moves
    as before."""
    params = {
        "eta_tilde": jnp.array([200.0, 100.0, 50.0]),
        "nu": jnp.full((2, 2), 0.5),
        "shift": jnp.zeros(2),
    }
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    plain = gradient.make_optimizer(0.1, 1e6)
    scaled = gradient.make_optimizer(0.1, 1e6, True)
    assert scaled is not plain
    u_plain, _ = plain.update(grads, plain.init(params), params)
    u_scaled, _ = scaled.update(grads, scaled.init(params), params)
    rms = float(np.sqrt(np.mean(np.array([200.0, 100.0, 50.0]) ** 2)))
    np.testing.assert_allclose(u_plain["eta_tilde"], [-0.1] * 3, rtol=1e-5)
    np.testing.assert_allclose(u_scaled["eta_tilde"], [-0.1 * rms] * 3, rtol=1e-5)
    for name in ("nu", "shift"):
        np.testing.assert_allclose(u_scaled[name], u_plain[name], rtol=1e-6)


def test_make_optimizer_cosine_schedule_anneals_the_step():
    """With decay_steps the Adam step follows lr * cosine(t / decay) down to lr * fraction."""
    opt = gradient.make_optimizer(0.1, 1e6, decay_steps=10, final_fraction=0.2)
    params = {"a": jnp.zeros(1)}
    grads = {"a": jnp.ones(1)}
    state = opt.init(params)
    sizes = []
    for _ in range(12):
        updates, state = opt.update(grads, state, params)
        sizes.append(-float(updates["a"][0]))  # Adam with a constant gradient: step = rate
    expected = [0.1 * (0.2 + 0.8 * 0.5 * (1 + np.cos(np.pi * min(t, 10) / 10))) for t in range(12)]
    np.testing.assert_allclose(sizes, expected, rtol=1e-4)
    with pytest.raises(ValueError, match="final_fraction=1.5 in"):
        gradient.make_optimizer(0.1, 1.0, decay_steps=5, final_fraction=1.5)


def test_make_optimizer_is_cached_for_jit_reuse():
    """Equal settings give the same object, so meta_step (optimizer static) compiles once."""
    assert gradient.make_optimizer(0.01, 10.0) is OPT
    assert gradient.make_optimizer(0.02, 10.0) is not OPT


# ------------------------------------------------------------------------------- update


def test_init_state_shapes():
    state = gradient.init(two_runs(), OPT)
    np.testing.assert_array_equal(state.skipped, [0, 0])
    assert state.skipped.dtype == jnp.int32
    for leaf in jax.tree_util.tree_leaves(state.opt_state):
        assert leaf.shape[:1] == (2,)


def test_meta_steps_lower_the_meta_loss():
    """30 Adam steps on xor/and lower the meta-loss on FIXED evaluation tasks clearly."""
    eval_key = jax.random.key(1234)
    state = gradient.init(two_runs(), OPT)
    before = score_genomes(state.genomes, eval_key, spec=SPEC, family=FAMILY, cfg=CFG)
    train_key = jax.random.key(7)
    losses = []
    for i in range(30):
        state, m = gradient.meta_step(state, jax.random.fold_in(train_key, i), spec=SPEC,
                                      family=FAMILY, cfg=CFG, optimizer=OPT)
        losses.append(np.asarray(m.loss))
        assert np.all(np.isfinite(np.asarray(m.grad_norm)))
        assert not np.any(np.asarray(m.skipped))
    after = score_genomes(state.genomes, eval_key, spec=SPEC, family=FAMILY, cfg=CFG)
    before_loss, after_loss = np.asarray(before.loss), np.asarray(after.loss)
    assert np.all(np.isfinite(after_loss))
    # both runs improve by at least 15% (measured: ~28% and ~40%)
    assert np.all(after_loss < 0.85 * before_loss), (before_loss, after_loss)
    assert float(np.mean(after.accuracy)) > float(np.mean(before.accuracy))
    # the training loss went down as well (first 5 vs last 5 steps, mean over runs)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    np.testing.assert_array_equal(state.skipped, [0, 0])
    # the runs stay distinct (each has its own genome and optimizer state)
    assert not np.allclose(state.genomes.nu[0], state.genomes.nu[1])


@jax.jit
def one_run_update(genome, opt_state, key):
    """The update of ONE run written out directly (no vmap): the reference for meta_step."""
    (loss, aux), grads = jax.value_and_grad(meta_objective, has_aux=True)(
        genome, SPEC, FAMILY, key, CFG
    )
    updates, opt_state = OPT.update(grads, opt_state, genome)
    gnorm = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree_util.tree_leaves(grads)))
    return optax.apply_updates(genome, updates), opt_state, loss, gnorm


def test_vmapped_update_equals_runs_one_at_a_time():
    genomes = two_runs()
    state = gradient.init(genomes, OPT)
    keys = [jax.random.key(100 + i) for i in range(3)]
    metrics = []
    for k in keys:
        state, m = gradient.meta_step(state, k, spec=SPEC, family=FAMILY, cfg=CFG,
                                      optimizer=OPT)
        metrics.append(m)
    for r in range(2):
        genome = unstack(genomes, r)
        opt_state = OPT.init(genome)
        for i, k in enumerate(keys):
            # run r draws its tasks from fold_in(key, r) (documented in meta_step)
            genome, opt_state, loss, gnorm = one_run_update(genome, opt_state,
                                                            jax.random.fold_in(k, r))
            np.testing.assert_allclose(metrics[i].loss[r], loss, rtol=1e-5)
            np.testing.assert_allclose(metrics[i].grad_norm[r], gnorm, rtol=1e-4)
        for name, got, want in zip(
            blur.genome_to_dict(genome)["fields"],
            jax.tree_util.tree_leaves(unstack(state.genomes, r)),
            jax.tree_util.tree_leaves(genome), strict=True,
        ):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6,
                                       err_msg=f"run {r}, field {name}")
        for got, want in zip(jax.tree_util.tree_leaves(unstack(state.opt_state, r)),
                             jax.tree_util.tree_leaves(opt_state), strict=True):
            # Adam's moments, to the same 1e-4 as the gradient norm above, relative to each
            # leaf's scale: a component 30x smaller than its leaf's largest carries the same
            # absolute rounding (the vmapped and the single run are fused differently)
            scale = float(np.max(np.abs(np.asarray(want)))) if np.size(want) else 0.0
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale + 1e-12)
    # runs got different tasks: their losses differ even at step 0... and the genomes moved
    assert abs(float(metrics[0].loss[0] - metrics[0].loss[1])) > 1e-4
    moved = np.max(np.abs(np.asarray(state.genomes.mu) - np.asarray(genomes.mu)))
    assert moved > 0.01


def test_score_genomes_uses_a_common_key():
    """Each run is scored on the same tasks: two identical genomes get identical scores, equal
    to the objective of that genome at that key."""
    g = blur.delta_genome(2)
    key = jax.random.key(5)
    aux = score_genomes(blur.stack_layers([g, g]), key, spec=SPEC, family=FAMILY,
                                 cfg=CFG)
    assert float(aux.loss[0]) == float(aux.loss[1])
    loss = one_run_update(g, OPT.init(g), key)[2]  # the loss before the update
    np.testing.assert_allclose(aux.loss[0], loss, rtol=1e-5)
    other = score_genomes(blur.stack_layers([g, g]), jax.random.key(6), spec=SPEC,
                                   family=FAMILY, cfg=CFG)
    assert abs(float(other.loss[0]) - float(aux.loss[0])) > 1e-4


# --------------------------------------------------------------------------- exploit (PBT)


def _marked_state(R: int) -> gradient.GradientState:
    """R runs whose genome and Adam moments carry their run index, to see what was copied."""
    genomes = jax.tree_util.tree_map(
        lambda x: jnp.stack([jnp.full_like(x, r) for r in range(R)]), blur.delta_genome(2)
    )
    state = gradient.init(genomes, OPT)
    runs = jnp.arange(R)
    return state.replace(
        opt_state=jax.tree_util.tree_map(
            lambda x: x + runs.reshape(-1, *[1] * (x.ndim - 1)).astype(x.dtype), state.opt_state
        ),
        skipped=jnp.arange(R, dtype=jnp.int32),
        streak=jnp.array([0, 3, 0, 5][:R], jnp.int32),
        dropped=jnp.array([False, False, False, True][:R]),
    )


def test_exploit_pairs_the_worst_half_with_the_best_half():
    state = _marked_state(4)
    # run 3 is dropped (its score, the highest, must not count): ranked 1, 0, 2, 3; the worst
    # half (3, 2) is paired with the best half (1, 0) and both are replaced
    new, source = gradient.exploit(state, np.array([0.80, 0.86, 0.70, 0.99]), below=0.05)
    np.testing.assert_array_equal(source, [0, 1, 0, 1])
    for r, src in enumerate([0, 1, 0, 1]):
        np.testing.assert_array_equal(new.genomes.nu[r], state.genomes.nu[src])
    for old, leaf in zip(jax.tree_util.tree_leaves(state.opt_state),
                         jax.tree_util.tree_leaves(new.opt_state), strict=True):
        np.testing.assert_array_equal(leaf, old[np.array([0, 1, 0, 1])])
    np.testing.assert_array_equal(new.skipped, [0, 1, 2, 3])  # history is kept
    np.testing.assert_array_equal(new.streak, [0, 3, 0, 0])  # runs 0, 1 are sources: unchanged
    np.testing.assert_array_equal(new.dropped, [False, False, False, False])
    # the best half keeps its genomes however far behind the best it is (lineages survive)
    _, source = gradient.exploit(state.replace(dropped=jnp.zeros((4,), bool)),
                                 np.array([0.9, 0.5, 0.4, 0.3]), below=0.05)
    np.testing.assert_array_equal(source, [0, 1, 1, 0])


def test_exploit_keeps_runs_within_the_gap_and_does_nothing_without_a_live_run():
    state = _marked_state(3)
    new, source = gradient.exploit(state, np.array([0.84, 0.86, 0.70]), below=0.05)
    np.testing.assert_array_equal(source, [0, 1, 1])  # the middle run (3 // 2 = 1 pair) stays
    np.testing.assert_array_equal(new.genomes.nu[0], state.genomes.nu[0])
    np.testing.assert_array_equal(new.genomes.nu[2], state.genomes.nu[1])
    _, source = gradient.exploit(state, np.array([0.84, 0.86, 0.82]), below=0.05)
    np.testing.assert_array_equal(source, [0, 1, 2])  # 0.82 is within 0.05 of 0.86
    same, source = gradient.exploit(state, np.array([0.5, 0.5, 0.5]), below=0.0)
    np.testing.assert_array_equal(source, [0, 1, 2])
    assert same is state
    dead = state.replace(dropped=jnp.ones((3,), bool))
    same, source = gradient.exploit(dead, np.array([0.9, 0.1, 0.2]), below=0.0)
    np.testing.assert_array_equal(source, [0, 1, 2])
    assert same is dead


def test_explore_moves_only_the_restarted_runs_by_relative_noise():
    genomes = _marked_state(4).genomes
    source = np.array([0, 1, 0, 1])  # runs 2 and 3 were restarted from 0 and 1
    key = jax.random.key(5)
    new = gradient.explore(genomes, source, key, scale=0.1)
    for old, leaf in zip(jax.tree_util.tree_leaves(genomes), jax.tree_util.tree_leaves(new),
                         strict=True):
        np.testing.assert_array_equal(leaf[:2], old[:2])  # kept runs: bitwise the same
        for r in (2, 3):
            rms = float(np.sqrt(np.mean(np.square(old[r]))))
            delta = np.asarray(leaf[r] - old[r])
            if rms == 0.0:
                np.testing.assert_array_equal(delta, 0.0)  # an all-zero field stays zero
                continue
            assert np.any(delta != 0.0)
            # noise of about scale * rms per value: at most 6 standard deviations anywhere
            assert np.max(np.abs(delta)) <= 6 * 0.1 * rms * (1 + 1e-6)
    again = gradient.explore(genomes, source, key, scale=0.1)  # the key decides the noise
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(again),
                    strict=True):
        np.testing.assert_array_equal(a, b)
    # nothing restarted, or no noise: the genomes themselves come back
    assert gradient.explore(genomes, np.arange(4), key, scale=0.1) is genomes
    assert gradient.explore(genomes, source, key, scale=0.0) is genomes
    # large fields get noise of about the asked size (nu: [4, L?, K, K] values)
    big = jax.tree_util.tree_map(lambda x: jnp.ones((4, 64, 64), x.dtype), genomes.nu)
    moved = gradient.explore(big, source, key, scale=0.1)
    assert 0.09 < float(jnp.std(moved[2] - big[2])) < 0.11


# ----------------------------------------------------------------------- frozen fields


def test_parse_frozen_reads_fields_and_layers():
    assert gradient.parse_frozen(()) == ()
    assert gradient.parse_frozen(("eta_tilde", "fwd_norm_scale@-1", "nu@0", "nu@1")) == (
        ("nu", (0, 1)), ("fwd_norm_scale", (-1,)), ("eta_tilde", None),
    )  # genome field order; one field's layers joined
    assert gradient.parse_frozen(("nu@0", "nu")) == (("nu", None),)  # the whole field wins


@pytest.mark.parametrize("entry, message", [
    ("fwd_norm_scal", r"'fwd_norm_scal' is not a genome field; choose from .*fwd_norm_scale"),
    ("nu@last", r"'nu@last'.* the layer after '@' must be an integer"),
])
def test_parse_frozen_names_a_bad_entry(entry, message):
    with pytest.raises(ValueError, match=message):
        gradient.parse_frozen((entry,))


def test_frozen_mask_refuses_layers_a_genome_lacks():
    shared, per_layer = blur.delta_genome(2), blur.stack_layers([blur.delta_genome(2)] * 2)
    shared_message = r"nu@0 names layers, .*shared by all layers .*drop '@LAYER'"
    with pytest.raises(ValueError, match=shared_message):
        gradient.frozen_mask(shared, gradient.parse_frozen(("nu@0",)))
    with pytest.raises(ValueError, match=r"nu@2: the genome has 2 synapse layers.*\[-2, 1\]"):
        gradient.frozen_mask(per_layer, gradient.parse_frozen(("nu@2",)))
    mask = gradient.frozen_mask(per_layer, gradient.parse_frozen(("nu@-1", "eta")))
    np.testing.assert_array_equal(np.asarray(mask.nu)[:, 0, 0], [False, True])
    np.testing.assert_array_equal(np.asarray(mask.eta), [True, True])
    assert not np.any(np.asarray(mask.mu))


def test_frozen_values_keep_their_start_through_meta_steps():
    """Frozen values (one layer of nu, every layer of eta_tilde) stay bitwise at the start
    while the same field's other layer and the unfrozen fields move; without the freeze the
    frozen values would move too."""
    spec = dataclasses.replace(SPEC, per_layer_genome=True)
    genome = blur.stack_layers([blur.random_genome(jax.random.key(i), 2) for i in range(2)])
    genomes = jax.tree_util.tree_map(lambda x: jnp.stack([x] * 2), genome)

    def train(frozen: tuple[str, ...]) -> blur.Genome:
        opt = gradient.make_optimizer(LR, 10.0, frozen=gradient.parse_frozen(frozen))
        state = gradient.init(genomes, opt)
        for i in range(3):
            state, m = gradient.meta_step(state, jax.random.key(i), spec=spec, family=FAMILY,
                                          cfg=CFG, optimizer=opt)
            assert not np.any(np.asarray(m.skipped))
        return state.genomes

    def moved(after: blur.Genome, name: str) -> np.ndarray:
        """Largest change per run and layer, [R, L]."""
        d = np.abs(np.asarray(getattr(after, name)) - np.asarray(getattr(genomes, name)))
        return d.reshape(d.shape[0], d.shape[1], -1).max(axis=-1)

    frozen = train(("nu@-1", "eta_tilde"))
    np.testing.assert_array_equal(np.asarray(frozen.nu)[:, -1], np.asarray(genomes.nu)[:, -1])
    np.testing.assert_array_equal(np.asarray(frozen.eta_tilde), np.asarray(genomes.eta_tilde))
    assert np.all(moved(frozen, "nu")[:, 0] > 1e-3)
    assert np.all(moved(frozen, "mu_tilde") > 1e-3)
    free = train(())
    assert np.all(moved(free, "nu") > 1e-3)
    assert np.all(np.abs(np.asarray(free.eta_tilde) - np.asarray(genomes.eta_tilde)) > 1e-4)
