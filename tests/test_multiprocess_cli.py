"""``blur evolve`` / ``blur meta-train`` over two CPU processes joined by jax.distributed.

The same CLI on one process and on two (``BLUR_COORDINATOR`` / ``BLUR_NUM_PROCESSES`` /
``BLUR_PROCESS_ID``, coordinator on 127.0.0.1): the population is split over the two
processes' devices, only process 0 writes the run folder and prints, and the run ends with the
genome, metrics and checkpoint of the one-process run (up to float rounding of the sharded
computation).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
from run_helpers import BLUR, EVOLVE, META_TRAIN

from blur.io.metrics import read_metrics

pytestmark = pytest.mark.slow  # 3 fresh processes per command; CI runs it in the slow step


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    full = {**os.environ, "JAX_PLATFORMS": "cpu", **env}
    full.pop("XLA_FLAGS", None)  # one CPU device per process
    return subprocess.Popen([BLUR, *argv], env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> tuple[str, str]:
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def _numbers(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "wall_time"}


def _close(a: object, b: object, path: str = "") -> None:
    """Equal structure; numbers equal up to float rounding of the sharded computation."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=path)
    else:
        assert a == b, path


@pytest.mark.parametrize("command,args", [("evolve", EVOLVE), ("meta-train", META_TRAIN)])
def test_two_processes_run_the_same_cli_as_one(tmp_path: Path, command: str, args: list[str]):
    one, two = tmp_path / "one", tmp_path / "two"
    base = {"BLUR_COORDINATOR": f"127.0.0.1:{_free_port()}", "BLUR_NUM_PROCESSES": "2"}
    procs = [_start([command, *args, "--run-dir", str(two)], {**base, "BLUR_PROCESS_ID": str(i)})
             for i in range(2)]
    single = _start([command, *args, "--run-dir", str(one)], {})
    (out0, err0), (out1, err1) = (_finish(p) for p in procs)
    out_one, err_one = _finish(single)

    # process 0 prints the report, process 1 prints nothing of it
    assert "genome:" in out0 and "genome:" in out_one
    assert "genome:" not in out1 and "run folder" not in err1
    # one set of files, written once (process 1 appended no metrics of its own)
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    m_one, m_two = read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl")
    assert len(m_two) == len(m_one) and len(m_one) > 0
    _close([_numbers(r) for r in m_one], [_numbers(r) for r in m_two])
    g_one = json.loads((one / "genome.json").read_text())
    g_two = json.loads((two / "genome.json").read_text())
    _close(g_one, g_two)
    # the population really was split: process 0 says so, the one-process run does not
    assert "split over 2 devices in 2 processes" in err0 and "split over" not in err_one
