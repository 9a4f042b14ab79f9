"""The population axis sharded over 4 (virtual CPU) devices gives the same run as one device.

Each side runs in a fresh interpreter, since XLA's device count is fixed at start-up:
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` against the default single device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from run_helpers import EVOLVE, EXPLOIT, META_TRAIN

from blur.io.genome_file import load_genome_file
from blur.io.metrics import read_metrics

SCRIPT = """
import sys, jax
from run_helpers import run_config
from blur.experiments.loop import run
import dataclasses
args, method, out = sys.argv[1:-2], sys.argv[-2], sys.argv[-1]
config = dataclasses.replace(run_config(args, out), method=method)
result = run(config, evaluate=False)
print(len(jax.local_devices()), result.summary)
"""


def _run(tmp: Path, name: str, args: list[str], method: str, devices: int) -> Path:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    out = tmp / name
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args, method, str(out)],
        capture_output=True, text=True, timeout=600, env=env,
        cwd=Path(__file__).parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[0] == str(devices)
    return out


def _same(a: Path, b: Path) -> None:
    ga, gb = load_genome_file(a / "genome.json"), load_genome_file(b / "genome.json")
    for x, y in zip(jax.tree_util.tree_leaves(ga.genome), jax.tree_util.tree_leaves(gb.genome),
                    strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)
    va = [r["meta_val_accuracy"] for r in read_metrics(a / "metrics.jsonl")
          if r["kind"] == "validation"]
    vb = [r["meta_val_accuracy"] for r in read_metrics(b / "metrics.jsonl")
          if r["kind"] == "validation"]
    np.testing.assert_allclose(va, vb, atol=1e-6)
    assert ga.metadata["step"] == gb.metadata["step"] and ga.metadata["run"] == gb.metadata["run"]


# The gradient cases take 44-47 s each, so they are marked slow and CI runs them in its slow
# step (.ci/run); the CMA-ES case (31 s) keeps one device-sharding check in the default suite.
@pytest.mark.parametrize(("args", "method"), [
    pytest.param(META_TRAIN + ["--gradient.num-runs", "4", "--gradient.meta-steps", "6"],
                 "gradient", marks=pytest.mark.slow, id="gradient"),
    pytest.param(EVOLVE + ["--evolution.cma.popsize", "8", "--evolution.generations", "4"],
                 "cma", id="cma"),
    # the exploit step copies runs across devices
    pytest.param(META_TRAIN + EXPLOIT + ["--gradient.num-runs", "4", "--gradient.meta-steps",
                                         "6", "--validate-every", "3"],
                 "gradient", marks=pytest.mark.slow, id="gradient-exploit"),
])
def test_sharded_run_equals_single_device_run(tmp_path, args, method):
    one = _run(tmp_path, "one", args, method, 1)
    four = _run(tmp_path, "four", args, method, 4)
    _same(one, four)
    # the last --gradient.exploit-below wins (run_helpers' COMMON switches it off first)
    gaps = [args[i + 1] for i, a in enumerate(args) if a == "--gradient.exploit-below"]
    if gaps and gaps[-1] != "None":
        moved = [r.get("restarted_from") for r in read_metrics(four / "metrics.jsonl")
                 if r["kind"] == "validation"]
        assert any(moved), moved
        assert moved == [r.get("restarted_from") for r in read_metrics(one / "metrics.jsonl")
                         if r["kind"] == "validation"]
    config = json.loads((four / "config.json").read_text())
    assert config["devices"] is None  # all local devices: 4 here
