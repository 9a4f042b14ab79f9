"""``blur reproduce``: the experiment list, clear errors for unimplemented experiments, the
symmetry analysis (paper §3.5, App. A) and tiny end-to-end runs of every implemented experiment,
so that none can rot."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from blur.cli.main import main
from blur.experiments.reproduce import (
    EXPERIMENTS,
    Experiment,
    ExperimentNotImplementedError,
    run_experiment,
)
from blur.experiments.reproduce import symmetry as sym

ISSUE_EXPERIMENTS = [
    "symmetry", "toy", "mnist-generalisation", "omniglot", "sgd-sweep", "cma-vs-gradient",
    "normalisation", "variants", "depth-transfer", "activations", "states", "stability",
    "unsupervised",
]
TINY = sym.SCALES["tiny"]


def call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 0
    return rc, out.getvalue(), err.getvalue()


def check_png(path: Path) -> None:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100


# ------------------------------------------------------------------ the list and the errors


def test_list_names_every_experiment_of_the_issue_with_a_time_and_its_status():
    rc, out, _ = call(["reproduce", "--list"])
    assert rc == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert sorted(lines) == sorted(ISSUE_EXPERIMENTS) == sorted(EXPERIMENTS)
    for name, line in lines.items():
        assert ("yes" if EXPERIMENTS[name].implemented else "NO") in line.split()
        assert "min" in line  # an estimated time
    assert EXPERIMENTS["symmetry"].implemented and EXPERIMENTS["sgd-sweep"].implemented


def test_an_unimplemented_experiment_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Every experiment of the issue is implemented now: list one that is not.
    monkeypatch.setitem(EXPERIMENTS, "later", Experiment("later", "§9", "x", "target 5 min",
                                                         missing="the driver"))
    rc, _, err = call(["reproduce", "later", "--out", str(tmp_path / "t")])
    assert rc == 2 and "not implemented yet" in err and "the driver" in err
    assert not (tmp_path / "t").exists()
    with pytest.raises(ExperimentNotImplementedError, match="not implemented yet"):
        run_experiment("later", tmp_path / "s")
    rc, _, err = call(["reproduce", "nonsense"])
    assert rc == 2 and "unknown experiment" in err


# ------------------------------------------------------------------ the symmetry analysis


def _case(name: str) -> sym.Case:
    return next(c for c in sym.default_cases() if c.name == name)


def test_backprop_genome_jacobian_is_symmetric_to_float_error():
    """A backprop step is Δw = -lr ∇L, so ∂Δw/∂w = -lr·Hessian is symmetric (paper eq. 10)."""
    J = sym.case_jacobian(_case("backprop"), TINY.hidden, TINY.batch_size, jax.random.PRNGKey(0))
    n = (2 + 1) * TINY.hidden + (TINY.hidden + 1) * 2  # forward weights and biases
    assert J.shape == (n, n)
    assert np.linalg.norm(J) > 1e-3  # not trivially zero
    assert sym.asymmetry(J) < 1e-12


def test_hand_built_nonsymmetric_rule_shows_a_clear_asymmetry():
    """Backprop with untied random backward synapses (feedback alignment) is no gradient."""
    J = sym.case_jacobian(_case("feedback-alignment"), TINY.hidden, TINY.batch_size,
                          jax.random.PRNGKey(0))
    assert sym.asymmetry(J) > 0.1


def test_metric_test_finds_the_metric_of_a_generalised_gradient_descent():
    """Q_k = G⁻¹ H_k (H_k symmetric, G positive-definite) is generalised GD with metric G; a
    random non-symmetric family is not (App. A, eq. 13)."""
    rng = np.random.default_rng(0)
    n = 6
    a = rng.normal(size=(n, n))
    G = a @ a.T + n * np.eye(n)
    hs = [(h + h.T) for h in rng.normal(size=(8, n, n))]
    qs = np.stack([np.linalg.solve(G, h) for h in hs])
    found = sym.metric_test(qs)
    assert found.joint_null_dim >= 1 and found.generalised_gd
    assert found.identity_residual > 0.05  # plain GD would not explain it
    random = sym.metric_test(rng.normal(size=(8, n, n)))
    assert random.joint_null_dim == 0 and not random.generalised_gd


def test_metric_test_on_backprop_and_feedback_alignment():
    bp = sym.case_metric_test(_case("backprop"), TINY, jax.random.PRNGKey(1))
    assert bp.identity_residual < 1e-12 and bp.joint_null_dim >= 1 and bp.generalised_gd
    fa = sym.case_metric_test(_case("feedback-alignment"), TINY, jax.random.PRNGKey(1))
    assert not fa.generalised_gd


# ------------------------------------------------------------------ tiny end-to-end runs


def test_symmetry_runs_end_to_end(tmp_path: Path):
    out = tmp_path / "sym"
    rc, text, _ = call(["reproduce", "symmetry", "--scale", "tiny", "--out", str(out),
                        "--rules", "backprop", "feedback-alignment"])
    assert rc == 0 and "backprop" in text
    check_png(out / "symmetry.png")
    table = json.loads((out / "table.json").read_text())
    rows = {r["case"]: r for r in table["rows"]}
    assert set(rows) == {"backprop", "feedback-alignment"}
    assert rows["backprop"]["asymmetry"] < 1e-12 < 0.1 < rows["feedback-alignment"]["asymmetry"]
    assert rows["backprop"]["metric_test"]["generalised_gd"] is True
    assert "| backprop |" in (out / "table.md").read_text()
    run = json.loads((out / "run.json").read_text())
    assert run["scale"] == "tiny" and run["wall_s"] > 0 and "reproduce symmetry" in run["command"]


def test_sgd_sweep_runs_end_to_end(tmp_path: Path):
    out = tmp_path / "sweep"
    rc, _, _ = call(["reproduce", "sgd-sweep", "--scale", "tiny", "--out", str(out)])
    assert rc == 0
    check_png(out / "sgd_sweep.png")
    table = json.loads((out / "table.json").read_text())
    for opt in ("sgd", "momentum"):
        lrs = table["lrs"][opt]
        assert max(lrs) / min(lrs) >= 1e4 - 1  # four decades
        for row in table["rows"]:
            assert len(row[opt]["per_lr"]) == len(lrs)
            assert 0 <= row[opt]["worst"] <= row[opt]["best"] <= 1
            assert 0 <= row[opt]["rates_beaten"] <= len(lrs)
    assert [r["step"] for r in table["rows"]][-1] == 4
    assert 0 <= table["rows"][-1]["genome"] <= 1
    assert table["evaluation"]["families"][0]["family"] == "pie"
