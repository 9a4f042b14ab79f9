"""One config per concept: the mirrored config classes stay in step with what they mirror."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from blur.experiments.config import (
    PRESETS,
    GradientSettings,
    RunConfig,
    config_from_json,
    config_to_json,
    get_preset,
)
from blur.network import NetworkConfig, NetworkSpec
from blur.outer.objective import ObjectiveConfig


def _fields(cls: type) -> dict[str, tuple[object, object]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (hints[f.name], f.default) for f in dataclasses.fields(cls)}


def test_network_config_is_network_spec_without_the_widths():
    """Same fields, types and defaults as NetworkSpec, with `hidden` for `layer_sizes`: a new
    spec option cannot be silently unreachable from presets and the CLI."""
    spec = _fields(NetworkSpec)
    config = _fields(NetworkConfig)
    assert spec.pop("layer_sizes")[1] is dataclasses.MISSING
    assert config.pop("hidden")[0] == tuple[int, ...]
    assert config == spec


def test_network_config_round_trips_through_the_spec():
    config = dataclasses.replace(get_preset("mnist10").network)
    spec = config.spec(100, 10)
    assert spec.layer_sizes == (100, *config.hidden, 10)
    assert NetworkConfig.from_spec(spec) == config
    with pytest.raises(ValueError, match="NetworkSpec.neuron_norm='sideways' is invalid"):
        NetworkConfig(neuron_norm="sideways")  # type: ignore[arg-type]


def test_run_config_holds_the_objective_config_itself():
    assert typing.get_type_hints(RunConfig)["objective"] is ObjectiveConfig


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json_and_record_their_method(name):
    config = get_preset(name)
    assert config_from_json(config_to_json(config)) == config
    assert config.method == ("cma" if name.startswith("cma") else "gradient")


def test_old_config_json_with_evolution_num_steps_still_loads():
    """Run folders written before objective.num_steps held T under evolution.num_steps."""
    import json

    data = json.loads(config_to_json(get_preset("cma-mnist14")))
    data["objective"].pop("num_steps")
    data["evolution"]["num_steps"] = 7
    data.pop("method")
    config = config_from_json(json.dumps(data))
    assert config.objective.num_steps == 7


def test_unknown_config_fields_are_refused():
    import json

    data = json.loads(config_to_json(get_preset("toy2d")))
    data["network"]["hiden"] = [3]
    with pytest.raises(ValueError, match=r"unknown NetworkConfig fields \['hiden'\]"):
        config_from_json(json.dumps(data))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_report_up_to_five_times_their_horizon(name):
    """A collapse past the meta-training horizon must show in the final table."""
    config = get_preset(name)
    assert max(config.evaluation.report_steps) >= 5 * config.final_num_steps()
    assert config.evaluation.num_tasks >= 10  # enough tasks for a paired claim


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_selection_never_sees_a_test_split(name):
    """Validation (best-of-N, early stopping, sweeps) uses held-out training data; the test
    split appears only among the reported evaluation families."""
    tasks = get_preset(name).tasks
    assert not [t for t in (*tasks.train, *tasks.validate) if "split=test" in t]
    if any("mnist" in t for t in tasks.train):
        assert all("split=val" in t for t in tasks.validate)
        # Reported on the whole test split: support from training images, query from test.
        assert all("query_split=test" in t for t in tasks.evaluation_families())


def test_cosine_schedule_reaches_the_trainer():
    """gradient.schedule=cosine anneals the trainer's Adam rate over the run's meta-steps."""
    import jax
    import jax.numpy as jnp

    from blur.experiments.config import GradientSettings, get_preset
    from blur.experiments.loop import make_trainer
    from blur.genome import init_genome

    base = get_preset("toy2d")
    cosine = dataclasses.replace(
        base,
        gradient=dataclasses.replace(
            base.gradient, meta_steps=4, schedule="cosine", final_lr_fraction=0.0
        ),
    )
    genome = init_genome("delta", jax.random.key(0), 2)
    opt = make_trainer(cosine, genome).optimizer
    params, grads = {"a": jnp.zeros(1)}, {"a": jnp.ones(1)}
    state = opt.init(params)
    steps = []
    for _ in range(5):
        updates, state = opt.update(grads, state, params)
        steps.append(-float(updates["a"][0]))
    lr = base.gradient.learning_rate
    assert steps[0] == pytest.approx(lr, rel=1e-4) and steps[2] == pytest.approx(lr / 2, rel=1e-4)
    assert steps[4] == pytest.approx(0.0, abs=1e-7)  # annealed to final_lr_fraction = 0
    constant = make_trainer(base, genome).optimizer
    u, _ = constant.update(grads, constant.init(params), params)
    assert -float(u["a"][0]) == pytest.approx(lr, rel=1e-4)
    with pytest.raises(ValueError, match="final_lr_fraction=2"):
        GradientSettings(final_lr_fraction=2)


@pytest.mark.parametrize("gap", [-0.1, 1.5])
def test_exploit_gap_outside_an_accuracy_range_is_refused_with_the_field_named(gap):
    with pytest.raises(ValueError, match=r"gradient.exploit_below=.* must be an accuracy gap"):
        GradientSettings(exploit_below=gap)
    assert GradientSettings(exploit_below=0.0).exploit_below == 0.0
    assert GradientSettings().exploit_below is None  # off unless a preset or flag sets it


def test_explore_scale_is_checked_and_needs_the_exploit_step():
    with pytest.raises(ValueError, match=r"gradient.explore_scale=-0.1 must be >= 0"):
        GradientSettings(exploit_below=0.05, explore_scale=-0.1)
    with pytest.raises(ValueError, match=r"exploit_below is None .* --gradient.exploit-below"):
        GradientSettings(explore_scale=0.1)
    assert GradientSettings(exploit_below=0.05, explore_scale=0.1).explore_scale == 0.1
    assert GradientSettings().explore_scale is None  # off unless a flag sets it
    assert GradientSettings(explore_scale=0.0).explore_scale == 0.0  # zero noise needs nothing


def test_init_spread_is_checked_and_gives_the_runs_different_seeded_starts():
    import jax
    import numpy as np

    from blur.experiments.config import GradientSettings, get_preset
    from blur.experiments.loop import make_trainer
    from blur.experiments.runs import initial_genome

    with pytest.raises(ValueError, match=r"gradient.init_spread=-0.1 must be >= 0"):
        GradientSettings(init_spread=-0.1)
    assert GradientSettings().init_spread is None  # off unless a flag sets it
    base = get_preset("toy2d")
    genome = initial_genome(base, base.network.num_layers, jax.random.key(0))

    def starts(spread: float | None, seed: int = 0) -> list[np.ndarray]:
        config = dataclasses.replace(
            base, seed=seed, gradient=dataclasses.replace(base.gradient, init_spread=spread))
        state = make_trainer(config, genome).init()
        return [np.asarray(x) for x in jax.tree_util.tree_leaves(state.genomes)]

    same = starts(None)
    for leaf, g in zip(same, jax.tree_util.tree_leaves(genome), strict=True):
        for r in range(leaf.shape[0]):  # off: every run starts from the genome itself
            np.testing.assert_array_equal(leaf[r], g)
    spread = starts(0.1)
    nu = [x for x in spread if x.ndim >= 3 and x.shape[-1] == x.shape[-2]][0]
    np.testing.assert_array_equal(nu[0], [x for x in same if x.shape == nu.shape][0][0])  # run 0
    assert all(not np.array_equal(nu[r], nu[0]) for r in range(1, nu.shape[0]))
    assert not np.array_equal(nu[1], nu[2])  # each run its own draw
    again, other_seed = starts(0.1), starts(0.1, seed=1)  # the run's seed decides the noise
    for a, b in zip(spread, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(spread, other_seed, strict=True))


def test_frozen_fields_are_checked_and_reach_the_trainer():
    """gradient.frozen: a bad entry names itself; a layer the genome lacks fails in
    make_trainer (before compiling); a good one zeroes that field's update."""
    import jax
    import numpy as np

    from blur.experiments.loop import make_trainer
    from blur.experiments.runs import initial_genome

    with pytest.raises(ValueError, match=r"'oja_' is not a genome field"):
        GradientSettings(frozen=("oja_",))
    base = get_preset("toy2d")  # a per-layer genome with 2 synapse layers
    genome = initial_genome(base, base.network.num_layers, jax.random.key(0))

    def trainer(*frozen: str):
        config = dataclasses.replace(
            base, gradient=dataclasses.replace(base.gradient, frozen=frozen))
        return make_trainer(config, genome)

    with pytest.raises(ValueError, match=r"fwd_norm_scale@2: the genome has 2 synapse layers"):
        trainer("fwd_norm_scale@2")
    opt = trainer("fwd_norm_scale@-1").optimizer
    grads = jax.tree_util.tree_map(np.ones_like, genome)
    updates, _ = opt.update(grads, opt.init(genome), genome)
    scale = np.asarray(updates.fwd_norm_scale)
    assert np.all(scale[-1] == 0.0) and np.all(scale[:-1] != 0.0)
    assert np.all(np.asarray(updates.nu) != 0.0)
    # the runs' start noise (and the explore step's, the same function) leaves frozen values
    config = dataclasses.replace(base, gradient=dataclasses.replace(
        base.gradient, frozen=("fwd_norm_scale@-1",), init_spread=0.1, exploit_below=0.0,
        explore_scale=0.1))
    trainer = make_trainer(config, genome)
    state = trainer.init()
    start = np.asarray(genome.fwd_norm_scale)
    spread = np.asarray(state.genomes.fwd_norm_scale)
    assert all(np.array_equal(spread[r, -1], start[-1]) for r in range(spread.shape[0]))
    assert not np.array_equal(spread[1, 0], start[0])  # the unfrozen layer got its noise
    R = config.gradient.num_runs
    scores = np.array([0.9, 0.1] + [0.5] * (R - 2))  # run 1 restarts from run 0, then moves
    state, record = trainer.after_validation(state, scores, jax.random.key(1))
    assert record["restarted_from"][1] == 0
    after = np.asarray(state.genomes.fwd_norm_scale)
    assert np.array_equal(after[1, -1], start[-1])
    assert not np.array_equal(after[1, 0], spread[0, 0])  # a moved copy of run 0's layer 0
