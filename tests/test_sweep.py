"""``blur sweep``: the space, storage URLs (no password anywhere), the pruner, a tiny sweep end
to end, resume of an interrupted trial, and (slow, subprocesses) SIGKILL + ``--resume`` and two
workers sharing one SQLite study.

The in-process sweeps use the tiny run configuration of ``run_helpers`` and search only fields
that do not change compiled code (``seed``, ``checkpoint_every``), so they share the jitted
functions of test_resume / test_cli.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from run_helpers import BLUR, META_TRAIN, assert_same_run, run_config

from blur.cli.main import main
from blur.cli.train import _parse
from blur.experiments import sweep
from blur.experiments.config import config_from_json, get_preset
from blur.experiments.loop import run
from blur.experiments.sweep import (
    SpaceError,
    SweepError,
    SweepSettings,
    build_space,
    expand_storage_url,
    mask_url,
    run_sweep,
)

SECRET = "s3cr3t-Pa55"
TOY = get_preset("toy2d")


def call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def tiny_base() -> object:
    return dataclasses.replace(run_config(META_TRAIN, Path("unused")), run_dir=None)


# ------------------------------------------------------------------------------ the space


def test_space_from_flags_and_toml(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(
        '"gradient.learning-rate" = "log:1e-4,1e-2"\n'
        'seed = "int:0,9"\n'
        "[network]\n"
        "hidden = [[8], [16, 16]]\n"
        'neuron_norm = "choice:none,forward"\n'
        "[objective]\n"
        "num_steps = 12\n"
    )
    entries = sweep.load_space_file(path)
    params = {p.field: p for p in build_space(entries, TOY)}
    assert set(params) == {"gradient.learning_rate", "seed", "network.hidden",
                           "network.neuron_norm", "objective.num_steps"}
    lr = params["gradient.learning_rate"]
    assert (lr.kind, lr.low, lr.high, lr.integer) == ("log", 1e-4, 1e-2, False)
    assert params["seed"].integer and (params["seed"].low, params["seed"].high) == (0, 9)
    assert params["network.hidden"].choices == ((8,), (16, 16))
    assert params["network.hidden"].labels == ("[8]", "[16, 16]")  # Optuna stores text
    assert params["objective.num_steps"].choices == (12,)  # one value fixes the field
    flag = build_space(dict([sweep.parse_space_arg("network.hidden=choice:[8],[16,16]")]), TOY)
    assert flag[0].choices == ((8,), (16, 16))
    config = sweep.apply_params(TOY, {"network.hidden": (16, 16), "gradient.learning-rate": 0.1})
    assert config.network.hidden == (16, 16) and config.gradient.learning_rate == 0.1
    assert TOY.network.hidden != (16, 16)  # the base is untouched


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"gradient.learnin_rate": "log:1e-4,1e-2"}, ["gradient.learnin_rate",
                                                       "did you mean 'gradient.learning_rate'"]),
        ({"gradient": "choice:1,2"}, ["'gradient' is a group", "gradient.clip_norm"]),
        ({"network.hidden": "choice:8,16"}, ["network.hidden", "choices of lists"]),
        ({"seed": "float:0,1"}, ["'seed' is an int", "int:lo,hi"]),
        ({"gradient.learning_rate": "log:0,1"}, ["gradient.learning_rate", "lo must be > 0"]),
        ({"gradient.learning_rate": "1e-3..1e-2"}, ["gradient.learning_rate", "choice:a,b,c"]),
        ({"network.neuron_norm": "choice:none,sideways"}, ["network.neuron_norm", "'sideways'"]),
        ({"gradient.drop_after": "int:0,5"}, ["gradient.drop_after", "invalid config"]),
        ({"run_dir": "choice:a,b"}, ["'run_dir' cannot be searched", "--sweep-dir"]),
        ({"network.hidden.width": "choice:1"}, ["network.hidden.width", "is a value"]),
    ],
)
def test_bad_space_entry_names_the_field_and_the_fix(entry, words):
    with pytest.raises(SpaceError) as info:
        build_space(entry, TOY)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_bad_space_file_fails_before_any_trial(tmp_path):
    space = tmp_path / "space.toml"
    space.write_text('[gradient]\nlearning_rate = "log:1e-4,1e-2"\nnum_run = [2, 4]\n')
    code, _, err = call(["sweep", "--space", str(space), "--sweep-dir", str(tmp_path / "s"),
                         "--trials", "2"])
    assert code == 2
    assert "gradient.num_run" in err and "did you mean 'gradient.num_runs'" in err
    assert not (tmp_path / "s").exists()  # nothing started


# ------------------------------------------------------------------------- storage URLs


def test_storage_url_password_comes_from_the_environment_and_is_masked():
    env = {sweep.PASSWORD_ENV: SECRET, "DB_HOST": "db.example"}
    url = expand_storage_url("postgresql://ann@${DB_HOST}:5432/blur", env)
    assert url == f"postgresql://ann:{SECRET}@db.example:5432/blur"
    assert mask_url(url) == "postgresql://ann:***@db.example:5432/blur"
    assert SECRET not in mask_url(url)
    own = expand_storage_url("mysql+pymysql://ann:${PW}@h/db", {"PW": SECRET})
    assert own == f"mysql+pymysql://ann:{SECRET}@h/db"
    assert sweep.savable_url("mysql+pymysql://ann:${PW}@h/db") == "mysql+pymysql://ann:${PW}@h/db"
    assert sweep.savable_url(url) == mask_url(url)  # a literal password is never saved
    # a saved (masked) URL gets its password back from the environment only
    assert expand_storage_url(mask_url(url), env) == url
    with pytest.raises(SweepError, match=sweep.PASSWORD_ENV):
        expand_storage_url(mask_url(url), {})
    with pytest.raises(SweepError, match=r"\$\{NOPE\}"):
        expand_storage_url("postgresql://ann:${NOPE}@h/db", {})
    assert SECRET not in mask_url(f"weird://ann:{SECRET}@host/db?x=1")
    assert expand_storage_url("sqlite:////tmp/x.db", env) == "sqlite:////tmp/x.db"


def test_no_file_holds_the_password(tmp_path, monkeypatch):
    """A literal password in --storage is neither saved nor printed (here the driver is not
    installed, so the storage fails to open after sweep.json is written)."""
    monkeypatch.setenv(sweep.PASSWORD_ENV, SECRET)
    sweep_dir = tmp_path / "s"
    code, out, err = call(["sweep", "--space", "seed=int:0,3", "--sweep-dir", str(sweep_dir),
                           "--storage", f"postgresql://ann:{SECRET}@127.0.0.1:9/blur",
                           "--study-name", "x", "--trials", "1"])
    assert code == 2 and "cannot open the study storage postgresql://ann:***@" in err
    assert SECRET not in out + err
    saved = json.loads((sweep_dir / "sweep.json").read_text())
    assert saved["settings"]["storage"] == "postgresql://ann:***@127.0.0.1:9/blur"
    for path in sweep_dir.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_shared_storage_needs_a_study_name(tmp_path):
    with pytest.raises(SweepError, match="--study-name"):
        SweepSettings(tmp_path, 1, storage="sqlite:////tmp/x.db")


# ------------------------------------------------------------------------------ the pruner


def test_pruning_hook_prunes_below_the_median():
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    good = study.ask()
    for step, score in [(1, 0.8), (2, 0.9)]:
        sweep.pruning_hook(good)(step, score)
    study.tell(good, 0.9)
    better = study.ask()
    sweep.pruning_hook(better)(1, 0.85)  # above the median: goes on
    worse = study.ask()
    with pytest.raises(optuna.TrialPruned, match="step 1"):
        sweep.pruning_hook(worse)(1, 0.5)


def test_a_sweep_prunes_trials_whose_validation_falls_behind(tmp_path):
    """run_sweep wiring with a stand-in run loop: trials 0-1 validate at 0.9, later ones fall
    from 0.6 down, and are pruned at their first validation after the warm-up."""
    calls = []

    def fake_run(config, *, resume, evaluate, on_validation):
        n = len(calls)
        calls.append(config.run_dir)
        scores = [0.9, 0.9, 0.9] if n < 2 else [0.6, 0.3, 0.1]
        for step, score in enumerate(scores):
            on_validation(step * 6, score)
        return SimpleNamespace(best_score=max(scores), best_step=0, wall_time=0.0)

    settings = SweepSettings(tmp_path / "s", 4, pruner_startup_trials=2)
    result = run_sweep(tiny_base(), {"seed": "int:0,100"}, settings, run_fn=fake_run)
    states = [t.state.name for t in result.study.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "PRUNED"]
    assert [t.last_step for t in result.study.trials[2:]] == [6, 6]
    assert "2 pruned" in result.table and "2 complete" in result.table


# ----------------------------------------------------------------- tiny sweeps (real runs)


def test_tiny_sweep_end_to_end(tmp_path):
    sweep_dir = tmp_path / "s"
    settings = SweepSettings(sweep_dir, 2)
    result = run_sweep(tiny_base(), {"seed": [3, 4], "checkpoint-every": [3, 6]}, settings)
    trials = result.study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for t in trials:
        run_dir = sweep_dir / f"trial_{t.number:04d}"
        assert t.user_attrs["run_dir"] == str(run_dir.resolve())
        for name in ("config.json", "metrics.jsonl", "checkpoint.npz", "genome.json"):
            assert (run_dir / name).exists(), name
        config = config_from_json((run_dir / "config.json").read_text())
        assert config.seed == t.user_attrs["params"]["seed"] == t.params["seed"]
        assert config.checkpoint_every == t.params["checkpoint_every"]
        assert 0.0 <= t.value <= 1.0
    best = max(trials, key=lambda t: t.value)
    loaded = config_from_json((sweep_dir / "best_config.json").read_text())
    assert loaded.seed == best.params["seed"] and loaded.run_dir is None
    assert loaded.gradient == tiny_base().gradient  # the base's overrides are kept
    parsed, resume = _parse(["--config", str(sweep_dir / "best_config.json")],
                            "blur meta-train", "toy2d", "gradient")
    assert not resume and parsed == loaded
    rows = (sweep_dir / "trials.csv").read_text().splitlines()
    assert rows[0].startswith("trial,state,score") and len(rows) == 3
    assert "| trial | score % | state | seed | checkpoint_every |" in result.table
    with pytest.raises(SweepError, match="already holds a sweep"):
        run_sweep(tiny_base(), {"seed": [3, 4]}, settings)


def test_resume_continues_an_interrupted_trial_from_its_checkpoint(tmp_path):
    """A trial left RUNNING by a killed process is marked failed and re-run with the same
    params from its checkpoint; the re-run ends exactly like the uninterrupted trial with
    those params, and the finished trial is not re-run."""
    sweep_dir = tmp_path / "s"
    base, space = tiny_base(), {"seed": [3, 4]}
    settings = SweepSettings(sweep_dir, 2)
    first = run_sweep(base, space, dataclasses.replace(settings, trials=1))
    done = first.study.trials[0]
    genome_bytes = (sweep_dir / "trial_0000" / "genome.json").read_bytes()
    # what a kill leaves: trial 1 (same params) RUNNING, its run stopped after a checkpoint
    study = first.study
    study.enqueue_trial(dict(done.params))
    killed = study.ask()
    killed_dir = sweep_dir / "trial_0001"
    for key, value in [("sweep_dir", str(sweep_dir.resolve())),
                       ("run_dir", str(killed_dir.resolve()))]:
        killed.set_user_attr(key, value)
    params = {p.field: p.suggest(killed) for p in build_space(space, base)}
    run(dataclasses.replace(sweep.apply_params(base, params), run_dir=killed_dir),
        stop_after=7, evaluate=False)  # checkpoint at 6, validated at 6
    study.ask()  # trial 2: killed right after its creation (no user attrs, no run folder)

    settings = dataclasses.replace(settings, trials=3)
    result = run_sweep(base, space, settings, resume=True)
    trials = result.study.trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].user_attrs["interrupted"] is True
    assert trials[2].user_attrs["interrupted"] is True
    assert trials[3].user_attrs["resumes_trial"] == 1 and trials[3].params == done.params
    assert trials[3].intermediate_values.keys() == {0, 6, 12}  # 0 and 6 from the copied run
    assert trials[3].value == done.value
    assert trials[4].user_attrs["resumes_trial"] == 2
    assert (sweep_dir / "trial_0000" / "genome.json").read_bytes() == genome_bytes
    assert_same_run(sweep_dir / "trial_0000", sweep_dir / "trial_0003")
    assert "continues trial 1" in (sweep_dir / "trials.csv").read_text()
    # nothing owed any more: a second resume runs no trial
    again = run_sweep(base, space, settings, resume=True)
    assert len(again.study.trials) == 5


# ------------------------------------------------------------------ subprocesses (slow)

SWEEP_ARGS = [a for a in META_TRAIN if a not in ("--preset", "toy2d")]


def _sweep_cmd(sweep_dir: Path, trials: int, *extra: str) -> list[str]:
    return [BLUR, "sweep", "--preset", "toy2d", "--sweep-dir", str(sweep_dir), "--trials",
            str(trials), "--space", "seed=int:0,1000", *extra, *SWEEP_ARGS]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "JAX_PLATFORMS": "cpu"}


def _trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).trials


@pytest.mark.slow
def test_sigkill_and_resume(tmp_path):
    sweep_dir = tmp_path / "s"
    storage = f"sqlite:///{sweep_dir.resolve() / 'study.db'}"
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(_sweep_cmd(sweep_dir, 3), env=_env(), stdout=log, stderr=log)
    deadline = time.monotonic() + 900
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            assert proc.poll() is None, (tmp_path / "first.log").read_text()
            if (sweep_dir / "study.db").exists():
                with contextlib.suppress(Exception):
                    if any(t.state.name == "COMPLETE" for t in _trials(storage, "blur-sweep")):
                        break
        else:
            pytest.fail("no trial finished in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {t.number: t for t in _trials(storage, "blur-sweep")}
    finished = {n for n, t in before.items() if t.state.name == "COMPLETE"}
    genomes = {n: (sweep_dir / f"trial_{n:04d}" / "genome.json").read_bytes() for n in finished}
    out = subprocess.run([BLUR, "sweep", "--sweep-dir", str(sweep_dir), "--resume"], env=_env(),
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    after = _trials(storage, "blur-sweep")
    complete = [t for t in after if t.state.name == "COMPLETE"]
    assert len(complete) == 3
    interrupted = [t for t in after if t.user_attrs.get("interrupted")]
    assert all(t.state.name == "FAIL" for t in interrupted)
    assert len(after) == 3 + len(interrupted)  # nothing lost, nothing duplicated
    assert not [t for t in after if t.state.name == "RUNNING"]
    for n in finished:  # finished trials are not re-run
        assert after[n].state.name == "COMPLETE" and after[n].value == before[n].value
        assert (sweep_dir / f"trial_{n:04d}" / "genome.json").read_bytes() == genomes[n]
    assert (sweep_dir / "best_config.json").exists()
    assert "best trials of study 'blur-sweep'" in out.stdout


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path.resolve() / 'shared.db'}"
    procs = [
        subprocess.Popen(
            _sweep_cmd(tmp_path / f"w{i}", 2, "--storage", storage, "--study-name", "shared",
                       "--sampler-seed", str(i)),
            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=1200)
        assert p.returncode == 0, out[-3000:]
    trials = _trials(storage, "shared")
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)  # the pruner may act
    for i in range(2):
        folder = str((tmp_path / f"w{i}").resolve())
        mine = [t for t in trials if t.user_attrs["sweep_dir"] == folder]
        assert len(mine) == 2
        for t in mine:
            assert (tmp_path / f"w{i}" / f"trial_{t.number:04d}" / "genome.json").exists()
        assert len((tmp_path / f"w{i}" / "trials.csv").read_text().splitlines()) >= 3


def test_help_lists_the_sweep_options_and_the_config_fields(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    code, out, _ = call(["sweep", "--help"])
    assert code == 0
    for word in ["--space", "--trials", "--sweep-dir", "--storage", "--study-name", "--resume",
                 "BLUR_SWEEP_DB_PASSWORD", "choice:a,b,c", "--gradient.learning-rate"]:
        assert word in out, word


def test_a_cma_sweep_writes_a_config_that_blur_evolve_accepts(tmp_path):
    """--method cma: the trials run CMA-ES, and best_config.json parses for blur evolve."""
    methods = []

    def fake_run(config, *, resume, evaluate, on_validation):
        methods.append(config.method)
        on_validation(0, config.evolution.cma.sigma0)
        return SimpleNamespace(best_score=config.evolution.cma.sigma0, best_step=0, wall_time=0.0)

    base = dataclasses.replace(tiny_base(), method="cma")
    result = run_sweep(base, {"evolution.cma.sigma0": "float:0.1,0.5"},
                       SweepSettings(tmp_path / "s", 3), run_fn=fake_run)
    assert methods == ["cma"] * 3
    best = max(result.study.trials, key=lambda t: t.value)
    parsed, _ = _parse(["--config", str(result.best_config)], "blur evolve", "cma-mnist14", "cma")
    assert parsed.method == "cma"
    assert parsed.evolution.cma.sigma0 == best.params["evolution.cma.sigma0"]
