"""Calibration of the selected rule's logit spread on validation (``RunConfig.calibration``)."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest
from run_helpers import META_TRAIN, run_config

from blur.experiments.config import PAPER_NETWORK, CalibrationSettings, RunConfig, get_preset
from blur.experiments.loop import Validation, calibrate_hebbian_decay, calibrate_output_scale
from blur.experiments.meta_train import meta_train
from blur.experiments.runs import initial_genome
from blur.genome import scale_output_logits
from blur.io.genome_file import load_genome_file
from blur.io.metrics import read_metrics

# the tiny run with a per-layer genome whose logits' spread reaches training (softmax error)
CALIBRATED = META_TRAIN + [
    "--network.per-layer-genome", "--network.neuron-norm", "both",
    "--network.feedback", "softmax_error", "--calibration.num-tasks", "2",
    "--calibration.steps", "2", "4",
]


def test_calibration_settings_name_the_bad_value():
    with pytest.raises(ValueError, match=r"calibration.output_scales=\(1.0, 0.0\)"):
        CalibrationSettings(output_scales=(1.0, 0.0))
    with pytest.raises(ValueError, match="calibration.steps"):
        CalibrationSettings(steps=())
    with pytest.raises(ValueError, match="calibration.num_tasks"):
        CalibrationSettings(num_tasks=0)
    on = CalibrationSettings(output_scales=(1.0, 0.5))
    shared = dataclasses.replace(PAPER_NETWORK, per_layer_genome=False)
    with pytest.raises(ValueError, match="per-layer genome with a normalised output layer"):
        RunConfig(network=shared, calibration=on)
    unnormalised = dataclasses.replace(get_preset("toy2d").network, norm_output=False)
    with pytest.raises(ValueError, match="per-layer genome with a normalised output layer"):
        RunConfig(network=unnormalised, calibration=on)
    RunConfig(network=get_preset("toy2d").network, calibration=on)  # accepted


def test_scale_output_logits_scales_the_output_layer_only():
    config = get_preset("toy2d")
    g = initial_genome(config, config.network.num_layers, jax.random.PRNGKey(0))
    g = dataclasses.replace(g, fwd_norm_scale=g.fwd_norm_scale * 1.5)
    s = scale_output_logits(g, 0.5)
    np.testing.assert_array_equal(s.fwd_norm_scale[:-1], g.fwd_norm_scale[:-1])
    np.testing.assert_allclose(s.fwd_norm_scale[-1], 0.75)
    np.testing.assert_array_equal(s.mu, g.mu)
    shared = jax.tree_util.tree_map(lambda x: x[0], g)  # one layer's values: a shared genome
    with pytest.raises(ValueError, match="needs a per-layer genome"):
        scale_output_logits(shared, 0.5)


# (field, calibration function, the values tried, what the odd value does to the run)
CALIBRATIONS = {
    "output_scales": (calibrate_output_scale, (1.0, 0.05, 1.0),
                      lambda config, g: (config, scale_output_logits(g, 0.05))),
    "hebbian_decays": (calibrate_hebbian_decay, (0.0, 5.0, 0.0),
                       lambda config, g: (dataclasses.replace(config, network=dataclasses.replace(
                           config.network, hebbian_decay=5.0)), g)),
}


@pytest.mark.parametrize("field", sorted(CALIBRATIONS))
def test_calibration_keeps_the_best_validated_value(tmp_path, field):
    calibrate, values, odd = CALIBRATIONS[field]
    base = run_config(CALIBRATED, tmp_path / "unused")
    config = dataclasses.replace(
        base, calibration=dataclasses.replace(base.calibration, **{field: values}))
    genome = initial_genome(config, config.network.num_layers, jax.random.PRNGKey(1))
    key = jax.random.PRNGKey(5)
    chosen, scores = calibrate(config, genome, key)
    assert scores.shape == (3,)
    assert scores[0] == scores[2]  # one value, one score: the same tasks for every variant
    assert scores[0] != scores[1]  # the value reaches training
    assert chosen == values[int(np.argmax(scores))]
    # each score is the validation of that variant alone, after steps 2 and 4
    run, variant = odd(config, genome)
    scored = dataclasses.replace(
        run, validate_num_steps=4, validate_tasks=2,
        objective=dataclasses.replace(config.objective, score_steps=(2, 4)))
    alone = Validation(scored, key)(jax.tree_util.tree_map(lambda x: x[None], variant))
    np.testing.assert_allclose(scores[1], alone[0], rtol=1e-6)


def test_a_calibrated_run_writes_the_scaled_genome_and_resumes_without_scaling_twice(tmp_path):
    config = run_config([*CALIBRATED, "--calibration.output-scales", "0.5"], tmp_path / "run")
    result = meta_train(config, evaluate=False)
    run_dir = tmp_path / "run"
    kept = load_genome_file(run_dir / "genome_uncalibrated.json")
    final = load_genome_file(run_dir / "genome.json")
    assert result.summary["output_scale"] == 0.5
    assert final.metadata["output_scale"] == 0.5
    assert final.metadata["uncalibrated"] == "genome_uncalibrated.json"
    assert final.metadata["step"] == kept.metadata["step"] == result.best_step
    np.testing.assert_allclose(final.genome.fwd_norm_scale[-1],
                               0.5 * kept.genome.fwd_norm_scale[-1], rtol=1e-6)
    np.testing.assert_array_equal(final.genome.fwd_norm_scale[:-1],
                                  kept.genome.fwd_norm_scale[:-1])
    np.testing.assert_allclose(result.genome.fwd_norm_scale, final.genome.fwd_norm_scale)
    record = read_metrics(run_dir / "metrics.jsonl")[-1]
    assert record["kind"] == "calibration" and record["output_scale"] == 0.5
    before = (run_dir / "genome.json").read_bytes()
    again = meta_train(config, resume=True, evaluate=False)  # a finished run, resumed
    assert (run_dir / "genome.json").read_bytes() == before
    np.testing.assert_allclose(again.genome.fwd_norm_scale, final.genome.fwd_norm_scale)
    kinds = [r["kind"] for r in read_metrics(run_dir / "metrics.jsonl")]
    assert kinds.count("calibration") == 1
    assert json.loads((run_dir / "config.json").read_text())["calibration"]["output_scales"] == [
        0.5]


def test_mnist10_calibrates_on_validation_only_at_the_report_steps():
    config = get_preset("mnist10")
    assert config.calibration.output_scales[0] == 1.0  # a tie keeps the rule as trained
    assert config.calibration.hebbian_decays[0] == 0.0  # ... and the paper's constant step
    assert config.calibration.steps == config.evaluation.report_steps
    assert all("split=val" in t for t in config.tasks.validate)


def test_hebbian_decay_settings_name_the_bad_value():
    with pytest.raises(ValueError, match=r"calibration.hebbian_decays=\(0.0, -0.1\)"):
        CalibrationSettings(hebbian_decays=(0.0, -0.1))
    decays = CalibrationSettings(hebbian_decays=(0.0, 0.01))
    assert decays.enabled and not CalibrationSettings().enabled
    # the decay needs no normalised output layer, only families to validate on
    shared = dataclasses.replace(PAPER_NETWORK, per_layer_genome=False)
    RunConfig(network=shared, calibration=decays)  # accepted
    with pytest.raises(ValueError, match="calibration needs tasks.validate families"):
        RunConfig(calibration=decays, tasks=dataclasses.replace(RunConfig().tasks, validate=()))


def test_a_decay_calibrated_run_writes_the_network_and_evaluates_with_it(tmp_path, monkeypatch):
    import blur.experiments.loop as loop

    evaluated = []
    monkeypatch.setattr(loop, "final_evaluation",
                        lambda config, genome, run_dir, network=None: evaluated.append(network)
                        or "table")
    config = run_config([*CALIBRATED, "--calibration.output-scales", "0.5",
                         "--calibration.hebbian-decays", "0.25"], tmp_path / "run")
    result = meta_train(config, evaluate=True)
    run_dir = tmp_path / "run"
    kept = load_genome_file(run_dir / "genome_uncalibrated.json")
    final = load_genome_file(run_dir / "genome.json")
    assert result.summary["hebbian_decay"] == 0.25 and result.summary["output_scale"] == 0.5
    assert final.network.hebbian_decay == 0.25 and final.metadata["hebbian_decay"] == 0.25
    assert kept.network.hebbian_decay == config.network.hebbian_decay == 0.0
    assert evaluated == [final.network]
    record = read_metrics(run_dir / "metrics.jsonl")[-1]
    assert record["kind"] == "calibration" and record["hebbian_decay"] == 0.25
    assert list(record["hebbian_decay_scores"]) == ["0.25"]
    before = (run_dir / "genome.json").read_bytes()
    meta_train(config, resume=True, evaluate=False)  # a finished run, resumed
    assert (run_dir / "genome.json").read_bytes() == before
    kinds = [r["kind"] for r in read_metrics(run_dir / "metrics.jsonl")]
    assert kinds.count("calibration") == 1
