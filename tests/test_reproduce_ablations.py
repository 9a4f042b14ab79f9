"""``blur reproduce`` ablations (paper §4.5, App. C: states, normalisation, activations,
depth-transfer, variants, stability): each runs end to end at the tiny scale through the CLI
and the shared driver, with checks on its folder, its table's rows and the numbers, so that
none can rot; the pieces with their own logic (label randomisation, option checks, the
per-layer refusal) have unit tests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_reproduce import call, check_png

from blur.experiments.evaluation import BaselineCurves, FamilyEvaluation
from blur.experiments.reproduce import activations, stability
from blur.experiments.reproduce.ablation import base_config, folder_name, select
from blur.experiments.reproduce.depth_transfer import run as depth_run
from blur.experiments.reproduce.states import all_variants as state_variants
from blur.tasks.base import Batch, Episode

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "blur" / "genomes" / "toy2d-k2.json"


def run_cli(experiment: str, out: Path, *extra: str) -> dict:
    """Run ``blur reproduce EXPERIMENT --scale tiny`` and check what every ablation writes."""
    rc, text, err = call(["reproduce", experiment, "--scale", "tiny", "--out", str(out),
                          *extra])
    assert rc == 0, err
    check_png(out / f"{experiment}.png")
    table = json.loads((out / "table.json").read_text())
    run = json.loads((out / "run.json").read_text())
    assert run["experiment"] == experiment and run["scale"] == "tiny"
    assert f"reproduce {experiment}" in run["command"]
    md = (out / "table.md").read_text()
    for row in table["rows"]:
        assert f"| {row['name']} |" in md
        check_row(row)
    assert text.startswith(md.split("\n")[0])
    return table


def check_row(row: dict) -> None:
    """Accuracies are fractions, the paired difference is the difference of the means, and the
    verdict follows its interval."""
    assert row["meta_val"] is None or 0 <= row["meta_val"] <= 1
    for cell in row["steps"]:
        assert 0 <= cell["mean"] <= 1 and 0 <= cell["baseline"]["mean"] <= 1
        d = cell["diff"]
        assert d["mean"] == pytest.approx(cell["mean"] - cell["baseline"]["mean"], abs=1e-9)
        assert d["lo"] <= d["mean"] <= d["hi"]
        expected = "ahead" if d["lo"] > 0 else "behind" if d["hi"] < 0 else "tie"
        assert cell["verdict"] == expected


def run_config(out: Path, name: str) -> dict:
    return json.loads((out / "runs" / folder_name(name) / "config.json").read_text())


# ------------------------------------------------------------------ the shared driver


def test_base_config_scales_and_bad_overrides():
    tiny, small = base_config("tiny"), base_config("small")
    assert tiny.gradient.meta_steps < small.gradient.meta_steps <= 300
    assert small.preset == "toy2d" and base_config("paper").preset == "mnist10"
    # the small scale keeps the toy2d setting its recorded results were measured with, not
    # the retuned main job (reproduce_preset)
    from blur.experiments.reproduce.common import reproduce_preset
    from blur.experiments.reproduce.sgd_sweep import preset_contender

    pinned = reproduce_preset("toy2d")
    assert (pinned.network.neuron_norm, pinned.gradient.learning_rate,
            pinned.objective.num_tasks, pinned.validate_tasks) == ("none", 1e-2, 6, 8)
    assert (pinned.gradient.num_runs, pinned.gradient.exploit_below, pinned.validate_num_steps,
            pinned.evaluation.num_tasks) == (4, None, None, 16)
    assert small.gradient.exploit_below is None and small.validate_num_steps is None
    assert small.network == pinned.network and small.objective == pinned.objective
    assert small.gradient.learning_rate == 1e-2
    assert preset_contender("toy2d").network == pinned.network
    assert base_config("small", meta_steps=7, num_runs=3).gradient.num_runs == 3
    with pytest.raises(ValueError, match="meta_steps=0 must be a positive integer"):
        base_config("small", meta_steps=0)
    with pytest.raises(ValueError, match="unknown scale"):
        base_config("huge")


def test_the_paper_scale_keeps_the_mnist10_setting_before_issue_10_changed_it():
    """The paper scale varies what the paper varies: the neuron normalisation, the horizon
    and the calibration that issue 10 added to the mnist10 preset are not part of its base."""
    import dataclasses

    from blur.experiments.config import CalibrationSettings, get_preset
    from blur.experiments.reproduce.common import reproduce_preset

    pinned, shipped = reproduce_preset("mnist10"), get_preset("mnist10")
    assert base_config("paper").network == pinned.network
    assert pinned.network.neuron_norm == "none" and pinned.init_eta_tilde == (200.0, 100.0, 50.0)
    assert pinned.calibration == CalibrationSettings()
    assert (pinned.gradient.meta_steps, pinned.gradient.curriculum.maximum,
            pinned.objective.score_steps) == (800, 20, (10,))
    # otherwise the preset as shipped: the same tasks, widths, states and evaluation
    assert pinned.tasks == shipped.tasks
    assert pinned.evaluation == dataclasses.replace(shipped.evaluation,
                                                    report_steps=(10, 25, 50, 100))
    assert dataclasses.replace(pinned.network, neuron_norm="both") == shipped.network
    # the shipped preset's calibration refuses an unnormalised network, the pinned one takes it
    with pytest.raises(ValueError, match="normalised output layer"):
        dataclasses.replace(shipped, network=pinned.network)


@pytest.mark.parametrize("scale", ["tiny", "small", "paper"])
def test_every_variant_of_every_scale_builds_its_network_and_initial_genome(scale: str):
    """Each run config is valid and its initialiser fits its network (e.g. a shared genome
    with the per-layer-only delta init of error feedback would fail here, not after hours)."""
    from blur.experiments.reproduce import depth_transfer, normalisation, variants
    from blur.experiments.runs import initial_genome

    built = [
        *state_variants(scale), *normalisation.all_variants(scale),
        *activations.make_variants(scale, activations.DEFAULT_PAIRS[scale],
                                   activations.DEFAULT_STATES[scale]),
        *depth_transfer.all_variants(scale), *variants.all_variants(scale),
        *stability.all_variants(scale),
    ]
    for v in built:
        net = v.config.network
        spec = net.spec(2, 3)
        spec.check_genome(initial_genome(v.config, net.num_layers, jax.random.PRNGKey(0)))
    assert len({v.name for v in variants.all_variants(scale)}) == 8
    assert all(not v.config.network.per_layer_genome for v in depth_transfer.all_variants(scale))


def test_select_names_the_valid_variants():
    variants = state_variants("tiny")
    assert [v.name for v in select(variants, ["k8", "k2"])] == ["k8", "k2"]
    assert [v.config.network.num_states for v in select(variants, None, ["k3"])] == [3]
    with pytest.raises(ValueError, match=r"unknown variants \['k5'\]; choose from"):
        select(variants, ["k5"])
    with pytest.raises(ValueError, match="repeat"):
        select(variants, ["k2", "k2"])


# ------------------------------------------------------------------ states (Fig. 13)


@pytest.mark.slow  # end to end; CI runs it in its own process (.ci/run)
def test_states_runs_end_to_end_and_refuses_another_config_in_its_folder(tmp_path: Path):
    out = tmp_path / "states"
    table = run_cli("states", out, "--variants", "k2", "k3")
    assert [r["name"] for r in table["rows"]] == ["k2", "k3"]
    assert [v["network"]["num_states"] for v in table["variants"]] == [2, 3]
    for k in (2, 3):
        genome = json.loads((out / "runs" / f"k{k}" / "genome.json").read_text())
        assert genome["num_states"] == k
    assert all(r["num_tasks"] == 2 and r["hidden"] == [8] for r in table["rows"])
    assert [c["step"] for c in table["rows"][0]["steps"]] == [2, 4]
    curves = table["groups"][0]["mean_curves"]
    assert set(curves) == {"k2", "k3", "sgd"} and all(len(c) == 5 for c in curves.values())
    # Run again into the same folder: the finished runs are reused, not trained again, and
    # the evaluation (same tasks, same genomes) gives the same table.
    metrics = (out / "runs" / "k2" / "metrics.jsonl").read_bytes()
    again = run_cli("states", out, "--variants", "k2", "k3")
    assert (out / "runs" / "k2" / "metrics.jsonl").read_bytes() == metrics
    assert again["rows"][0]["steps"] == table["rows"][0]["steps"]
    # Same folder, another config: refused before anything is trained.
    rc, _, err = call(["reproduce", "states", "--scale", "tiny", "--out", str(out),
                       "--variants", "k2", "--meta-steps", "3"])
    assert rc == 2 and "holds a run of another config" in err


def test_ablation_options_are_checked_by_the_cli(tmp_path: Path):
    rc, _, err = call(["reproduce", "states", "--scale", "tiny", "--out", str(tmp_path / "x"),
                       "--variants", "k5"])
    assert rc == 2 and "unknown variants ['k5']" in err
    rc, _, err = call(["reproduce", "states", "--states", "2"])
    assert rc == 2 and "--states applies to activations only" in err
    rc, _, err = call(["reproduce", "symmetry", "--meta-steps", "2"])
    assert rc == 2 and "--meta-steps applies to" in err


# ------------------------------------------------------------------ normalisation (Fig. 8)


@pytest.mark.slow  # end to end; CI runs it in its own process (.ci/run)
def test_normalisation_runs_end_to_end(tmp_path: Path):
    out = tmp_path / "norm"
    table = run_cli("normalisation", out, "--variants", "none", "both")
    assert [r["name"] for r in table["rows"]] == ["none", "both"]
    for name in ("none", "both"):
        assert run_config(out, name)["network"]["neuron_norm"] == name


# ------------------------------------------------------------------ activations (Fig. 12)


def test_activation_pairs_are_checked():
    assert activations.parse_pair("relu/tanh") == ("relu", "tanh")
    with pytest.raises(ValueError, match="must look like FORWARD/BACKWARD"):
        activations.parse_pair("relu")
    with pytest.raises(ValueError, match="backward activation 'swish' is not one of"):
        activations.parse_pair("relu/swish")
    with pytest.raises(ValueError, match="backprop's"):
        activations.parse_pair("binary_sigmoid/linear")
    crossed = activations.make_variants("tiny", ("relu/tanh", "linear/linear"), (2, 4))
    assert [v.name for v in crossed] == ["relu/tanh k2", "linear/linear k2", "relu/tanh k4",
                                         "linear/linear k4"]
    with pytest.raises(ValueError, match="states="):
        activations.make_variants("tiny", ("relu/tanh",), (1,))


@pytest.mark.slow  # end to end; CI runs it in its own process (.ci/run)
def test_activations_runs_end_to_end(tmp_path: Path):
    out = tmp_path / "act"
    table = run_cli("activations", out)
    names = list(activations.DEFAULT_PAIRS["tiny"])
    assert [r["name"] for r in table["rows"]] == names
    for name in names:
        net = run_config(out, name)["network"]
        assert f"{net['forward_activation']}/{net['backward_activation']}" == name


# ------------------------------------------------------------------ depth-transfer (Fig. 10)


@pytest.mark.slow  # end to end; CI runs it in its own process (.ci/run)
def test_depth_transfer_runs_both_directions_and_takes_a_shared_genome(tmp_path: Path):
    out = tmp_path / "depth"
    table = run_cli("depth-transfer", out)
    got = {(r["name"], len(r["trained_hidden"]), len(r["hidden"])) for r in table["rows"]}
    assert got == {("train1L", 1, 1), ("train1L", 1, 2), ("train2L", 2, 1), ("train2L", 2, 2)}
    assert [len(g["hidden"]) for g in table["groups"]] == [1, 2]
    assert "| train1L | (8,) | (8, 8) |" in (out / "table.md").read_text()  # trained, evaluated
    for name in ("train1L", "train2L"):
        config = run_config(out, name)
        assert config["network"]["per_layer_genome"] is False
        assert json.loads((out / "runs" / name / "genome.json").read_text())["num_layers"] is None
    # A shared genome file is evaluated at every depth without meta-training.
    shared = out / "runs" / "train1L" / "genome.json"
    again = depth_run(tmp_path / "file", "tiny", genome=shared, eval_depths=(1, 3))
    assert [len(r["hidden"]) for r in again.table["rows"]] == [1, 3]
    assert not (tmp_path / "file" / "runs").exists()


def test_depth_transfer_refuses_a_per_layer_genome(tmp_path: Path):
    with pytest.raises(ValueError, match="per-layer .* fixes the depth"):
        depth_run(tmp_path / "d", "tiny", genome=SHIPPED)
    rc, _, err = call(["reproduce", "depth-transfer", "--scale", "tiny", "--out",
                       str(tmp_path / "e"), "--genome", str(SHIPPED)])
    assert rc == 2 and "needs a genome shared by all layers" in err
    with pytest.raises(ValueError, match="eval_depths"):
        depth_run(tmp_path / "f", "tiny", eval_depths=(0,))


# ------------------------------------------------------------------ variants (Fig. 9)


@pytest.mark.slow  # end to end; CI runs it in its own process (.ci/run)
def test_variants_runs_end_to_end(tmp_path: Path):
    out = tmp_path / "variants"
    table = run_cli("variants", out)
    assert [r["name"] for r in table["rows"]] == ["sym-single-bp", "asym-multi-rand"]
    bp, rand = run_config(out, "sym-single-bp"), run_config(out, "asym-multi-rand")
    assert (bp["network"]["symmetric_synapses"], bp["network"]["single_state_synapses"],
            bp["genome_init"]) == (True, True, "delta")
    assert (rand["network"]["symmetric_synapses"], rand["network"]["single_state_synapses"],
            rand["genome_init"]) == (False, False, "random")


# ------------------------------------------------------------------ stability (Figs. 15-16)


def _episode(n: int = 3, t: int = 6, b: int = 5, m: int = 7, c: int = 4) -> Episode:
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    return Episode(
        support=Batch(x=jnp.zeros((n, t, b, 2)), y=jax.random.randint(k1, (n, t, b), 0, c)),
        query=Batch(x=jnp.zeros((n, m, 2)), y=jax.random.randint(k2, (n, m), 0, c)),
    )


def test_label_switch_permutes_every_label_from_the_switch_on_and_nothing_before():
    ep, key, switch, c = _episode(), jax.random.PRNGKey(3), 4, 4
    kept = stability.label_switch(switch, c, permute_query=False)(ep, key)
    moved = stability.label_switch(switch, c, permute_query=True)(ep, key)
    y, y1 = np.asarray(ep.support.y), np.asarray(kept.support.y)
    np.testing.assert_array_equal(y1[:, :switch], y[:, :switch])
    assert (y1[:, switch:] != y[:, switch:]).all()  # a derangement: every label changes
    np.testing.assert_array_equal(np.asarray(moved.support.y), y1)  # same batches either way
    np.testing.assert_array_equal(np.asarray(kept.query.y), np.asarray(ep.query.y))
    for n in range(y.shape[0]):  # one fixed permutation per task, the query's too
        perm = {}
        for a, b in zip(y[n, switch:].ravel(), y1[n, switch:].ravel(), strict=True):
            assert perm.setdefault(int(a), int(b)) == int(b)
        assert len(set(perm.values())) == len(perm)
        for a, b in zip(np.asarray(ep.query.y[n]), np.asarray(moved.query.y[n]), strict=True):
            if int(a) in perm:
                assert perm[int(a)] == int(b)
    p = np.asarray(stability.derangement(jax.random.PRNGKey(1), 2))
    assert p.tolist() == [1, 0]
    with pytest.raises(ValueError, match=">= 2 classes"):
        stability.label_switch(1, 1, False)


def test_join_takes_the_original_labels_up_to_the_switch_and_the_permuted_after():
    def fam(value: float) -> FamilyEvaluation:
        return FamilyEvaluation("f", {"g": np.full((2, 7), value)},
                                {"sgd": BaselineCurves(np.ones(3), np.full((3, 2, 7), value))})

    (joined,) = stability.join([fam(0.0)], [fam(1.0)], switch=4)
    assert joined.genomes["g"][0].tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert joined.baselines["sgd"].curves[2, 1].tolist() == [0, 0, 0, 0, 0, 1, 1]


@pytest.mark.slow  # end to end; CI runs it in its own process (.ci/run)
def test_stability_runs_end_to_end(tmp_path: Path):
    out = tmp_path / "stab"
    table = run_cli("stability", out, "--variants", "oja", "normalize")
    assert [r["name"] for r in table["rows"]] == ["oja", "normalize"]
    assert (table["num_steps"], table["switch"]) == (8, 5)
    assert [c["step"] for c in table["rows"][0]["steps"]] == [2, 5, 6, 8]
    assert all(len(c) == 9 for c in table["groups"][0]["mean_curves"].values())
    assert run_config(out, "normalize")["network"]["synapse_stabiliser"] == ["normalize"]
    check_png(out / "synapses.png")
    assert json.loads((out / "run.json").read_text())["figures"] == ["stability.png",
                                                                    "synapses.png"]
    for name in ("oja", "normalize"):
        amp = table["synapses"][name]
        assert len(amp["rms"]) == len(amp["finite"]) == 8
        assert all(0 <= f <= 1 for f in amp["finite"])
        assert all(r is None or r > 0 for r in amp["rms"])
    rc, _, err = call(["reproduce", "stability", "--scale", "tiny", "--out",
                       str(tmp_path / "bad"), "--switch", "8"])
    assert rc == 2 and "switch=8 must be an inner step" in err


@pytest.mark.slow  # end to end; CI runs it in its own process (.ci/run)
def test_stability_evaluates_families_with_different_numbers_of_classes(tmp_path: Path,
                                                                         monkeypatch):
    """The small scale's held-out toy families mix 2 and 5 classes (blob5); the label
    randomisation is drawn per class count, and every family is reported in its order.
    (Regression: `blur reproduce stability` refused the small scale's families.)"""
    from blur.experiments.config import TaskConfig
    from blur.experiments.reproduce import ablation

    def mixed(scale, seed=0, meta_steps=None, num_runs=None):  # noqa: ANN001, ANN202
        c = ablation.base_config(scale, seed, meta_steps, num_runs)
        return dataclasses.replace(c, tasks=TaskConfig(train=("xor",),
                                                       validate=("blob5", "pie")))

    monkeypatch.setattr(stability, "base_config", mixed)
    stability.run(tmp_path / "stab", scale="tiny", variants=("oja",))
    table = json.loads((tmp_path / "stab" / "table.json").read_text())
    assert table["families"] == ["blob5", "pie"]
    rows = table["groups"][0]["rows"]
    assert [r["family"] for r in rows if r["step"] == 8] == ["blob5", "pie", "all"]
    blob5 = [r for r in rows if r["family"] == "blob5" and r["step"] == 8][0]
    assert 0 <= blob5["oja"]["mean"] <= 1
