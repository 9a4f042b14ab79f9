"""``blur reproduce`` toy, cma-vs-gradient and mnist-generalisation: each runs end to end at
the tiny scale through the CLI, with checks on its folder, its table and one property that
must hold, so that none can rot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_reproduce import call, check_png


def run_cli(experiment: str, out: Path, *extra: str) -> tuple[dict, str]:
    rc, text, err = call(["reproduce", experiment, "--scale", "tiny", "--out", str(out),
                          *extra])
    assert rc == 0, err
    table = json.loads((out / "table.json").read_text())
    run = json.loads((out / "run.json").read_text())
    assert run["experiment"] == experiment and run["scale"] == "tiny"
    assert f"reproduce {experiment}" in run["command"]
    md = (out / "table.md").read_text()
    assert text.startswith(md.split("\n")[0])
    for name in run["figures"]:
        check_png(out / name)
    return table, md


# ------------------------------------------------------------------ toy (Figs. 3-4)


@pytest.mark.slow  # end to end; CI runs it in its own process (.ci/run)
def test_toy_runs_end_to_end_with_both_spreads_and_decision_regions(tmp_path: Path):
    out = tmp_path / "toy"
    table, md = run_cli("toy", out, "--num-runs", "2")
    assert json.loads((out / "run.json").read_text())["figures"] == ["toy.png",
                                                                    "toy-regions.png"]
    assert table["families"] == {"meta-train": ["xor"], "meta-val": ["pie"]}
    assert [r["step"] for r in table["rows"]] == [2, 4]
    assert "| step | meta-train |" in md
    for row in table["rows"]:
        for group in ("meta-train", "meta-val"):
            c = row[group]
            assert len(c["runs"]) == 2 and len(c["inits"]) == 2  # every run, every init set
            assert all(0 <= v <= 1 for v in [c["mean"], c["sgd"], *c["runs"], *c["inits"]])
            assert c["runs_min"] == min(c["runs"]) <= c["runs_max"] == max(c["runs"])
            # The first init set is evaluate()'s own init keys: the init spread is taken over
            # the very tasks the selected genome's row reports.
            assert c["inits"][0] == pytest.approx(c["mean"], abs=1e-6)
    curves = table["mean_curves"]["meta-val"]
    assert set(curves) == {"selected", "run0", "run1", "sgd"}
    assert all(len(v) == 5 for v in curves.values())
    (region,) = table["regions"]
    assert region["family"] == "pie" and 0 <= region["grid_accuracy"] <= 1


# ------------------------------------------------------------------ cma-vs-gradient (Fig. 7)


@pytest.mark.slow  # 34 s; CI runs it in its slow step (.ci/run)
def test_cma_vs_gradient_runs_both_methods_on_the_same_validation(tmp_path: Path):
    out = tmp_path / "cma"
    table, md = run_cli("cma-vs-gradient", out, "--generations", "3")
    assert json.loads((out / "run.json").read_text())["figures"] == ["cma-vs-gradient.png",
                                                                    "validation.png"]
    assert [r["name"] for r in table["rows"]] == ["gradient", "cma"]
    for name, method in (("gradient", "gradient"), ("cma", "cma")):
        config = json.loads((out / "runs" / name / "config.json").read_text())
        assert config["method"] == method
        assert f"| {name} |" in md
    for row in table["rows"]:
        assert 0 <= row["meta_val"] <= 1
        assert all(0 <= c["mean"] <= 1 and 0 <= c["baseline"]["mean"] <= 1
                   for c in row["steps"])
    grad, cma = table["validation"]["gradient"], table["validation"]["cma"]
    assert grad["step"][0] == cma["step"][0] == 0
    assert grad["step"][-1] == 2 and cma["step"][-1] == 3  # meta-steps / generations
    # Step 0 scores the same initial genome on the same held-out tasks after the same number of
    # inner steps in both runs: the curves start at one point, so they compare.
    assert grad["accuracy"][0] == cma["accuracy"][0]
    for c in (grad, cma):
        assert all(0 <= a <= b <= 1 for a, b in zip(c["accuracy"], c["best"], strict=True))
        assert c["best"] == sorted(c["best"])  # best so far never falls
    rc, _, err = call(["reproduce", "cma-vs-gradient", "--scale", "tiny", "--out",
                       str(tmp_path / "bad"), "--popsize", "1"])
    assert rc == 2 and "popsize=1 must be an integer >= 2" in err


# ------------------------------------------------------- mnist-generalisation (Figs. 5, 11)


@pytest.mark.slow  # end to end; CI runs it in its own process (.ci/run)
@pytest.mark.parametrize(("genome", "depth"), [(None, 2), ("toy2d-k2", 1)])
def test_mnist_generalisation_evaluates_the_depth_a_per_layer_genome_fits(
        tmp_path: Path, genome: str | None, depth: int):
    from blur.experiments.reproduce.mnist_generalisation import DATASETS, HIDDEN

    out = tmp_path / "mg"
    table, md = run_cli("mnist-generalisation", out,
                        *(["--genome", genome] if genome else []))
    assert json.loads((out / "run.json").read_text())["figures"] == [
        "mnist-generalisation.png", "datasets.png"]
    assert not (out / "runs").exists()  # no meta-training
    (row,) = table["rows"]  # the shipped genomes are per-layer: one width each
    assert len(row["hidden"]) == depth and tuple(row["hidden"]) in HIDDEN
    skipped = {s[0]: s[1] for s in table["skipped"]}
    other = next(h for h in HIDDEN if len(h) != depth)
    assert "fixes the depth" in skipped[f"hidden {other}"] and f"hidden {other}" in md
    # Every data set is either evaluated on its test split or listed as not imported.
    families = table["families"]
    assert all(f.endswith("?query_split=test") for f in families)
    assert families[:2] == ["mnist?query_split=test", "fashion_mnist?query_split=test"]
    evaluated = {f.split("?")[0] for f in families}
    assert evaluated | {d for d in skipped if d in DATASETS} == set(DATASETS)
    assert all("not imported" in skipped[d] for d in DATASETS if d not in evaluated)
    per_family = [r for r in table["groups"][0]["rows"] if r["family"] != "all"]
    assert per_family and all("query=test" in r["family"] for r in per_family)
    for cell in row["steps"]:
        assert 0 <= cell["mean"] <= 1 and 0 <= cell["baseline"]["mean"] <= 1


# ------------------------------------------------------------------ unsupervised (§5)


@pytest.mark.slow  # 24 s; CI runs it in its slow step (.ci/run)
def test_unsupervised_compares_a_genome_with_the_option_off_and_on(tmp_path: Path):
    out = tmp_path / "un"
    table, md = run_cli("unsupervised", out)
    assert [r["name"] for r in table["rows"]] == ["off", "on"]
    assert [v["network"]["unsupervised_update"] for v in table["variants"]] == [False, True]
    assert table["families"] == ["mnist?query_split=test"] and not (out / "runs").exists()
    assert "| off |" in md and "| on |" in md
    curves = table["groups"][0]["mean_curves"]
    # Step 0 is the untrained network: same genome, same synapse inits, same query, so the
    # option cannot matter yet; after the first step it does.
    assert curves["off"][0] == curves["on"][0]
    assert curves["off"][1:] != curves["on"][1:]
    for row in table["rows"]:
        assert all(0 <= c["mean"] <= 1 for c in row["steps"])


@pytest.mark.slow  # end to end; CI runs it in its own process (.ci/run)
def test_unsupervised_meta_trains_off_and_on_through_the_ablation_driver(tmp_path: Path):
    out = tmp_path / "un"
    table, _ = run_cli("unsupervised", out, "--variants", "off", "on")
    assert [r["name"] for r in table["rows"]] == ["off", "on"]
    for name, on in (("off", False), ("on", True)):
        config = json.loads((out / "runs" / name / "config.json").read_text())
        assert config["network"]["unsupervised_update"] is on
    rc, _, err = call(["reproduce", "unsupervised", "--scale", "tiny", "--out",
                       str(tmp_path / "bad"), "--variants", "on", "--genome", "mnist-k4"])
    assert rc == 2 and "not both" in err


# ------------------------------------------------------------------ omniglot (§4.5)


def _drawings(family) -> set[bytes]:
    """The drawings a family's episodes can use (each as bytes)."""
    import numpy as np

    images = np.asarray(family.images)
    table, counts = np.asarray(family.class_table), np.asarray(family.class_counts)
    return {images[i].tobytes() for row, n in zip(table, counts, strict=True) for i in row[:n]}


def test_omniglot_evaluation_subsets_are_disjoint_from_each_other_training_and_selection():
    from blur.experiments.config import build_family
    from blur.experiments.reproduce import omniglot

    config = omniglot.config_at("tiny", 0, None, None)
    subsets = omniglot.subsets(3)
    seen = _drawings(build_family(config.tasks.train[0]))
    seen |= _drawings(build_family(config.tasks.validate[0]))
    pools = [_drawings(f) for f in subsets]
    assert all(f.num_pool_classes == 10 == f.num_classes for f in subsets)
    for i, p in enumerate(pools):
        assert len(p) > 100 and not p & seen  # never trained on, never selected on
        assert all(not p & q for q in pools[i + 1:])
    with pytest.raises(ValueError, match="disjoint 10-way subsets need"):
        omniglot.subsets(50)


@pytest.mark.slow  # end to end; CI runs it in its own process (.ci/run)
def test_omniglot_runs_end_to_end_with_the_spread_over_subsets(tmp_path: Path):
    import numpy as np

    out = tmp_path / "om"
    table, md = run_cli("omniglot", out)
    assert [r["name"] for r in table["rows"]] == ["held-out subsets", "MNIST (transfer)"]
    assert table["num_subsets"] == 2 and len(table["families"]) == 2
    assert table["rows"][0]["num_tasks"] == 4 and table["rows"][1]["num_tasks"] == 2
    assert (out / "runs" / "omniglot" / "genome.json").exists()
    for name, cells in table["subset_spread"].items():
        assert [c["step"] for c in cells] == [2, 4], name
        for c in cells:
            assert len(c["subsets"]) == 2 and all(0 <= v <= 1 for v in c["subsets"])
            assert c["mean"] == pytest.approx(np.mean(c["subsets"]))
            assert c["sd"] == pytest.approx(np.std(c["subsets"], ddof=1))
    # The pooled row over equal-sized subsets is the mean of the subsets' means.
    pooled = table["rows"][0]["steps"][-1]["mean"]
    assert pooled == pytest.approx(table["subset_spread"]["held-out subsets"][-1]["mean"])
    assert "Spread over the 2 disjoint held-out subsets" in md


def test_an_ablation_run_recorded_before_the_unsupervised_field_still_resumes(tmp_path: Path):
    """A config.json written before ``network.unsupervised_update`` existed (no such key) is
    the same config: the finished run is reused, not refused or trained again."""
    from blur.experiments.reproduce.ablation import meta_train
    from blur.experiments.reproduce.states import all_variants

    variant = all_variants("tiny")[0]
    run_dir = tmp_path / "k2"
    first = meta_train(variant, run_dir)
    path = run_dir / "config.json"
    data = json.loads(path.read_text())
    del data["network"]["unsupervised_update"]
    path.write_text(json.dumps(data, indent=1))
    metrics = (run_dir / "metrics.jsonl").read_bytes()
    again = meta_train(variant, run_dir)
    assert (run_dir / "metrics.jsonl").read_bytes() == metrics
    assert again.best_step == first.best_step and again.best_score == first.best_score
