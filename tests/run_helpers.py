"""Shared setup of the run-loop tests (test_resume, test_divergence, test_cli, test_sweep): the
tiny CLI configuration, building its RunConfig, and exact comparison of two run folders.

One tiny configuration for all of them, so the jitted functions compile once per session.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import tyro

from blur.experiments.config import (
    PAPER_NETWORK,
    RunConfig,
    TaskConfig,
    build_train_family,
    get_preset,
)
from blur.io.checkpoint import load_meta
from blur.io.metrics import read_metrics
from blur.outer import gradient
from blur.outer.objective import ObjectiveConfig

# meta_step / score_genomes on a tiny network (test_gradient_meta, test_divergence)
FAMILY = build_train_family(TaskConfig(train=("xor", "and")))
SPEC = dataclasses.replace(PAPER_NETWORK, hidden=(8,)).spec_for(FAMILY)
CFG = ObjectiveConfig(num_steps=3, batch_size=32, num_tasks=2)
LR = 0.01
OPT = gradient.make_optimizer(LR, 10.0)

BLUR = str(Path(sys.executable).with_name("blur"))

# The tiny run pins its network and initial genome (the toy2d preset's earlier setting: shared
# genome, label feedback, Oja) so that tuning the preset does not change what these tests run.
COMMON = [
    "--preset", "toy2d", "--seed", "3", "--network.neuron-norm", "none",
    "--network.no-per-layer-genome", "--network.feedback", "label",
    "--network.backward-activation", "tanh", "--network.synapse-stabiliser", "oja",
    "--init-eta-tilde", "--init-scale", "None", "--init-fwd-norm-shift", "--objective.score-steps",
    "--objective.num-tasks", "2", "--objective.batch-size", "32", "--network.hidden", "8",
    "--tasks.train", "xor", "and", "--tasks.validate", "pie", "--validate-tasks", "2",
    "--evaluation.num-tasks", "2", "--evaluation.report-steps", "2",
    "--evaluation.batch-size", "32", "--evaluation.query-size", "64", "--log-every", "1",
    "--validate-num-steps", "None", "--gradient.exploit-below", "None",
]
META_TRAIN = COMMON + [
    "--gradient.meta-steps", "12", "--checkpoint-every", "3", "--validate-every", "6",
    "--gradient.num-runs", "2", "--gradient.learning-rate", "0.01",
    "--gradient.curriculum.start", "3", "--gradient.curriculum.maximum", "3",
]
# The exploit step switched on (gap 0), with a rate, normalisation and validation set under
# which the tiny runs' validation scores part, so that some run restarts from another.
EXPLOIT = [
    "--gradient.exploit-below", "0", "--gradient.learning-rate", "0.3", "--validate-tasks", "4",
    "--network.neuron-norm", "both", "--tasks.validate", "xor",
]
EVOLVE = COMMON + [
    "--evolution.generations", "8", "--evolution.cma.popsize", "6",
    "--objective.num-steps", "3", "--checkpoint-every", "2", "--validate-every", "4",
]


def run_config(args: list[str], run_dir: Path) -> RunConfig:
    """The RunConfig the CLI builds from ``args`` (same parser: tyro over the preset)."""
    rest = [a for a in args if a not in ("--preset", "toy2d")]
    return tyro.cli(RunConfig, default=get_preset("toy2d"), args=[*rest, "--run-dir",
                                                                     str(run_dir)])


def _strip(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "wall_time"}


def assert_same_run(a: Path, b: Path) -> None:
    """Exact equality of everything a run leaves behind (wall-clock fields excepted)."""
    assert (a / "genome.json").read_bytes() == (b / "genome.json").read_bytes()
    with np.load(a / "checkpoint.npz") as da, np.load(b / "checkpoint.npz") as db:
        assert sorted(da.files) == sorted(db.files)
        assert sum(n.startswith("leaf_") for n in da.files) > 0
        for name in da.files:
            if name == "meta_json":  # the embedded metadata (holds the wall time)
                continue
            assert da[name].dtype == db[name].dtype, name
            np.testing.assert_array_equal(da[name], db[name], err_msg=name)
    assert _strip(load_meta(a / "checkpoint.npz")) == _strip(load_meta(b / "checkpoint.npz"))
    side_a = json.loads((a / "checkpoint.npz.json").read_text())
    side_b = json.loads((b / "checkpoint.npz.json").read_text())
    assert _strip(side_a) == _strip(side_b)
    ma = [_strip(r) for r in read_metrics(a / "metrics.jsonl")]
    mb = [_strip(r) for r in read_metrics(b / "metrics.jsonl")]
    assert ma == mb
    assert json.loads((a / "config.json").read_text())["seed"] == json.loads(
        (b / "config.json").read_text())["seed"]
