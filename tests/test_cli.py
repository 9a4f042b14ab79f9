"""The ``blur`` command line: help texts, tiny end-to-end runs, and clear errors on bad input.

End-to-end runs call ``blur.cli.main.main([...])`` in-process (they share compiled functions
with test_resume.py / test_divergence.py, same tiny configuration); exit codes and messages of
the installed console script are checked with subprocesses for inputs that fail before any
compilation.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from run_helpers import BLUR, EVOLVE, META_TRAIN

import blur
from blur.cli.main import main
from blur.experiments.config import config_from_json, config_to_json, get_preset
from blur.io.genome_file import load_genome, load_genome_file
from blur.io.metrics import read_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVAL_ARGS = [
    "--tasks", "pie", "--network.hidden", "8", "--evaluation.report-steps", "2",
    "--evaluation.num-tasks", "2", "--evaluation.batch-size", "32",
    "--evaluation.query-size", "64",
]


def call(argv: list[str]) -> int:
    """``blur ARGV`` in-process; tyro's --help / parse errors exit through SystemExit."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else e.code)


# --------------------------------------------------------------------------------- help

HELP = {
    "": ["meta-train", "evolve", "evaluate", "plot", "data"],
    "meta-train": ["--preset", "--resume", "--run-dir", "--seed", "--gradient.meta-steps",
                   "--gradient.num-runs", "--gradient.curriculum.start", "--objective.num-tasks",
                   "--checkpoint-every", "toy2d", "mnist10", "omniglot"],
    "evolve": ["--preset", "--resume", "--evolution.generations", "--evolution.cma.popsize",
               "--evolution.cma.restarts", "--evolution.fitness", "cma-mnist14"],
    "evaluate": ["genome.json", "--tasks", "--output", "--seed", "--baselines",
                 "--evaluation.report-steps", "--network.hidden"],
    "plot": ["PATH", "run-dir", "meta_training.png"],
    "data": ["fetch", "list"],
    "bench": [],
}


@pytest.mark.parametrize("command", list(HELP))
def test_help(command, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    argv = [command, "--help"] if command else ["--help"]
    assert call(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: blur")
    for word in HELP[command]:
        assert word in out, f"`blur {' '.join(argv)}` does not mention {word}"


def test_unknown_command(capsys):
    assert call(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err and "meta-train" in err


# ---------------------------------------------------------------------------- end to end


def _png(path: Path) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        im.verify()
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100


def _check_run_folder(run_dir: Path, last_step: int) -> None:
    for name in ("config.json", "metrics.jsonl", "checkpoint.npz", "checkpoint.npz.json",
                 "genome.json", "eval.json", "eval.md"):
        assert (run_dir / name).is_file(), name
    for name in ("meta_training.png", "accuracy_vs_step.png"):  # drawn at the end of the run
        _png(run_dir / name)
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    config = config_from_json((run_dir / "config.json").read_text())
    assert config.run_dir == run_dir and config.seed == 3 and config.network.hidden == (8,)
    assert json.loads((run_dir / "checkpoint.npz.json").read_text())["step"] == last_step
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(last_step))
    assert any(r["kind"] == "validation" and r["step"] == last_step for r in records)
    # the initial genome is validated first, so the selection can fall back on it
    assert records[0]["kind"] == "validation" and records[0]["step"] == 0
    # every validation uses one horizon: the T the run ends with
    final_T = [r["T"] for r in records if r["kind"] == "train"][-1]
    assert {r["T"] for r in records if r["kind"] == "validation"} == {final_T}
    assert all(r["scored_after"][-1] == final_T for r in records if r["kind"] == "validation")
    best = max((r for r in records if r["kind"] == "validation"),
               key=lambda r: max(r["meta_val_accuracy"]))
    saved = json.loads((run_dir / "genome.json").read_text())["metadata"]
    assert saved["step"] == best["step"]
    # the genome file (schema v2) carries the network it was meta-trained for, and the method
    loaded = load_genome_file(run_dir / "genome.json")
    assert loaded.genome.num_states == 2
    assert loaded.network == config.network and loaded.method == config.method
    ev = json.loads((run_dir / "eval.json").read_text())
    assert ev["report_steps"] == [2]
    (row,) = ev["rows"]
    assert row["family"] == "pie" and row["step"] == 2 and row["num_tasks"] == 2
    assert set(row) == {"family", "step", "num_tasks", "BLUR", "sgd", "BLUR-sgd"}
    (fam,) = ev["families"]
    curves = np.asarray(fam["genomes"]["BLUR"])
    assert curves.shape == (2, 3) and np.all((0 <= curves) & (curves <= 1))
    assert row["BLUR"]["mean"] == pytest.approx(curves[:, 2].mean())
    sgd = np.asarray(fam["baselines"]["sgd"]["oracle"])
    assert sgd.shape == (2, 3)
    assert row["BLUR-sgd"]["mean"] == pytest.approx(curves[:, 2].mean() - sgd[:, 2].mean())
    table = (run_dir / "eval.md").read_text().splitlines()
    assert table[0].split()[:4] == ["task", "step", "BLUR", "SGD"]


@pytest.fixture(scope="module")
def meta_train_run(tmp_path_factory):
    """``blur meta-train`` on the tiny configuration; returns (run_dir, stdout)."""
    run_dir = tmp_path_factory.mktemp("cli") / "mt"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert call(["meta-train", *META_TRAIN, "--objective.score-steps", "1",
                     "--run-dir", str(run_dir)]) == 0
    return run_dir, out.getvalue()


def test_meta_train_end_to_end(meta_train_run):
    run_dir, out = meta_train_run
    # --objective.score-steps reaches the objective: validation scores after step 1 and T=3
    records = read_metrics(run_dir / "metrics.jsonl")
    assert {tuple(r["scored_after"]) for r in records if r["kind"] == "validation"} == {(1, 3)}
    assert config_from_json((run_dir / "config.json").read_text()).objective.score_steps == (1,)
    assert "skipped updates per run: [0, 0]" in out
    assert re.search(r"selected: run \d at meta-step \d+, validation [\d.]+%", out)
    _check_printed_table(out, run_dir)
    assert f"genome: {run_dir / 'genome.json'}" in out and "plots:" in out
    assert "{" not in out  # the config is in config.json, not printed
    _check_run_folder(run_dir, 12)


def _check_printed_table(out: str, run_dir: Path) -> None:
    """The main job's table: BLUR next to tuned SGD with the paired difference and interval."""
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("task"))
    assert lines[i].split() == ["task", "step", "BLUR", "SGD", "BLUR-SGD", "(95%", "CI)"]
    row = lines[i + 2]
    ev = json.loads((run_dir / "eval.json").read_text())["rows"][0]
    assert row.startswith("pie") and row.split()[1] == "2"
    assert f"{100 * ev['BLUR']['mean']:.1f} ± {100 * ev['BLUR']['se']:.1f}" in row
    d = ev["BLUR-sgd"]
    assert f"{100 * d['mean']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]" in row


def test_evaluate_end_to_end(meta_train_run, tmp_path, capsys):
    run_dir, _ = meta_train_run
    output = tmp_path / "curves.json"
    assert call(["evaluate", str(run_dir / "genome.json"), *EVAL_ARGS, "--seed", "3",
                 "--baselines", "sgd", "adam", "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:5] == ["task", "step", "BLUR", "SGD", "ADAM"]
    assert out.splitlines()[2].startswith("pie")
    (row,) = json.loads(output.read_text())["rows"]
    assert row["family"] == "pie" and set(row) >= {"BLUR", "sgd", "adam", "BLUR-sgd", "BLUR-adam"}
    # the printed BLUR column is the mean of the per-task curves' entry 2, in percent
    (fam,) = json.loads(output.read_text())["families"]
    mean = np.mean(np.asarray(fam["genomes"]["BLUR"])[:, 2])
    assert out.splitlines()[2].split()[2] == f"{100 * mean:.1f}"


def test_evaluate_takes_the_network_of_the_genomes_run_folder(meta_train_run, tmp_path, capsys):
    run_dir, _ = meta_train_run
    assert call(["evaluate", str(run_dir / "genome.json"), "--help"]) == 0
    help_text = capsys.readouterr().out
    hidden = help_text[help_text.index("--network.hidden"):][:200]
    assert "(default: 8)" in hidden  # the run's --network.hidden 8, not the default 20
    # a v2 genome file carries its network: outside its run folder it still trains (8,)
    (tmp_path / "genome.json").write_text((run_dir / "genome.json").read_text())
    assert call(["evaluate", str(tmp_path / "genome.json"), "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "(default: 8)" in help_text[help_text.index("--network.hidden"):][:200]
    # a v1 file (no network) takes its run folder's config.json, and alone the defaults
    data = json.loads((run_dir / "genome.json").read_text())
    v1 = {**{k: v for k, v in data.items() if k not in ("network", "method")},
          "schema_version": 1}
    (tmp_path / "genome.json").write_text(json.dumps(v1))
    assert call(["evaluate", str(tmp_path / "genome.json"), "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "(default: 20)" in help_text[help_text.index("--network.hidden"):][:200]


def test_evaluate_refuses_mismatched_genome(meta_train_run, capsys):
    run_dir, _ = meta_train_run
    assert call(["evaluate", str(run_dir / "genome.json"), *EVAL_ARGS,
                 "--network.num-states", "3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("blur evaluate: error:")
    assert "K=2" in err and "--network.num-states 2" in err


def test_plot_end_to_end(meta_train_run, capsys):
    run_dir, _ = meta_train_run
    assert call(["plot", str(run_dir)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(run_dir / "meta_training.png"), str(run_dir / "accuracy_vs_step.png")]
    for p in printed:
        _png(Path(p))


def test_evolve_end_to_end(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "ev"
    assert call(["evolve", *EVOLVE, "--run-dir", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"selected: run 0 at generation \d+, validation [\d.]+%", out)
    assert "diverged candidates: 0 of 48" in out
    _check_printed_table(out, run_dir)
    _check_run_folder(run_dir, 8)
    meta = json.loads((run_dir / "checkpoint.npz.json").read_text())
    assert meta["kind"] == "cma" and meta["popsizes"] == [6] * 8
    assert len(meta["mean"]) == blur.ravel_genome(load_genome(run_dir / "genome.json"))[0].size
    assert call(["plot", str(run_dir)]) == 0
    _png(run_dir / "meta_training.png")


# ----------------------------------------------------------------------------- bad input


def test_run_folder_that_already_holds_a_run(meta_train_run, capsys):
    run_dir, _ = meta_train_run
    before = (run_dir / "checkpoint.npz").read_bytes()
    assert call(["meta-train", *META_TRAIN, "--run-dir", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "already holds a run" in err and f"--resume {run_dir}" in err
    assert "Traceback" not in err
    assert (run_dir / "checkpoint.npz").read_bytes() == before


def test_resume_of_a_finished_run_changes_nothing(meta_train_run, capsys):
    run_dir, _ = meta_train_run
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.suffix in (".npz", ".json")}
    assert call(["meta-train", "--resume", str(run_dir)]) == 0
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.suffix in (".npz", ".json")}
    for name in ("checkpoint.npz", "genome.json", "config.json"):
        assert after[name] == before[name], name


def test_resume_with_help_prints_help_and_runs_nothing(meta_train_run, capsys):
    run_dir, _ = meta_train_run
    before = (run_dir / "eval.json").stat().st_mtime_ns
    assert call(["meta-train", "--resume", str(run_dir), "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: blur meta-train") and "--gradient.meta-steps" in out
    assert (run_dir / "eval.json").stat().st_mtime_ns == before


def test_resume_rejects_other_options(meta_train_run):
    run_dir, _ = meta_train_run
    code = call(["meta-train", "--resume", str(run_dir), "--seed", "4"])
    assert "--resume takes no other options" in str(code)


def test_resume_without_checkpoint(tmp_path, capsys):
    assert call(["meta-train", "--resume", str(tmp_path)]) == 1
    assert "not a blur run folder" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(config_to_json(get_preset("cma-mnist14")))
    assert call(["evolve", "--resume", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "nothing to resume (no checkpoint.npz)" in err and "Traceback" not in err


def test_resume_with_the_other_command_names_the_right_one(meta_train_run):
    run_dir, _ = meta_train_run
    code = call(["evolve", "--resume", str(run_dir)])
    assert f"is a gradient run; resume it with `blur meta-train --resume {run_dir}`" in str(code)


def test_evaluate_corrupt_genome(tmp_path, capsys):
    path = tmp_path / "genome.json"
    path.write_text('{"schema": "blur.genome", "schema_version": 1, "num_st')
    assert call(["evaluate", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("blur evaluate: error:") and "corrupt genome file" in err


def test_plot_of_a_folder_without_metrics(tmp_path):
    code = call(["plot", str(tmp_path)])
    assert "metrics.jsonl is missing or empty" in str(code)


def _script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "COLUMNS": "120"}
    return subprocess.run([BLUR, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env=env)


@pytest.mark.parametrize(("args", "message"), [
    (["meta-train", "--preset", "nope"], "unknown preset 'nope'; choose one of"),
    (["meta-train", "--resume", "{tmp}"], "nothing to resume (no checkpoint.npz)"),
    (["meta-train", "--run-dir", "{tmp}"], "already holds a run"),
])
def test_console_script_bad_input_exits_non_zero(tmp_path, args, message):
    (tmp_path / "config.json").write_text(config_to_json(get_preset("toy2d")))
    if "--run-dir" in args:
        (tmp_path / "checkpoint.npz").write_bytes(b"x")
    done = _script(*[a.replace("{tmp}", str(tmp_path)) for a in args], cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


def test_console_script_help():
    done = _script("--help", cwd=Path.cwd())
    assert done.returncode == 0 and "meta-train" in done.stdout
    done = _script("meta-train", "--help", cwd=Path.cwd())
    assert done.returncode == 0 and "--gradient.meta-steps" in done.stdout
