"""XLA:CPU fusion flags against the mnist10 meta-step (issue 11).

The profile (``profile_mnist10.py``) shows XLA evaluating shared cotangent expressions in
several loop fusions. XLA flags are read once per process, so this script times the T = 10
meta-step of ``blur bench`` (median of 9 calls after one warm-up) in one process per flag
setting, alternating, and says whether each setting's result is bitwise the default's:

    PYTHONPATH=src .venv/bin/python benchmarks/outer_bounds_tried/ab_xla_flags.py \\
        > benchmarks/outer_bounds_tried/ab_xla_flags.txt
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

SETTINGS = ("", "--xla_cpu_use_fusion_emitters=false", "--xla_cpu_use_multi_output_fusion=true")


def child(out: str) -> None:
    import jax

    from blur import bench

    fn, _ = bench.mnist10_fn(10)
    result = jax.block_until_ready(fn())  # the warm-up call, kept for the bitwise comparison
    times = bench.interleave({"meta-step": fn}, 0, 9)["meta-step"]
    np.savez(out, *[np.asarray(x) for x in jax.tree_util.tree_leaves(result)])
    print(f"{statistics.median(times):.3f}")


def main() -> None:
    if len(sys.argv) > 1:
        child(sys.argv[1])
        return
    tmp = tempfile.mkdtemp()
    print(f"mnist10 meta-step, T=10; load average at the start {os.getloadavg()}")
    results: dict[str, list[float]] = {s: [] for s in SETTINGS}
    errors: dict[str, str] = {}
    for _ in range(2):
        for i, flags in enumerate(SETTINGS):
            if flags in errors:
                continue
            env = {**os.environ, "XLA_FLAGS": flags}
            p = subprocess.run([sys.executable, __file__, f"{tmp}/{i}.npz"], env=env,
                               capture_output=True, text=True)
            if p.returncode != 0:
                errors[flags] = p.stderr.strip().splitlines()[-1]
                continue
            results[flags].append(float(p.stdout.strip().splitlines()[-1]))
    base = np.load(f"{tmp}/0.npz")
    for i, flags in enumerate(SETTINGS):
        name = flags or "default"
        if flags in errors:
            print(f"{name}: not run ({errors[flags]})")
            continue
        other = np.load(f"{tmp}/{i}.npz")
        same = all(np.array_equal(base[k], other[k]) for k in base.files)
        times = ", ".join(f"{t:.3f}" for t in results[flags])
        print(f"{name}: {times} s (median of 9 calls, per process); bitwise the default's: {same}")


if __name__ == "__main__":
    main()
