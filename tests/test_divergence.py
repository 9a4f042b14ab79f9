"""Divergence never crashes: a genome whose inner loop blows up is skipped (gradient), scored
worst (evolution) and logged; corrupt or non-finite checkpoints and genome files are refused.

Uses the tiny setup of test_gradient_meta.py / test_resume.py, so the jitted functions are
shared with those files.
"""

from __future__ import annotations

import json
import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from run_helpers import CFG, EVOLVE, FAMILY, META_TRAIN, OPT, SPEC, run_config

import blur
from blur.experiments import runs
from blur.experiments.evolve import evolve
from blur.experiments.meta_train import meta_train
from blur.experiments.runs import RunDirError
from blur.io.checkpoint import CheckpointError, load_checkpoint
from blur.io.genome_file import load_genome, save_genome
from blur.io.metrics import read_metrics
from blur.outer import gradient
from blur.outer.evolution import CMAES, WORST, CMAConfig, fitness_from_aux, score_population
from blur.outer.objective import ObjectiveAux

HEALTHY = blur.delta_genome(2)
DIVERGING = {
    # a huge Hebbian rate: the synapses overflow within the 3 inner steps (no stabiliser can
    # save that; the genome itself is finite)
    "huge_eta_tilde": HEALTHY.replace(eta_tilde=jnp.float32(1e20)),
    "nan_gate": HEALTHY.replace(eta=jnp.float32(jnp.nan)),
    "inf_transform": HEALTHY.replace(nu=HEALTHY.nu.at[0, 1].set(jnp.inf)),
}


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b),
                               strict=True))


def run_slice(tree, r):
    return jax.tree_util.tree_map(lambda x: x[r], tree)


# ------------------------------------------------------------------------- meta_step


@pytest.mark.parametrize("name", sorted(DIVERGING))
def test_meta_step_skips_a_diverging_run_and_updates_the_healthy_one(name):
    bad = DIVERGING[name]
    state0 = gradient.init(blur.stack_layers([HEALTHY, bad]), OPT)
    state, m = gradient.meta_step(state0, jax.random.key(0), spec=SPEC, family=FAMILY, cfg=CFG,
                                  optimizer=OPT)
    np.testing.assert_array_equal(state.skipped, [0, 1])
    np.testing.assert_array_equal(m.skipped, [False, True])
    assert np.isfinite(float(m.loss[0])) and not np.isfinite(float(m.loss[1]))
    # the diverging run keeps its genome and optimizer state exactly
    assert leaves_equal(run_slice(state.genomes, 1), bad)
    assert leaves_equal(run_slice(state.opt_state, 1), run_slice(state0.opt_state, 1))
    # the healthy run still moved, with a finite genome
    g0 = run_slice(state.genomes, 0)
    assert not leaves_equal(g0, HEALTHY)
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(g0))
    assert int(run_slice(state.opt_state, 0)[1][0].count) == 1
    # again: the counter keeps counting, the healthy run keeps going
    state, m = gradient.meta_step(state, jax.random.key(1), spec=SPEC, family=FAMILY, cfg=CFG,
                                  optimizer=OPT)
    np.testing.assert_array_equal(state.skipped, [0, 2])
    assert leaves_equal(run_slice(state.genomes, 1), bad)
    assert int(run_slice(state.opt_state, 0)[1][0].count) == 2
    assert int(run_slice(state.opt_state, 1)[1][0].count) == 0


# ------------------------------------------------------------------------- evolution


def test_evolution_scores_a_diverging_genome_worst_and_keeps_going():
    x0, unravel = blur.ravel_genome(HEALTHY)
    pop = np.stack([np.asarray(x0, np.float64)] + [
        np.asarray(blur.ravel_genome(DIVERGING[n])[0], np.float64) for n in sorted(DIVERGING)
    ])
    aux = score_population(pop, jax.random.key(2), unravel=unravel, spec=SPEC, family=FAMILY,
                           cfg=CFG)
    np.testing.assert_array_equal(np.asarray(aux.finite), [True, False, False, False])
    for fitness in ("accuracy", "loss"):
        fit = fitness_from_aux(aux, fitness)
        assert np.isfinite(fit[0]) and np.all(fit[1:] == -np.inf)
    # the adapter is told WORST for those members (here: the last three of every generation)
    es = CMAES(np.asarray(x0, np.float64), CMAConfig(popsize=4, sigma0=0.1, seed=0))
    for _ in range(3):
        X = es.ask()
        es.tell(X, -fitness_from_aux(aux, "accuracy"))
    assert all(list(h[1:]) == [WORST] * 3 for h in es.history)
    assert all(h[0] == -fitness_from_aux(aux, "accuracy")[0] for h in es.history)
    assert np.all(np.isfinite(es.mean)) and np.isfinite(es.best_f) and es.best_f < WORST
    assert es.ask().shape == (4, x0.size)


def test_fitness_from_aux_non_finite_flags():
    aux = ObjectiveAux(loss=jnp.array([0.1, 0.2]), accuracy=jnp.array([0.9, 0.8]),
                       train_accuracy=jnp.zeros(2), finite=jnp.array([True, False]))
    np.testing.assert_array_equal(fitness_from_aux(aux, "accuracy"), [np.float32(0.9), -np.inf])


# ------------------------------------------------------------------------ run loops


@pytest.fixture
def diverging_start(monkeypatch):
    """Every run starts from a genome whose inner loop overflows."""
    monkeypatch.setattr(runs, "initial_genome",
                        lambda config, num_layers, key: DIVERGING["huge_eta_tilde"])


def test_meta_train_counts_skipped_updates_and_drops_a_run_that_stays_diverged(
    tmp_path, caplog, diverging_start
):
    """Non-finite meta-steps are counted, not logged one by one; a run that stays non-finite
    for gradient.drop_after steps in a row is reported once and dropped."""
    caplog.set_level(logging.WARNING, logger="blur")
    cfg = run_config([*META_TRAIN, "--gradient.drop-after", "5"], tmp_path / "run")
    result = meta_train(cfg, evaluate=False)
    # dropped after 5 skipped steps each; a dropped run is no longer counted as skipped
    assert result.skipped == [5, 5] and result.summary["dropped"] == [0, 1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"run {r} dropped at meta-step 4: its inner loop was non-finite for 5 meta-steps in a "
        "row; it is no longer trained and is left out of best-of-N from now on" for r in (0, 1)
    ]
    # the genomes never changed, the checkpoint is finite and loadable, genome.json is valid
    meta = json.loads((tmp_path / "run" / "checkpoint.npz.json").read_text())
    assert meta["step"] == 12 and meta["best_score"] == 0.0
    with np.load(tmp_path / "run" / "checkpoint.npz") as data:
        leaves = [data[f"leaf_{i:05d}"] for i in range(meta["num_leaves"])]
    ref = jax.tree_util.tree_leaves(DIVERGING["huge_eta_tilde"])
    for got, want in zip(leaves[: len(ref)], ref, strict=True):
        np.testing.assert_array_equal(got, np.stack([want, want]))
    np.testing.assert_array_equal(leaves[-3], [5, 5])  # the skip counters
    np.testing.assert_array_equal(leaves[-1], [True, True])  # dropped
    saved = load_genome(tmp_path / "run" / "genome.json")
    assert leaves_equal(saved, DIVERGING["huge_eta_tilde"])
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    assert train[3].get("dropped") is None and train[4]["dropped"] == [0, 1]
    assert train[-1]["skipped"] == [5, 5] and train[-1]["meta_loss"] == [None, None]
    # validations after the drop record the scores but select nothing new
    val = [r for r in records if r["kind"] == "validation"]
    assert [r["improved"] for r in val] == [True, False, False]


def test_meta_step_drops_only_after_consecutive_failures():
    """streak resets on a finite step; a dropped run keeps its genome even when finite."""
    genomes = blur.stack_layers([HEALTHY, DIVERGING["huge_eta_tilde"]])
    state = gradient.init(genomes, OPT)
    for i in range(3):
        state, m = gradient.meta_step(state, jax.random.key(i), spec=SPEC, family=FAMILY,
                                      cfg=CFG, optimizer=OPT, drop_after=3)
    np.testing.assert_array_equal(state.streak, [0, 3])
    np.testing.assert_array_equal(state.dropped, [False, True])
    np.testing.assert_array_equal(state.skipped, [0, 3])
    # once dropped, a run is neither updated nor counted, even if its loss were finite
    revived = state.replace(genomes=blur.stack_layers([HEALTHY, HEALTHY]))
    after, m = gradient.meta_step(revived, jax.random.key(9), spec=SPEC, family=FAMILY, cfg=CFG,
                                  optimizer=OPT, drop_after=3)
    assert leaves_equal(jax.tree_util.tree_map(lambda x: x[1], after.genomes), HEALTHY)
    assert not leaves_equal(jax.tree_util.tree_map(lambda x: x[0], after.genomes), HEALTHY)
    np.testing.assert_array_equal(after.skipped, [0, 3])
    np.testing.assert_array_equal(m.skipped, [False, False])


def test_meta_train_resume_restores_zero_best_score(tmp_path, diverging_start):
    """A best meta-validation accuracy of exactly 0 (diverged runs) survives a resume."""
    cfg = run_config(META_TRAIN, tmp_path / "run")
    meta_train(cfg, stop_after=6, evaluate=False)
    assert json.loads((tmp_path / "run" / "checkpoint.npz.json").read_text())["best_score"] == 0
    result = meta_train(cfg, resume=True, evaluate=False)
    assert result.best_score == 0.0 and result.skipped == [12, 12]
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().split("\n")
               if x]
    val = [r for r in metrics if r["kind"] == "validation"]
    # the initial genome is validated at step 0 and scores 0.0; the validations at steps 6 and
    # 12 (after the resume) do not "improve" on it (the restored 0.0 is not taken for -inf)
    assert [(r["step"], r["improved"]) for r in val] == [(0, True), (6, False), (12, False)]
    assert json.loads((tmp_path / "run" / "genome.json").read_text())["metadata"]["step"] == 0


def test_evolve_counts_diverged_genomes(tmp_path, caplog, diverging_start):
    caplog.set_level(logging.WARNING, logger="blur")
    result = evolve(run_config(EVOLVE, tmp_path / "run"), evaluate=False)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # no line per step
    assert result.summary["diverged"] == 48 and result.summary["scored"] == 48
    train = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if '"train"' in x]
    assert [r["diverged"] for r in train] == [6] * 8
    meta = json.loads((tmp_path / "run" / "checkpoint.npz.json").read_text())
    assert meta["step"] == 8 and np.all(np.isfinite(meta["mean"])) and meta["diverged"] == 48
    history, _ = load_checkpoint(tmp_path / "run" / "checkpoint.npz",
                                 like=[np.zeros(6)] * 8)
    assert all(np.all(h == WORST) for h in history)


# ------------------------------------------------------------------- corrupt files


@pytest.fixture
def stopped_run(tmp_path):
    cfg = run_config(META_TRAIN, tmp_path / "run")
    meta_train(cfg, stop_after=3, evaluate=False)
    return cfg, tmp_path / "run"


def _rewrite_leaf(path, index, fn):
    """Rewrite one entry of a checkpoint archive (a leaf, or the embedded metadata)."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    name = index if isinstance(index, str) else f"leaf_{index:05d}"
    arrays[name] = fn(arrays[name])
    np.savez(path, **arrays)


@pytest.mark.parametrize(("corrupt", "message"), [
    (lambda p: _rewrite_leaf(p, 0, lambda a: np.full_like(a, np.nan)), "non-finite"),
    (lambda p: _rewrite_leaf(p, 1, lambda a: a[:1]), "has shape"),
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "corrupt checkpoint"),
    (lambda p: _rewrite_leaf(p, "meta_json", lambda a: a[:20]), "corrupt checkpoint"),
    (lambda p: _rewrite_leaf(p, "meta_json", lambda a: np.frombuffer(b'{"version": 7}', np.uint8)),
     "not a blur checkpoint of version 1"),
])
def test_resume_refuses_corrupt_checkpoint(stopped_run, corrupt, message):
    cfg, run_dir = stopped_run
    corrupt(run_dir / "checkpoint.npz")
    with pytest.raises(CheckpointError, match=message) as err:
        meta_train(cfg, resume=True, evaluate=False)
    assert "checkpoint.npz" in str(err.value)


def test_evolve_resume_refuses_tampered_history(tmp_path, monkeypatch):
    cfg = run_config(EVOLVE, tmp_path / "run")
    evolve(cfg, stop_after=2, evaluate=False)
    path = tmp_path / "run" / "checkpoint.npz"
    # Another ranking in generation 1: negated values (the best becomes the worst), or, if
    # they all tie, the first member made the worst. (Reversing is not enough: the told
    # values can be a palindrome.)
    _rewrite_leaf(path, 1, lambda a: -a if np.ptp(a) > 0 else
                  np.where(np.arange(a.size) == 0, a.max() + 1.0, a))
    with pytest.raises(RunDirError, match="did not reproduce the saved CMA-ES mean"):
        evolve(cfg, resume=True, evaluate=False)
    _rewrite_leaf(path, 1, lambda a: np.where(np.arange(a.size) == 0, np.nan, a))
    with pytest.raises(CheckpointError, match="non-finite"):
        evolve(cfg, resume=True, evaluate=False)


def test_corrupt_genome_files_are_refused(tmp_path):
    path = tmp_path / "genome.json"
    save_genome(HEALTHY, path, step=1)
    text = path.read_text()
    path.write_text(re.sub(r'"eta": [^,\n]+', '"eta": NaN', text, count=1))
    with pytest.raises(blur.GenomeFormatError, match="'eta' holds non-finite") as err:
        load_genome(path)
    assert str(path) in str(err.value)
    path.write_text(text.replace('"eta_tilde": 10.0', '"eta_tilde": Infinity'))
    with pytest.raises(blur.GenomeFormatError, match="'eta_tilde' holds non-finite"):
        load_genome(path)
    path.write_text(text[:-40])
    with pytest.raises(blur.GenomeFormatError, match="corrupt genome file"):
        load_genome(path)
