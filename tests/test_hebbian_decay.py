"""``NetworkSpec.hebbian_decay``: the synapse change at inner step t times r_t = 1 / (1 + d t).

Off (the default) the step is bit-identical to the paper's; on, every synapse moves r_t of the
way to where the undecayed step would take it, with t counted across ``unroll`` segments, the
meta-objective's scored segments and the estimator's ``partial_fit`` calls."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import rich_setup

import blur
from blur import inner
from blur.estimator import _train
from blur.io.genome_file import load_genome_file, save_genome
from blur.network import NetworkConfig
from blur.outer.objective import ObjectiveConfig, episode_loss
from blur.tasks.base import Batch

SIZES = (3, 6, 4)
K = 3
B = 8
T = 6


def _setup(spec: blur.NetworkSpec) -> tuple[blur.Genome, blur.NetworkState, blur.Batch]:
    return rich_setup(spec, B, (T,))


def _synapses(state: blur.NetworkState) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves((state.w_fwd, state.w_bwd))]


def _batch(batches: blur.Batch, t: int) -> blur.Batch:
    return blur.Batch(x=batches.x[t], y=batches.y[t])


def test_a_bad_decay_names_the_field():
    for bad in (-0.1, float("inf"), float("nan"), "0.1"):
        with pytest.raises(ValueError, match="NetworkSpec.hebbian_decay"):
            blur.NetworkSpec(SIZES, K, hebbian_decay=bad)  # type: ignore[arg-type]
    assert blur.NetworkSpec(SIZES, K, hebbian_decay=1).hebbian_decay == 1.0


@pytest.mark.parametrize("symmetric", [False, True])
def test_off_and_the_first_step_are_the_paper_step(symmetric: bool):
    spec = blur.NetworkSpec(SIZES, K, symmetric_synapses=symmetric)
    decayed = spec.replace(hebbian_decay=0.5)
    genome, state, batches = _setup(spec)
    a, _ = inner.unroll_jit(genome, spec, state, batches)
    b, _ = inner.unroll_jit(genome, spec.replace(hebbian_decay=0.0), state, batches)
    for x, y in zip(_synapses(a), _synapses(b), strict=True):
        np.testing.assert_array_equal(x, y)
    # t = 0: r = 1, the undecayed step (up to the rounding of w + (w' - w))
    plain, _ = inner.step(genome, spec, state, _batch(batches, 0))
    first, _ = inner.step(genome, decayed, state, _batch(batches, 0), t=0)
    for x, y in zip(_synapses(plain), _synapses(first), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("symmetric", [False, True])
def test_step_t_moves_the_synapses_r_t_of_the_way(symmetric: bool):
    d, t = 0.5, 3
    spec = blur.NetworkSpec(SIZES, K, symmetric_synapses=symmetric, hebbian_decay=d)
    genome, state, batches = _setup(spec)
    full, _ = inner.step(genome, spec.replace(hebbian_decay=0.0), state, _batch(batches, 0))
    got, metrics = inner.step(genome, spec, state, _batch(batches, 0), t=t)
    r = 1.0 / (1.0 + d * t)
    for w0, w1, w in zip(_synapses(state), _synapses(full), _synapses(got), strict=True):
        np.testing.assert_allclose(w, w0 + r * (w1 - w0), rtol=1e-5, atol=1e-7)
    assert not np.allclose(_synapses(got)[0], _synapses(full)[0])
    # the neurons are the step's own (the decay is on the synapse change only)
    for x, y in zip(jax.tree_util.tree_leaves(got.neurons),
                    jax.tree_util.tree_leaves(full.neurons), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_unroll_counts_steps_across_segments():
    spec = blur.NetworkSpec(SIZES, K, hebbian_decay=0.3)
    genome, state, batches = _setup(spec)
    whole, _ = inner.unroll(genome, spec, state, batches)
    head = jax.tree_util.tree_map(lambda a: a[:2], batches)
    tail = jax.tree_util.tree_map(lambda a: a[2:], batches)
    mid, _ = inner.unroll(genome, spec, state, head)
    split, _ = inner.unroll(genome, spec, mid, tail, start_step=2)
    restarted, _ = inner.unroll(genome, spec, mid, tail)  # the count starting over: different
    for x, y in zip(_synapses(whole), _synapses(split), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    assert not np.allclose(_synapses(whole)[0], _synapses(restarted)[0])
    # a step-by-step loop with t = 0..T-1 is the same training
    s = state
    for t in range(T):
        s, _ = inner.step(genome, spec, s, _batch(batches, t), t=t)
    for x, y in zip(_synapses(whole), _synapses(s), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


def test_the_meta_objective_scores_segments_of_one_decayed_run():
    spec = blur.NetworkSpec(SIZES, K, hebbian_decay=0.3)
    genome, state, batches = _setup(spec)
    query = blur.Batch(x=batches.x[:1], y=batches.y[:1])
    cfg = ObjectiveConfig(num_steps=T, batch_size=B, score_steps=(2, 4))
    loss, _ = episode_loss(genome, spec, batches, query, jax.random.key(1), cfg)
    # the same run step by step, t = 0..T-1, its query scored after steps 2, 4 and T
    s, scores = state, []
    for t in range(T):
        s, _ = inner.step(genome, spec, s, _batch(batches, t), t=t)
        if t + 1 in (2, 4, T):
            logits = inner.query_logits(genome, spec, s, query.x).reshape(-1, SIZES[-1])
            scores.append(inner.cross_entropy(logits, query.y.reshape(-1)))
    np.testing.assert_allclose(loss, np.mean(scores), rtol=1e-5)


def test_the_estimator_counts_steps_across_partial_fit_calls():
    spec = blur.NetworkSpec(SIZES, K, hebbian_decay=0.3)
    genome, state, batches = _setup(spec)
    x = batches.x.reshape(-1, SIZES[0])
    y = batches.y.reshape(-1)
    key = jax.random.key(3)
    later = _train(genome, spec, state, x, y, jnp.int32(x.shape[0]), key, jnp.int32(4),
                   steps=3, batch_size=B)
    rows = jax.random.randint(key, (3, B), 0, x.shape[0])
    s = state
    for i in range(3):
        s, _ = inner.step(genome, spec, s, Batch(x=x[rows[i]], y=y[rows[i]]), t=4 + i)
    for a, b in zip(_synapses(later), _synapses(s), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)



def test_partial_fit_passes_the_steps_taken_so_far(monkeypatch):
    import blur.estimator as estimator

    starts: list[int] = []
    real = estimator._train

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        starts.append(int(args[7]))
        return real(*args, **kwargs)

    monkeypatch.setattr(estimator, "_train", spy)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)).astype(np.float32), rng.integers(0, 3, 60)
    clf = blur.BlurClassifier(steps=5, batch_size=16)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    clf.partial_fit(X, y)
    clf.fit(X, y)  # a fresh network starts the count over
    assert starts == [0, 5, 0]


def test_a_genome_file_carries_the_decay_and_old_files_load_without_it(tmp_path):
    spec = blur.NetworkSpec(SIZES, K, hebbian_decay=0.25)
    genome, _, _ = _setup(spec)
    network = NetworkConfig(hidden=SIZES[1:-1], num_states=K, hebbian_decay=0.25)
    save_genome(genome, tmp_path / "g.json", network=network)
    assert load_genome_file(tmp_path / "g.json").network.hebbian_decay == 0.25
    data = json.loads((tmp_path / "g.json").read_text())
    del data["network"]["hebbian_decay"]  # a file written before the field existed
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert load_genome_file(tmp_path / "old.json").network.hebbian_decay == 0.0
