"""``blur compare``: several genomes vs the best tuned baseline; table, CSV and PNG."""

from __future__ import annotations

import csv
import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

import blur
from blur.cli.main import main as cli
from blur.experiments.compare import Comparison, best_baseline, unique_names
from blur.experiments.config import PAPER_NETWORK
from blur.experiments.evaluation import BaselineCurves, FamilyEvaluation, Report, summarize
from blur.io.genome_file import save_genome

NETWORK = dataclasses.replace(PAPER_NETWORK, hidden=(8,), neuron_norm="none")


def _fake_comparison() -> Comparison:
    """Two genomes and two baselines on one family, 4 tasks, curves chosen by hand."""
    ones = np.ones((4, 3))
    steps = np.array([0.5, 0.6, 0.7])
    genomes = {"a": ones * steps + np.array([0, 0, 0.01, -0.01])[:, None], "b": ones * 0.5}
    sgd = BaselineCurves(np.array([0.1, 1.0]), np.stack([ones * 0.4, ones * 0.6]))
    adam = BaselineCurves(np.array([0.01]), np.stack([ones * steps[::-1]]))
    results = [FamilyEvaluation("fam", genomes, {"sgd": sgd, "adam": adam})]
    rows = summarize(results, [0, 2])
    return Comparison(Report(results, rows, "", {}), ["a", "b"], ["sgd", "adam"])


def test_table_reports_each_genome_minus_the_best_baseline_per_step():
    comp = _fake_comparison()
    rows = comp.best_rows()
    # step 0: Adam 0.7 beats SGD 0.6; step 2: SGD 0.6 beats Adam 0.5
    assert [r["best"] for r in rows] == ["adam", "sgd"]
    md = comp.markdown().splitlines()
    head = [c.strip() for c in md[0].strip("|").split("|")]
    assert head == ["task", "step", "tasks", "a", "b", "tuned SGD", "tuned Adam",
                    "best baseline", "a − best (95% CI)", "b − best (95% CI)"]
    assert len(md) == 2 + len(rows)
    cells = [c.strip() for c in md[2].strip("|").split("|")]
    assert cells[7] == "Adam" and cells[8].startswith("-20.0 [")  # a: 0.5 - 0.7
    cells = [c.strip() for c in md[3].strip("|").split("|")]
    assert cells[7] == "SGD" and cells[8].startswith("+10.0 [")  # a: 0.7 - 0.6
    assert best_baseline(rows[0], ["sgd", "adam"]) == "adam"


def test_csv_has_one_line_per_family_step_and_method():
    comp = _fake_comparison()
    lines = list(csv.DictReader(io.StringIO(comp.csv())))
    assert len(lines) == 2 * 4  # 2 steps x (2 genomes + 2 baselines)
    a2 = next(r for r in lines if r["method"] == "a" and r["step"] == "2")
    assert a2["kind"] == "genome" and a2["best_baseline"] == "sgd"
    assert float(a2["diff_to_best"]) == pytest.approx(0.1)
    assert float(a2["diff_lo"]) < 0.1 < float(a2["diff_hi"])
    sgd0 = next(r for r in lines if r["method"] == "sgd" and r["step"] == "0")
    assert float(sgd0["lr"]) == pytest.approx(1.0) and sgd0["diff_to_best"] == ""


def test_unique_names_keep_shipped_names_and_number_clashing_files(tmp_path):
    name = blur.genomes.available()[0]
    refs = [name, str(tmp_path / "x" / "genome.json"), str(tmp_path / "y" / "x" / "genome.json"),
            str(tmp_path / "g.json")]
    assert unique_names(refs) == [name, "x", "x-2", "g"]


def test_blur_compare_writes_table_csv_and_a_valid_png(tmp_path, capsys):
    for i in range(2):
        (tmp_path / f"g{i}").mkdir()
        save_genome(blur.delta_genome(2), tmp_path / f"g{i}" / "genome.json", network=NETWORK,
                    method="hand")
    out = tmp_path / "cmp"
    rc = cli(["compare", str(tmp_path / "g0" / "genome.json"), str(tmp_path / "g1" / "genome.json"),
              "--tasks", "xor", "pie", "--baselines", "sgd", "adam",
              "--evaluation.num-tasks", "3", "--evaluation.report-steps", "1", "3",
              "--evaluation.batch-size", "16", "--evaluation.query-size", "50",
              "--output-dir", str(out)])
    assert rc == 0
    md = (out / "table.md").read_text().splitlines()
    assert "g0 − best (95% CI)" in md[0] and "g1 − best (95% CI)" in md[0]
    assert len(md) == 2 + 3 * 2  # xor, pie, all x 2 steps
    lines = list(csv.DictReader((out / "table.csv").open()))
    assert {r["method"] for r in lines} == {"g0", "g1", "sgd", "adam"}
    assert {r["family"] for r in lines} == {"xor", "pie", "all"}
    with Image.open(out / "accuracy_vs_step.png") as im:
        im.verify()
    with Image.open(out / "accuracy_vs_step.png") as im:
        assert im.format == "PNG" and im.size[0] > 300
    assert (out / "compare.json").exists()
    assert "best baseline" in capsys.readouterr().out


def test_blur_compare_names_the_shipped_genomes_for_an_unknown_reference(tmp_path, capsys):
    rc = cli(["compare", "no-such-genome", "--tasks", "xor", "--output-dir", str(tmp_path)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "no-such-genome" in err and blur.genomes.available()[0] in err
