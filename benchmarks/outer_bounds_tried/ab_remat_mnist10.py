"""A/B: the mnist10 meta-step with and without ``jax.checkpoint`` around each inner step.

The presets checkpoint every inner step (``ObjectiveConfig.remat``, on by default), which makes
the meta-gradient's memory O(1) in T at the price of a second forward pass. At the mnist10
preset's scale (4 runs x 3 tasks, 100-256-128-10, K=4, B=128, T = 10-20) the residuals of a
plain unroll looked small enough that the recomputation might cost more than it saves; the
memory analysis below shows they are not (1.1 GB at T = 10; ab_remat_mnist10.txt). Variants
are compiled first, then timed in turn, round after round, in one process (so drift cancels);
the compiled executables' temporary memory is printed too. A third variant keeps the
checkpoint but passes ``prevent_cse=False`` (which JAX's docs call safe inside ``scan``):

    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 PYTHONPATH=src .venv/bin/python \\
        benchmarks/outer_bounds_tried/ab_remat_mnist10.py
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import jax

from blur import bench
from blur.outer import gradient


def variant(T: int, remat: bool, cse: bool = True) -> tuple[Callable[[], Any], float | None]:
    """The meta-step at T, traced (and run once) with ``jax.checkpoint(prevent_cse=cse)``."""
    original = jax.checkpoint
    jax.checkpoint = partial(original, prevent_cse=cse)  # type: ignore[assignment]
    try:
        fn, temp = _variant(T, remat)
        jax.block_until_ready(fn())
        return fn, temp
    finally:
        jax.checkpoint = original


def _variant(T: int, remat: bool) -> tuple[Callable[[], Any], float | None]:
    m = bench.mnist10_setup(T)
    cfg = dataclasses.replace(m.cfg, remat=remat)
    kwargs = dict(spec=m.spec, family=m.family, cfg=cfg, optimizer=m.optimizer)
    try:
        mem = gradient.meta_step.lower(m.state, m.key, **kwargs).compile().memory_analysis()
        temp = mem.temp_size_in_bytes / 2**20 if mem is not None else None
    except Exception:  # noqa: BLE001 - not every backend reports memory
        temp = None
    step = partial(gradient.meta_step, **kwargs)
    return (lambda: step(m.state, m.key)), temp


VARIANTS = (
    (True, True, "checkpointed (as shipped)"),
    (True, False, "checkpointed, prevent_cse=False"),
    (False, True, "plain"),
)


def main(steps: tuple[int, ...] = (10,), rounds: int = 8) -> None:
    fns: dict[str, Callable[[], Any]] = {}
    for T in steps:
        for remat, cse, label in VARIANTS:
            name = f"mnist10 meta-step T={T}, {label}"
            fn, temp = variant(T, remat, cse)
            fns[name] = fn
            print(f"{name}: XLA temporaries {temp if temp is None else f'{temp:.1f} MiB'}",
                  flush=True)
    times = bench.interleave(fns, 0, rounds)  # each was run once above
    for k, v in times.items():
        print(f"{k:<55} {1e3 * statistics.median(v):8.1f} ms  "
              f"[{1e3 * min(v):.1f}-{1e3 * max(v):.1f}]")


if __name__ == "__main__":
    main(rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 8)
