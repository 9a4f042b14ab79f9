"""Evolution: the CMA-ES ask/tell adapter (pycma, IPOP/BIPOP, replay) and population scoring."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import blur
from blur.experiments.config import (
    PAPER_NETWORK,
    TaskConfig,
    build_train_family,
)
from blur.outer.evolution import (
    CMAES,
    WORST,
    CMAConfig,
    candidate_init_keys,
    fitness_from_aux,
    score_population,
)
from blur.outer.objective import ObjectiveAux, ObjectiveConfig, meta_objective


def run(es: CMAES, f, max_generations: int = 3000, until_stop: bool = True) -> int:
    """Ask/tell until pycma's own stop criteria (tolx/tolfun) fire; returns generations."""
    for g in range(max_generations):
        if until_stop and es._es.stop():
            return g
        X = es.ask()
        es.tell(X, f(X))
    return max_generations


# ------------------------------------------------------------------------ optimisation


def test_cmaes_minimises_sphere():
    es = CMAES(3.0 * np.ones(8), CMAConfig(popsize=12, sigma0=1.0, seed=1))
    gens = run(es, lambda X: np.sum(X**2, axis=1))
    assert gens < 3000  # stopped by convergence, not by the cap
    assert np.linalg.norm(es.best_x) < 1e-6
    assert np.linalg.norm(es.mean) < 1e-6
    assert es.best_f < 1e-12
    assert es.generation == gens == len(es.history)


def test_cmaes_minimises_shifted_ill_conditioned_quadratic():
    rng = np.random.default_rng(0)
    c = rng.uniform(-2, 2, 6)
    d = np.logspace(0, 2, 6)  # condition number 100
    es = CMAES(np.zeros(6), CMAConfig(popsize=10, sigma0=1.0, seed=2))
    run(es, lambda X: np.sum(d * (X - c) ** 2, axis=1))
    assert np.max(np.abs(es.best_x - c)) < 1e-4
    assert np.max(np.abs(es.mean - c)) < 1e-4


def test_cmaes_direction_is_minimisation():
    """Tell what to MINIMISE: to maximise a fitness, tell its negative (as evolve does);
    telling the fitness itself walks away from the maximum."""
    c = np.array([1.0, -2.0, 0.5, 3.0, -1.0])

    def fitness(X):  # to maximise, maximum at c
        return -np.sum((X - c) ** 2, axis=1)

    good = CMAES(np.zeros(5), CMAConfig(popsize=10, sigma0=0.5, seed=4))
    run(good, lambda X: -fitness(X))
    assert np.max(np.abs(good.best_x - c)) < 1e-4
    assert good.best_f == pytest.approx(-np.max(fitness(good.best_x[None])), abs=1e-12)
    wrong = CMAES(np.zeros(5), CMAConfig(popsize=10, sigma0=0.5, seed=4))
    run(wrong, fitness, max_generations=40, until_stop=False)
    assert np.linalg.norm(wrong.mean - c) > np.linalg.norm(c) + 1.0


def test_cmaes_non_finite_values_are_told_worst_and_it_keeps_going():
    es = CMAES(np.ones(4), CMAConfig(popsize=8, sigma0=0.5, seed=5))
    for _ in range(30):
        X = es.ask()
        values = np.sum(X**2, axis=1)
        values[::3] = np.nan
        values[1] = np.inf
        es.tell(X, values)
    assert all(h[0] == WORST and h[3] == WORST and h[1] == WORST for h in es.history)
    assert np.isfinite(es.best_f) and es.best_f < 0.5
    assert np.all(np.isfinite(es.mean)) and np.linalg.norm(es.mean) < 1.0
    assert es.ask().shape == (8, 4)


def test_cmaes_all_non_finite_generation_does_not_crash():
    es = CMAES(np.zeros(3), CMAConfig(popsize=6, sigma0=0.3, seed=6))
    X = es.ask()
    es.tell(X, np.full(6, np.nan))
    assert es.best_f == WORST
    assert np.all(np.isfinite(es.ask()))


# ----------------------------------------------------------------------------- restarts


def _flat(X):
    return np.ones(len(X))  # flat fitness: pycma stops at once (tolflatfitness / tolfun)


def test_ipop_doubles_population_after_each_stop():
    es = CMAES(np.zeros(4), CMAConfig(popsize=6, sigma0=0.5, seed=3, restarts="ipop",
                                      max_restarts=3))
    sizes, restart_generations = [], []
    for _ in range(120):
        X = es.ask()
        sizes.append(len(X))
        before = es.restart_count
        es.tell(X, _flat(X))
        if es.restart_count > before:
            restart_generations.append(es.generation)
            assert not es._es.stop()  # a fresh strategy replaced the stopped one
            assert es._es.countiter == 0
    distinct = [s for i, s in enumerate(sizes) if i == 0 or sizes[i - 1] != s]
    assert distinct == [6, 12, 24, 48]
    assert len(restart_generations) == 3
    assert es.restart_count == 3  # capped at max_restarts: the last run keeps going
    assert es._es.stop()  # ...even though pycma would stop it
    assert es.ask().shape == (48, 4)


def test_no_restarts_keeps_population():
    es = CMAES(np.zeros(4), CMAConfig(popsize=6, sigma0=0.5, seed=3, restarts="none"))
    run(es, _flat, max_generations=50, until_stop=False)
    assert es._es.stop()  # pycma wants to stop, but no restart is made
    assert es.restart_count == 0 and es.popsize == 6 and es.ask().shape == (6, 4)


def test_ipop_restart_resets_mean_and_sigma():
    x0 = np.array([0.5, -0.5, 1.0])
    es = CMAES(x0, CMAConfig(popsize=6, sigma0=0.7, seed=8, restarts="ipop"))
    while es.restart_count == 0:
        X = es.ask()
        es.tell(X, _flat(X))
    np.testing.assert_array_equal(es.mean, x0)
    assert es.sigma == pytest.approx(0.7)
    assert es.popsize == 12


def test_bipop_alternates_small_and_large_regimes():
    P = 6
    es = CMAES(np.zeros(4), CMAConfig(popsize=P, sigma0=0.5, seed=3, restarts="bipop",
                                      max_restarts=6))
    sizes, sigmas = [], []
    for _ in range(200):
        X = es.ask()
        if not sizes or len(X) != sizes[-1] or es.generation == 0:
            sigmas.append(es.sigma)
        sizes.append(len(X))
        es.tell(X, _flat(X))
    assert es.restart_count == 6
    distinct = sorted(set(sizes))
    # the large regime doubles (6 -> 12 -> ...), the small one stays below the large size
    assert 2 * P in distinct
    assert any(s < P for s in distinct)
    assert max(distinct) <= P * 2**6
    assert min(sigmas) < 0.5  # small-regime runs draw a smaller step size


class _ZeroUniform:
    """The adapter's generator, except that ``uniform()`` draws u = 0: every small-regime run
    then gets sigma0 and the default population size."""

    def __init__(self, rng):
        self.rng = rng

    def uniform(self, *args, **kwargs):
        return 0.0

    def __getattr__(self, name):
        return getattr(self.rng, name)


def test_bipop_small_run_of_default_size_is_budgeted_as_small():
    """A small-regime run may draw the default population size; its evaluations still count
    for the small regime, so the large regime gets its turn (it never did: the budget was
    told apart by popsize, and the population never doubled)."""
    es = CMAES(np.zeros(4), CMAConfig(popsize=6, sigma0=0.5, seed=3, restarts="bipop",
                                      max_restarts=6))
    es._rng = _ZeroUniform(es._rng)
    sizes = []
    for _ in range(100):
        X = es.ask()
        sizes.append(len(X))
        es.tell(X, _flat(X))
    assert es.restart_count == 6
    assert es._small_evals > 0
    assert 12 in sizes and 24 in sizes


# ------------------------------------------------------------------------------- replay


def _sphere_with_nans(X):
    v = np.sum((X - 0.3) ** 2, axis=1)
    v[::4] = np.nan
    return v


@pytest.mark.parametrize(("restarts", "f", "generations"), [
    ("none", _sphere_with_nans, 25),
    ("ipop", _flat, 40),
    ("bipop", _flat, 60),
])
def test_replay_reproduces_exact_state(restarts, f, generations):
    x0 = np.array([1.0, -1.0, 0.5, 2.0, 0.0])
    cfg = CMAConfig(popsize=6, sigma0=0.4, seed=11, restarts=restarts)
    es = CMAES(x0, cfg)
    run(es, f, max_generations=generations, until_stop=False)
    if restarts != "none":
        assert es.restart_count >= 2  # the replay goes through restarts
    back = CMAES.replay(x0, cfg, [h.copy() for h in es.history])
    np.testing.assert_array_equal(back.mean, es.mean)
    assert back.sigma == es.sigma
    assert back.generation == es.generation == generations
    assert back.restart_count == es.restart_count
    assert back.popsize == es.popsize
    assert back.best_f == es.best_f
    np.testing.assert_array_equal(back.best_x, es.best_x)
    # the two adapters continue identically
    for _ in range(3):
        Xa, Xb = es.ask(), back.ask()
        np.testing.assert_array_equal(Xa, Xb)
        es.tell(Xa, f(Xa))
        back.tell(Xb, f(Xb))
    np.testing.assert_array_equal(back.mean, es.mean)


def test_replay_rejects_history_of_another_configuration():
    x0 = np.zeros(3)
    es = CMAES(x0, CMAConfig(popsize=6, sigma0=0.4, seed=1))
    run(es, lambda X: np.sum(X**2, axis=1), max_generations=3, until_stop=False)
    with pytest.raises(ValueError, match="generation of 6 values where CMA-ES asked for 8"):
        CMAES.replay(x0, CMAConfig(popsize=8, sigma0=0.4, seed=1), es.history)
    other = CMAES.replay(x0, CMAConfig(popsize=6, sigma0=0.4, seed=2), es.history)
    assert not np.array_equal(other.mean, es.mean)  # the seed matters


@pytest.mark.parametrize("kwargs", [
    {"popsize": 1}, {"sigma0": 0.0}, {"sigma0": -1.0}, {"restarts": "sometimes"},
])
def test_cma_config_validation(kwargs):
    with pytest.raises(ValueError, match="CMAConfig"):
        CMAConfig(**kwargs)


# ------------------------------------------------------------------------------ fitness


def test_fitness_from_aux():
    aux = ObjectiveAux(
        loss=jnp.array([0.5, jnp.nan, 0.2, 0.3]),
        accuracy=jnp.array([0.6, 0.7, jnp.nan, 0.9]),
        train_accuracy=jnp.zeros(4),
        finite=jnp.array([True, True, True, False]),
    )
    np.testing.assert_array_equal(fitness_from_aux(aux, "accuracy"),
                                  np.array([0.6, 0.7, -np.inf, -np.inf], np.float32))
    np.testing.assert_allclose(fitness_from_aux(aux, "loss"), [-0.5, -np.inf, -0.2, -np.inf])
    assert fitness_from_aux(aux, "loss").dtype == np.float64


# ----------------------------------------------------------------- population scoring

FAMILY = build_train_family(TaskConfig(train=("xor", "and")))
SPEC = dataclasses.replace(PAPER_NETWORK, hidden=(8,)).spec_for(FAMILY)
CFG = ObjectiveConfig(num_steps=3, batch_size=32, num_tasks=2)


def test_score_population_equals_looped_meta_objective():
    x0, unravel = blur.ravel_genome(blur.delta_genome(2))
    rng = np.random.default_rng(0)
    pop = np.asarray(x0, np.float64)[None] + 0.2 * rng.standard_normal((5, x0.size))
    # member 3 diverges: a huge Hebbian rate blows up the inner loop
    bad = blur.ravel_genome(blur.delta_genome(2).replace(eta_tilde=jnp.float32(1e20)))[0]
    pop[3] = np.asarray(bad, np.float64)
    key = jax.random.key(9)
    aux = score_population(pop, key, unravel=unravel, spec=SPEC, family=FAMILY, cfg=CFG)
    one = jax.jit(lambda flat: meta_objective(unravel(flat), SPEC, FAMILY, key, CFG)[1])
    looped = [one(jnp.asarray(p, jnp.float32)) for p in pop]
    for i, ref in enumerate(looped):
        assert bool(aux.finite[i]) == bool(ref.finite), i
        if bool(ref.finite):
            np.testing.assert_allclose(aux.loss[i], ref.loss, rtol=1e-5, err_msg=str(i))
            np.testing.assert_allclose(aux.accuracy[i], ref.accuracy, atol=1e-6)
            np.testing.assert_allclose(aux.train_accuracy[i], ref.train_accuracy, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(aux.finite), [True, True, True, False, True])
    assert np.ptp(np.asarray(aux.loss)[[0, 1, 2, 4]]) > 1e-4  # members differ
    fit = fitness_from_aux(aux, "accuracy")
    assert fit[3] == -np.inf and np.all(np.isfinite(fit[[0, 1, 2, 4]]))
    # the adapter takes the diverged member as WORST and continues
    es = CMAES(np.asarray(x0, np.float64), CMAConfig(popsize=5, sigma0=0.2, seed=0))
    X = es.ask()
    es.tell(X, -fit)
    assert es.history[0][3] == WORST and np.all(np.isfinite(es.mean))


@pytest.mark.slow  # 42 s; CI runs it in its slow step (.ci/run)
def test_score_population_chunks_give_the_same_scores():
    x0, unravel = blur.ravel_genome(blur.delta_genome(2))
    rng = np.random.default_rng(1)
    pop = np.asarray(x0)[None] + 0.2 * rng.standard_normal((5, x0.size)).astype(np.float32)
    key = jax.random.key(3)
    for fresh in (False, True):
        whole = score_population(pop, key, unravel=unravel, spec=SPEC, family=FAMILY, cfg=CFG,
                                 fresh_init=fresh)
        for chunk in (1, 2, 5):  # 2 leaves a remainder of 1
            part = score_population(pop, key, unravel=unravel, spec=SPEC, family=FAMILY,
                                    cfg=CFG, fresh_init=fresh, chunk_size=chunk)
            np.testing.assert_allclose(part.loss, whole.loss, rtol=1e-5, err_msg=str(chunk))
            np.testing.assert_allclose(part.accuracy, whole.accuracy, atol=1e-6)
    with pytest.raises(ValueError, match="chunk_size=0"):
        score_population(pop, key, unravel=unravel, spec=SPEC, family=FAMILY, cfg=CFG,
                         chunk_size=0)


def test_score_population_fresh_init_gives_each_candidate_its_own_synapses():
    """Shared init: identical candidates score identically (common random numbers for tasks
    AND synapses). fresh_init: same tasks, but every candidate draws its own synapses, so
    identical candidates differ, and each equals score_episodes on the shared episodes with
    some other init keys."""
    from blur.outer.objective import sample_episodes, score_episodes

    x0, unravel = blur.ravel_genome(blur.delta_genome(2))
    pop = np.stack([np.asarray(x0)] * 4)
    key = jax.random.key(5)
    shared = score_population(pop, key, unravel=unravel, spec=SPEC, family=FAMILY, cfg=CFG)
    assert np.ptp(np.asarray(shared.loss)) == 0.0
    fresh = score_population(pop, key, unravel=unravel, spec=SPEC, family=FAMILY, cfg=CFG,
                             fresh_init=True)
    losses = np.asarray(fresh.loss)
    assert len(np.unique(losses)) == 4
    assert not np.any(np.isclose(losses, float(shared.loss[0]), rtol=1e-7, atol=0))
    # the tasks are still meta_objective's: candidate i is the shared episodes scored with
    # its own init keys
    episodes, init_keys = sample_episodes(FAMILY, key, CFG)
    ref = jax.jit(lambda k: score_episodes(blur.delta_genome(2), SPEC, episodes, k, CFG)[0])
    np.testing.assert_allclose(ref(init_keys), shared.loss[0], rtol=1e-5)
    own = candidate_init_keys(key, 4, CFG)
    for i in range(4):
        np.testing.assert_allclose(ref(own[i]), losses[i], rtol=1e-5, err_msg=str(i))
    # same key, same scores: reproducible
    again = score_population(pop, key, unravel=unravel, spec=SPEC, family=FAMILY, cfg=CFG,
                             fresh_init=True)
    np.testing.assert_array_equal(np.asarray(again.loss), losses)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"search_fields": ("nu", "gamma")}, "unknown genome fields \\['gamma'\\]"),
    ({"search_fields": ()}, "searches nothing"),
    ({"search_fields": ("nu",), "shared_fields": ("mu",)}, "must be searched fields too"),
    ({"shared_fields": ("bogus",)}, "unknown genome fields"),
    ({"chunk_size": 0}, "chunk_size=0"),
])
def test_cma_config_search_settings_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CMAConfig(**kwargs)


def test_search_space_searches_only_the_chosen_fields():
    from blur.genome import RULE_FIELDS, STATE_FIELDS, calibration_delta_genome
    from blur.outer.evolution import search_space

    g0 = calibration_delta_genome(2, 2)
    cfg = CMAConfig(search_fields=list(RULE_FIELDS + STATE_FIELDS), shared_fields=RULE_FIELDS)
    assert isinstance(cfg.search_fields, tuple)  # hashable config
    x0, unravel = search_space(g0, cfg)
    assert x0.dtype == np.float64 and x0.shape == (36,)  # 20 shared + 4 x 2 layers x 2 states
    moved = unravel(jnp.asarray(x0 + 0.5, jnp.float32))
    np.testing.assert_array_equal(moved.init_scale, g0.init_scale)  # fixed: not searched
    np.testing.assert_array_equal(moved.oja, g0.oja)
    np.testing.assert_array_equal(moved.eta_tilde, g0.eta_tilde + 0.5)
    # the default searches everything, as ravel_genome does
    x_all, _ = search_space(g0, CMAConfig())
    np.testing.assert_array_equal(x_all, np.asarray(blur.ravel_genome(g0)[0], np.float64))


@pytest.mark.parametrize(("entry", "match"), [
    ("mu", "must look like FIELD=MULTIPLIER"),
    ("mu=0", "must look like FIELD=MULTIPLIER"),
    ("mu=-1", "must look like FIELD=MULTIPLIER"),
    ("mu=fast", "must look like FIELD=MULTIPLIER"),
    ("gamma=0.5", "unknown genome field 'gamma'"),
])
def test_cma_config_field_stds_validation(entry, match):
    with pytest.raises(ValueError, match=match):
        CMAConfig(field_stds=(entry,))
    with pytest.raises(ValueError, match="names 'mu' twice"):
        CMAConfig(field_stds=("mu=0.5", "mu=0.2"))
    with pytest.raises(ValueError, match="not searched"):
        CMAConfig(search_fields=("nu",), field_stds=("mu=0.5",))


def test_field_stds_scale_the_initial_step_of_the_named_fields_only():
    from blur.genome import RULE_FIELDS, STATE_FIELDS, calibration_delta_genome
    from blur.outer.evolution import coordinate_stds, search_space

    g0 = calibration_delta_genome(2, 2)
    cfg = CMAConfig(popsize=4000, sigma0=0.3, seed=3, search_fields=RULE_FIELDS + STATE_FIELDS,
                    shared_fields=RULE_FIELDS, field_stds=("mu=0.25", "f_tilde=2"))
    x0, unravel = search_space(g0, cfg)
    stds = coordinate_stds(unravel, cfg)
    names = unravel.field_names()
    assert stds is not None and stds.shape == x0.shape
    expected = [0.25 if n == "mu" else 2.0 if n == "f_tilde" else 1.0 for n in names]
    np.testing.assert_array_equal(stds, expected)
    assert names.count("mu") == 4 and names.count("f_tilde") == 1  # shared: one value each
    X = CMAES(x0, cfg, stds).ask()
    np.testing.assert_allclose(X.std(axis=0) / (0.3 * stds), 1.0, atol=0.08)
    # without the option every value starts at sigma0
    assert coordinate_stds(unravel, dataclasses.replace(cfg, field_stds=())) is None
    plain = CMAES(x0, dataclasses.replace(cfg, field_stds=())).ask()
    np.testing.assert_allclose(plain.std(axis=0) / 0.3, 1.0, atol=0.08)


def test_field_stds_naming_a_field_left_out_of_the_search_is_an_error():
    from blur.experiments.config import get_preset
    from blur.genome import calibration_delta_genome
    from blur.outer.evolution import coordinate_stds, search_space

    preset = get_preset("cma-mnist14")
    family = build_train_family(TaskConfig(train=("xor",)))
    # one synapse layer: its backward normalisation is never read, so skip_unused freezes
    # the field in every layer and it leaves the search
    spec = dataclasses.replace(preset.network, hidden=()).spec_for(family)
    cfg = dataclasses.replace(preset.evolution.cma, skip_unused=True, shared_fields=(),
                              search_fields=("nu", "bwd_norm_shift"), field_stds=("nu=0.5",))
    _, unravel = search_space(calibration_delta_genome(2, 1), cfg, spec)
    assert "bwd_norm_shift" not in unravel.fields
    assert coordinate_stds(unravel, cfg) is not None
    frozen = dataclasses.replace(cfg, field_stds=("bwd_norm_shift=0.5",))
    with pytest.raises(ValueError, match="which the search does not contain"):
        coordinate_stds(unravel, frozen)


def test_replay_with_field_stds_reproduces_the_state_and_needs_them():
    x0 = np.zeros(5)
    cfg = CMAConfig(popsize=6, sigma0=0.4, seed=1)
    stds = np.array([1.0, 0.5, 0.5, 2.0, 1.0])
    es = CMAES(x0, cfg, stds)
    for _ in range(6):
        X = es.ask()
        es.tell(X, np.sum((X - 1.0) ** 2, axis=1))
    back = CMAES.replay(x0, cfg, [h.copy() for h in es.history], stds)
    np.testing.assert_array_equal(back.mean, es.mean)
    np.testing.assert_array_equal(back.ask(), es.ask())
    # replayed without the scaling, the same history gives another state
    assert not np.allclose(CMAES.replay(x0, cfg, es.history).mean, es.mean)
    with pytest.raises(ValueError, match="positive multipliers"):
        CMAES(x0, cfg, np.ones(4))
