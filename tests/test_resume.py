"""Resume identity: a run stopped (or SIGKILLed) and resumed ends exactly like an uninterrupted one.

Compared exactly: ``genome.json`` (bytes), every array of the final ``checkpoint.npz``, its
sidecar and ``metrics.jsonl`` (both without the wall-clock fields).

The SIGKILL variants launch ``blur meta-train`` / ``blur evolve`` as subprocesses (marked slow:
each starts three processes that compile from scratch); the fast variants use ``stop_after``
in-process, where the compiled functions are shared with the rest of the test session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from run_helpers import BLUR, EVOLVE, EXPLOIT, META_TRAIN, assert_same_run, run_config

import blur
from blur.experiments.evolve import evolve
from blur.experiments.meta_train import meta_train
from blur.io.metrics import read_metrics
from blur.outer import gradient

# --------------------------------------------------------------------- in-process (fast)


@pytest.fixture(scope="module")
def uninterrupted_meta_train(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("mt") / "uninterrupted"
    result = meta_train(run_config(META_TRAIN, run_dir), evaluate=False)
    assert result.skipped == [0, 0]
    assert json.loads((run_dir / "checkpoint.npz.json").read_text())["step"] == 12
    return run_dir


@pytest.mark.parametrize("stop", [3, 4, 6, 11])
def test_meta_train_stop_and_resume_is_identical(tmp_path, uninterrupted_meta_train, stop):
    """3: a checkpoint before the first validation; 4: between checkpoints; 6: a validation
    and checkpoint step; 11: just before the end."""
    cfg = run_config(META_TRAIN, tmp_path / "run")
    meta_train(cfg, stop_after=stop, evaluate=False)
    meta = json.loads((tmp_path / "run" / "checkpoint.npz.json").read_text())
    assert meta["step"] == stop
    with pytest.raises(Exception, match="already holds a run"):
        meta_train(cfg, evaluate=False)
    result = meta_train(cfg, resume=True, evaluate=False)
    assert result.skipped == [0, 0]
    assert_same_run(uninterrupted_meta_train, tmp_path / "run")


@pytest.mark.slow  # 26 s; CI runs it in its slow step (.ci/run)
def test_meta_train_resume_is_identical_with_the_mnist10_objective_and_optimizer(
    tmp_path, uninterrupted_meta_train
):
    """The settings the mnist10 preset adds (query also scored after an early step; Adam steps
    scaled by each field's RMS) resume exactly too, and they change the run."""
    args = [*META_TRAIN, "--objective.score-steps", "2", "--gradient.scale-by-parameter"]
    whole = tmp_path / "whole"
    cfg = run_config(args, whole)
    assert cfg.objective.score_steps == (2,) and cfg.gradient.scale_by_parameter
    assert meta_train(cfg, evaluate=False).skipped == [0, 0]
    cut = run_config(args, tmp_path / "cut")
    meta_train(cut, stop_after=4, evaluate=False)
    meta_train(cut, resume=True, evaluate=False)
    assert_same_run(whole, tmp_path / "cut")
    # the final genomes (checkpoint leaves) differ from those of the plain configuration
    with np.load(whole / "checkpoint.npz") as a, np.load(
        uninterrupted_meta_train / "checkpoint.npz"
    ) as b:
        leaves = [n for n in a.files if n.startswith("leaf_")]
        assert any(a[n].shape == b[n].shape and not np.array_equal(a[n], b[n]) for n in leaves)


@pytest.mark.slow  # 30 s; CI runs it in its slow step (.ci/run)
def test_meta_train_with_the_exploit_step_restarts_runs_and_resumes_identically(tmp_path):
    """With ``exploit_below`` 0 every run but the best restarts from it at each validation
    (logged in the validation record), and a run stopped between validations resumes exactly."""
    args = [*META_TRAIN, *EXPLOIT]
    whole = tmp_path / "whole"
    result = meta_train(run_config(args, whole), evaluate=False)
    assert result.skipped == [0, 0]
    validations = [r for r in read_metrics(whole / "metrics.jsonl") if r["kind"] == "validation"]
    restarts = [r.get("restarted_from") for r in validations]
    for r, moved in zip(validations, restarts, strict=True):
        scores = r["meta_val_accuracy"]
        if scores[0] != scores[1]:  # the worse run copies the better one
            worse, better = (0, 1) if scores[0] < scores[1] else (1, 0)
            assert moved == {str(worse): better}
    assert any(restarts), "no validation restarted a run: the test shows nothing"
    assert restarts[1] == {"1": 0}, restarts  # measured: run 1 scores below run 0 at step 6
    assert result.summary["restarts"] == sum(len(m or {}) for m in restarts)
    cut = run_config(args, tmp_path / "cut")
    meta_train(cut, stop_after=6, evaluate=False)
    # the checkpoint at step 6 comes after that validation: run 1 is now a copy of run 0,
    # genome and Adam state alike
    with np.load(tmp_path / "cut" / "checkpoint.npz") as ckpt:
        for name in (n for n in ckpt.files if n.startswith("leaf_")):
            np.testing.assert_array_equal(ckpt[name][1], ckpt[name][0], err_msg=name)
    meta_train(cut, resume=True, evaluate=False)
    assert_same_run(whole, tmp_path / "cut")


def test_meta_train_with_the_explore_step_perturbs_the_copies_and_resumes_identically(tmp_path):
    """With ``explore_scale`` the run restarted at a validation continues from a perturbed copy
    of its partner's genome (its Adam state copied exactly), and the noise comes from the
    validation's own key, so a run stopped after it resumes exactly."""
    args = [*META_TRAIN, *EXPLOIT, "--gradient.explore-scale", "0.1"]
    whole = tmp_path / "whole"
    meta_train(run_config(args, whole), evaluate=False)
    cut = run_config(args, tmp_path / "cut")
    meta_train(cut, stop_after=6, evaluate=False)
    validations = [r for r in read_metrics(tmp_path / "cut" / "metrics.jsonl")
                   if r["kind"] == "validation"]
    assert validations[-1]["step"] == 6 and validations[-1].get("restarted_from") == {"1": 0}
    genome = len(jax.tree_util.tree_leaves(blur.delta_genome(2)))  # the first leaves
    with np.load(tmp_path / "cut" / "checkpoint.npz") as ckpt:
        leaves = sorted((n for n in ckpt.files if n.startswith("leaf_")),
                        key=lambda n: int(n.split("_")[1]))
        moved = [n for n in leaves[:genome] if not np.array_equal(ckpt[n][1], ckpt[n][0])]
        assert moved, "run 1's genome is an exact copy of run 0's: no explore step"
        for n in leaves[genome:-3]:  # Adam's moments and step count: copied exactly
            np.testing.assert_array_equal(ckpt[n][1], ckpt[n][0], err_msg=n)
    meta_train(cut, resume=True, evaluate=False)
    assert_same_run(whole, tmp_path / "cut")


def test_meta_train_resume_reuses_the_compiled_meta_step(tmp_path, uninterrupted_meta_train):
    """The same configuration in the same process does not compile meta_step again."""
    size = gradient.meta_step._cache_size()
    assert size >= 1
    cfg = run_config(META_TRAIN, tmp_path / "run")
    meta_train(cfg, stop_after=2, evaluate=False)
    meta_train(cfg, resume=True, evaluate=False)
    assert gradient.meta_step._cache_size() == size




@pytest.fixture(scope="module")
def uninterrupted_evolve(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("ev") / "uninterrupted"
    evolve(run_config(EVOLVE, run_dir), evaluate=False)
    meta = json.loads((run_dir / "checkpoint.npz.json").read_text())
    assert meta["step"] == 8 and meta["popsizes"] == [6] * 8
    return run_dir


@pytest.mark.parametrize("stop", [2, 3, 4])
def test_evolve_stop_and_resume_is_identical(tmp_path, uninterrupted_evolve,
                                             stop):
    cfg = run_config(EVOLVE, tmp_path / "run")
    evolve(cfg, stop_after=stop, evaluate=False)
    assert json.loads((tmp_path / "run" / "checkpoint.npz.json").read_text())["step"] == stop
    evolve(cfg, resume=True, evaluate=False)
    assert_same_run(uninterrupted_evolve, tmp_path / "run")


def test_evolve_with_field_stds_resumes_identically_and_differs_from_plain(
    tmp_path, uninterrupted_evolve
):
    """Per-field initial step sizes go through config.json and the checkpoint's replay."""
    args = [*EVOLVE, "--evolution.cma.field-stds", "mu=0.5", "f_tilde=0.5"]
    whole = tmp_path / "whole"
    cfg = run_config(args, whole)
    assert cfg.evolution.cma.field_stds == ("mu=0.5", "f_tilde=0.5")
    evolve(cfg, evaluate=False)
    cut = run_config(args, tmp_path / "cut")
    evolve(cut, stop_after=3, evaluate=False)
    evolve(cut, resume=True, evaluate=False)
    assert_same_run(whole, tmp_path / "cut")
    plain = json.loads((uninterrupted_evolve / "checkpoint.npz.json").read_text())["mean"]
    scaled = json.loads((whole / "checkpoint.npz.json").read_text())["mean"]
    assert not np.allclose(plain, scaled)


# -------------------------------------------------------------------------- SIGKILL (slow)


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "JAX_PLATFORMS": "cpu",
        # the three processes share compiled code through JAX's persistent cache
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    })
    return env


def _step(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "checkpoint.npz.json").read_text())["step"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def _kill_after_first_checkpoint(cmd: list[str], run_dir: Path, env: dict, last: int) -> int:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 400
        while _step(run_dir) == 0:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint written in time"
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    step = _step(run_dir)
    assert 0 < step < last, f"killed at checkpoint step {step}: not mid-run"
    return step


def _run(cmd: list[str], env: dict) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(("command", "args", "last"), [
    ("meta-train", META_TRAIN, 12),
    ("evolve", EVOLVE, 8),
])
def test_sigkill_and_resume_is_identical(tmp_path, command, args, last):
    env = _env(tmp_path / "jax-cache")
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    step = _kill_after_first_checkpoint([BLUR, command, *args, "--run-dir", str(killed)],
                                        killed, env, last)
    assert not (killed / "eval.json").exists()
    _run([BLUR, command, "--resume", str(killed)], env)
    _run([BLUR, command, *args, "--run-dir", str(clean)], env)
    assert _step(killed) == _step(clean) == last
    assert_same_run(clean, killed)
    assert json.loads((killed / "eval.json").read_text()) == json.loads(
        (clean / "eval.json").read_text())
    assert step < last


@pytest.mark.parametrize(("validate_num_steps", "want"), [(None, 3), (2, 2)])
def test_every_validation_uses_one_horizon(tmp_path, validate_num_steps, want):
    """Validation scores are compared across the run (best-of-N), so they share one T: the T
    the run ends with, not the curriculum's T at the time (which rises from 2 to 3 here)."""
    import dataclasses

    args = [a if a != "12" else "8" for a in META_TRAIN]  # 8 meta-steps
    cfg = run_config([*args, "--gradient.curriculum.start", "2", "--gradient.curriculum.every",
                      "4", "--gradient.curriculum.increment", "1", "--validate-every", "2"],
                     tmp_path / "run")
    cfg = dataclasses.replace(cfg, validate_num_steps=validate_num_steps)
    meta_train(cfg, evaluate=False)
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["T"] for r in records if r["kind"] == "train"] == [2] * 4 + [3] * 4
    val = [r for r in records if r["kind"] == "validation"]
    assert [r["step"] for r in val] == [0, 2, 4, 6, 8]
    assert {r["T"] for r in val} == {want}
