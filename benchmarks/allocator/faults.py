"""Median time and minor page faults per call of the workloads the huge-page setting is for.

Run it twice, once plain and once with the tunable, and compare (ALLOCATOR.md):

    PYTHONPATH=src .venv/bin/python benchmarks/allocator/faults.py
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 PYTHONPATH=src .venv/bin/python \\
        benchmarks/allocator/faults.py

Minor faults come from ``getrusage``; each workload is compiled and warmed up first.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax

from blur import bench


def measure(name: str, fn: Callable[[], Any], calls: int, warmup: int = 2) -> None:
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / calls
    print(f"{name:<28} {1e3 * statistics.median(times):8.1f} ms  {faults:8.0f} faults/call",
          flush=True)


def main() -> None:
    print(f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}")
    c2 = bench.CONFIGS["C2"]
    for remat in (False, True):
        fn, _, _ = bench.meta_grad_fn(c2, 10, remat)
        measure(f"C2 meta-gradient T=10 {'ckpt' if remat else 'plain'}", fn, 15, warmup=3)
    for T in (10, 20):
        fn, _ = bench.mnist10_fn(T)
        measure(f"mnist10 meta-step T={T}", fn, 5)
    generation, _, _ = bench.evolution_fn(80)
    measure("cma-mnist14 generation P=80", generation, 3)
    measure("C2 SGD unit (20 steps)", bench.sgd_unit_fn(c2), 50)


if __name__ == "__main__":
    main()
