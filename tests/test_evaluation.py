"""The one evaluation path: per-task curves, tuned baselines on the same tasks, paired intervals."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from scipy import stats

import blur
from blur.experiments.config import PAPER_NETWORK
from blur.experiments.evaluation import (
    BaselineCurves,
    Contender,
    FamilyEvaluation,
    evaluate,
    format_table,
    genome_curves,
    paired_interval,
    sample_tasks,
    summarize,
    verdict,
)
from blur.tasks import get_family

NETWORK = dataclasses.replace(PAPER_NETWORK, hidden=(8,), neuron_norm="none")


def test_genome_curves_match_a_step_by_step_loop():
    """Entry t is the query accuracy after t steps (t = 0: before any step), task by task."""
    family = get_family("xor")
    genome = blur.delta_genome(2)
    spec = NETWORK.spec_for(family)
    ep = sample_tasks(family, jax.random.key(0), 2, 4, 16, 50)
    keys = jax.random.split(jax.random.key(1), 2)
    curves = np.asarray(genome_curves(genome, spec, ep.support, ep.query, keys))
    assert curves.shape == (2, 5)
    for n in range(2):
        state = blur.init_state(keys[n], genome, spec, 16)
        expected = []
        for t in range(5):
            logits = blur.predict(genome, spec, state, ep.query.x[n])
            expected.append(float(np.mean(np.argmax(logits, -1) == ep.query.y[n])))
            if t < 4:
                batch = blur.Batch(x=ep.support.x[n, t], y=ep.support.y[n, t])
                state, _ = blur.step(genome, spec, state, batch)
        np.testing.assert_allclose(curves[n], expected, atol=1e-6)


def test_paired_interval_is_the_t_interval_of_the_differences():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.8, 0.05, 12), rng.normal(0.7, 0.05, 12)
    mean, lo, hi = paired_interval(a, b)
    d = a - b
    want = stats.t.interval(0.95, 11, loc=d.mean(), scale=stats.sem(d))
    assert mean == pytest.approx(d.mean())
    assert (lo, hi) == pytest.approx(want)
    assert verdict({"mean": mean, "lo": lo, "hi": hi}) == "ahead"
    assert verdict({"mean": -0.1, "lo": -0.2, "hi": -0.01}) == "behind"
    assert verdict({"mean": 0.0, "lo": -0.2, "hi": 0.1}) == "tie"


def test_oracle_and_fixed_learning_rates():
    # 2 rates x 3 tasks x 3 steps: rate 0 is best at step 1, rate 1 at step 2
    curves = np.array([
        [[0.1, 0.9, 0.2], [0.1, 0.8, 0.3], [0.1, 0.7, 0.1]],
        [[0.1, 0.5, 0.9], [0.1, 0.4, 0.8], [0.1, 0.6, 0.7]],
    ])
    b = BaselineCurves(lrs=np.array([0.1, 1.0]), curves=curves)
    per_task, lr = b.oracle()
    np.testing.assert_allclose(per_task[:, 1], [0.9, 0.8, 0.7])
    np.testing.assert_allclose(per_task[:, 2], [0.9, 0.8, 0.7])
    assert lr[1] == pytest.approx(0.1) and lr[2] == pytest.approx(1.0)
    fixed, rate = b.fixed(2)
    assert rate == 1.0 and np.allclose(fixed[:, 1], [0.5, 0.4, 0.6])


def test_summary_pairs_tasks_and_pools_families():
    g1 = np.array([[0.0, 0.6], [0.0, 0.8]])
    g2 = np.array([[0.0, 0.5], [0.0, 0.7], [0.0, 0.9]])
    s1 = BaselineCurves(np.array([1.0]), np.array([[[0.0, 0.5], [0.0, 0.6]]]))
    s2 = BaselineCurves(np.array([1.0]), np.array([[[0.0, 0.5], [0.0, 0.5], [0.0, 0.5]]]))
    results = [FamilyEvaluation("a", {"BLUR": g1}, {"sgd": s1}),
               FamilyEvaluation("b", {"BLUR": g2}, {"sgd": s2})]
    rows = summarize(results, [1])
    assert [r["family"] for r in rows] == ["a", "b", "all"]
    pooled = rows[-1]
    assert pooled["num_tasks"] == 5
    d = np.array([0.1, 0.2, 0.0, 0.2, 0.4])
    assert pooled["BLUR-sgd"]["mean"] == pytest.approx(d.mean())
    assert pooled["BLUR-sgd"]["lo"] == pytest.approx(paired_interval(d, 0 * d)[1])
    assert rows[0]["sgd"]["lr"] == 1.0 and "lr" not in pooled["sgd"]
    table = format_table(rows).splitlines()
    assert table[0].split()[:5] == ["task", "step", "BLUR", "SGD", "BLUR-SGD"]
    assert table[2].split()[:4] == ["a", "1", "70.0", "±"]


def test_evaluate_trains_baselines_on_the_same_tasks():
    """Two contenders with the same genome give the same curves; a baseline's oracle curve
    is at least every single rate's mean curve."""
    family = get_family("pie")
    genome = blur.delta_genome(2)
    c = [Contender("x", genome, NETWORK), Contender("y", genome, NETWORK)]
    (res,) = evaluate(c, [family], jax.random.key(3), num_steps=3, num_tasks=2, batch_size=16,
                      query_size=40, baselines=("sgd",))
    np.testing.assert_array_equal(res.genomes["x"], res.genomes["y"])
    oracle = res.baselines["sgd"].oracle()[0].mean(axis=0)
    assert np.all(oracle >= res.baselines["sgd"].curves.mean(axis=1).max(axis=0) - 1e-7)
    with pytest.raises(ValueError, match="genome field"):
        evaluate([Contender("k3", blur.delta_genome(3), NETWORK)], [family], jax.random.key(0),
                 num_steps=1, num_tasks=2, batch_size=4, query_size=4)
