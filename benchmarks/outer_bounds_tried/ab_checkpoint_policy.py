"""A/B of jax.checkpoint's saving policy inside the unroll (outer_bounds_tried/README.md).

Each variant is traced with ``jax.checkpoint`` patched to pass its policy; then the variants
are timed in turn, round after round, in one process:

    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 PYTHONPATH=src .venv/bin/python \\
        benchmarks/outer_bounds_tried/ab_checkpoint_policy.py
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import jax

from blur import bench

POLICIES: dict[str, Any] = {
    "none (as shipped)": None,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def main(rounds: int = 6) -> None:
    original = jax.checkpoint
    fns: dict[str, Callable[[], Any]] = {}
    for name, policy in POLICIES.items():
        jax.checkpoint = (lambda f, *a, p=policy, **k: original(f, policy=p))  # type: ignore[misc]
        mnist10, _ = bench.mnist10_fn(10)
        c2, peak, _ = bench.meta_grad_fn(bench.CONFIGS["C2"], 10, True)
        for fn in (mnist10, c2):  # trace and compile under the patch
            jax.block_until_ready(fn())
            jax.block_until_ready(fn())
        fns[f"mnist10 meta-step T=10, {name}"] = mnist10
        fns[f"C2 meta-gradient T=10, {name}"] = c2
        print(f"{name}: C2 peak {peak / 2**20 if peak else float('nan'):.1f} MiB", flush=True)
    jax.checkpoint = original
    times = bench.interleave(fns, 0, rounds)  # each was compiled and run above
    for k, v in times.items():
        print(f"{k:<55} {1e3 * statistics.median(v):8.1f} ms")


if __name__ == "__main__":
    main()
