"""`blur bench`'s sections build and run what they time (a regression: the mnist10 and
evolution sections called objective-config members that no longer exist, and nothing ran
them, so `blur bench` crashed at its third section)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from blur import bench
from blur.experiments.config import get_preset


@pytest.mark.slow  # 30 s; CI runs it in its slow step (.ci/run)
def test_mnist10_section_builds_and_runs():
    fn, _ = bench.mnist10_fn(2)  # one meta-step of the mnist10 preset at T = 2
    _, metrics = jax.block_until_ready(fn())
    assert np.asarray(metrics.loss).shape == (get_preset("mnist10").gradient.num_runs,)


def test_mnist10_setup_takes_a_variant_of_the_preset():
    """``mnist10_setup(T, config)`` builds the runs of the given variant, not of the preset."""
    import dataclasses

    preset = get_preset("mnist10")
    assert preset.network.single_state_synapses
    variant = dataclasses.replace(
        preset,
        network=dataclasses.replace(preset.network, single_state_synapses=False),
        gradient=dataclasses.replace(preset.gradient, num_runs=2),
    )
    m = bench.mnist10_setup(3, variant)
    assert not m.spec.single_state_synapses and m.num_runs == 2 and m.cfg.num_steps == 3
    assert bench.mnist10_setup(3).spec.single_state_synapses


def test_evolution_section_builds_and_runs_with_the_presets_search_settings():
    """A regression too: the bench built its CMA-ES without the preset's per-field first steps
    (``field_stds``) and then crashed on the setup that lacked them."""
    from blur.outer.evolution import coordinate_stds

    setup = bench.evolution_setup()
    cma = get_preset("cma-mnist14").evolution.cma
    assert setup.stds is not None
    np.testing.assert_array_equal(setup.stds, coordinate_stds(setup.unravel, cma))
    generation, _, T = bench.evolution_fn(4)  # one cma-mnist14 generation of 4 candidates
    fitness = generation()
    assert fitness.shape == (4,) and T == get_preset("cma-mnist14").objective.num_steps == 15


def test_sgd_unit_is_a_burst_of_waited_calls(monkeypatch):
    # A single SGD call timed right after a long workload runs cold (2-3x slow), which made
    # the long rows' "jitted SGD steps" read 2-3x too low; the unit is now a burst of calls.
    calls = []

    def fake_sgd_fn(cfg):
        return lambda: calls.append(cfg) or np.zeros(())

    monkeypatch.setattr(bench, "sgd_fn", fake_sgd_fn)
    unit = bench.sgd_unit_fn(bench.CONFIGS["C2"])
    assert not calls
    unit()
    assert len(calls) == bench.SGD_BURST > 1
    # the long rows divide each burst's time by SGD_BURST: a workload as long as one burst is
    # SGD_BURST steps
    r = bench.ratio_stats([2.0, 4.0], [2.0, 4.0], bench.SGD_BURST)
    assert r["median"] == bench.SGD_BURST


def test_report_checks_the_meta_gradient_target_on_both_ways_of_taking_it():
    # The presets take the meta-gradient with jax.checkpoint (objective.remat); the report
    # used to check the T=10 target on the plain row alone.
    import json
    from pathlib import Path

    results = json.loads((Path(__file__).parents[1] / "benchmarks/results.json").read_text())
    rows = [r for r in results["sections"]["meta"]["rows"] if r["T"] == 10]
    assert sorted(r["remat"] for r in rows) == [False, True]
    for r in rows:
        r["sgd_steps"]["median"] = 150.0 if r["remat"] else 170.0
    text = bench.markdown(results)
    assert "Target T=10, plain, <= 160: **not met** SGD steps (measured 170.0)" in text
    assert ("Target T=10, with checkpointing (as the presets run it), <= 160: **met** SGD steps "
            "(measured 150.0)") in text
    assert all(get_preset(p).objective.remat for p in ("toy2d", "mnist10"))
