"""The console script runs its compute commands with glibc's huge-page tunable set
(blur._allocator): XLA's per-call temporaries otherwise cost a page fault per 4 KiB on every
call (11-15 % of a plain meta-gradient's time on a 2-core machine, 3-4 % of a checkpointed
one; benchmarks/allocator/ALLOCATOR.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from run_helpers import BLUR

from blur._allocator import SETTING, allocator_info, thp_mode, tuned_environ


def test_tuned_environ_adds_the_tunable_and_keeps_the_others():
    assert tuned_environ({"A": "1"}, "linux") == {"A": "1", "GLIBC_TUNABLES": SETTING}
    env = tuned_environ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "linux")
    assert env == {"GLIBC_TUNABLES": f"glibc.malloc.arena_max=2:{SETTING}"}


@pytest.mark.parametrize(("environ", "platform"), [
    ({"GLIBC_TUNABLES": SETTING}, "linux"),  # already set: no second exec
    ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "linux"),  # the user's own value stands
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0"}, "linux"),
    ({"BLUR_HUGEPAGES": "0"}, "linux"),  # opted out
    ({}, "darwin"),  # no glibc
])
def test_tuned_environ_leaves_the_process_alone(environ, platform):
    assert tuned_environ(environ, platform) is None


def test_thp_mode_reads_the_bracketed_word(tmp_path):
    f = tmp_path / "enabled"
    f.write_text("always [madvise] never\n")
    assert thp_mode(f) == "madvise"
    assert thp_mode(tmp_path / "absent") is None
    assert allocator_info({"GLIBC_TUNABLES": SETTING})["glibc_tunables"] == SETTING


def _bench_allocator(tmp_path: Path, **extra: str) -> dict:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "BLUR_HUGEPAGES")}
    done = subprocess.run(
        [BLUR, "bench", "--sections", "inner", "--configs", "C1", "--rounds", "2",
         "--inner-steps", "1", "--warmup", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env={**env, "JAX_PLATFORMS": "cpu", **extra},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())["machine"]["allocator"]


@pytest.mark.slow  # 25 s; CI runs it in its slow step (.ci/run)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables are Linux's")
def test_console_script_runs_compute_commands_with_the_tunable(tmp_path):
    assert _bench_allocator(tmp_path)["glibc_tunables"] == SETTING
    assert _bench_allocator(tmp_path, BLUR_HUGEPAGES="0")["glibc_tunables"] is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc tunables are Linux's")
@pytest.mark.parametrize(("args", "execs"), [
    ([], True),  # bare `blur` is the main job, `blur meta-train`
    (["evolve", "--help"], True),
    (["data", "list"], False),  # no computation: starts as it is
    (["--help"], False),
])
def test_console_entry_reexecs_only_the_compute_commands(monkeypatch, capsys, args, execs):
    from blur.cli import main as cli_main

    calls = []

    def fake_execve(path, argv, env):
        calls.append((argv, env["GLIBC_TUNABLES"]))
        raise SystemExit(0)  # the real one never returns

    monkeypatch.setattr(os, "execve", fake_execve)
    # the commands themselves do nothing here (len of their arguments), so a broken re-exec
    # fails fast instead of running the main job
    monkeypatch.setattr(cli_main, "COMMANDS",
                        {k: ("builtins", "len", d) for k, (_, _, d) in cli_main.COMMANDS.items()})
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("BLUR_HUGEPAGES", raising=False)
    monkeypatch.setattr(sys, "argv", ["blur", *args])
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, BLUR, *args])
    try:
        cli_main.main()
    except SystemExit:
        pass
    assert calls == ([([sys.executable, BLUR, *args], SETTING)] if execs else [])
