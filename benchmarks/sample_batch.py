"""Sampling a batch inside ``jit`` costs no Python per step.

For a few task families this times:

* ``single``: one jitted call that samples one batch (``sample(key, 1, B)``), per call;
* ``py loop``: T such calls from a Python loop, per step (what a per-step Python loader pays);
* ``scan``: one jitted ``lax.scan`` that samples T batches (one per step, keys from
  ``fold_in``), per step;
* ``episode``: one jitted ``sample(key, T, B)`` for the whole episode, per step;

and counts Python traces with a counter incremented inside each traced function: each
function is traced once, however many steps or calls follow, so no Python runs per step.

Run: ``.venv/bin/python benchmarks/sample_batch.py [--steps T] [--batch B] [--repeats R]``.
MNIST / Omniglot rows need the data (``scripts/fetch_data.sh``); otherwise a synthetic image
family of the same size stands in.
"""

from __future__ import annotations

import argparse
import collections
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from blur.bench import median_ms
from blur.data import DataNotFoundError
from blur.tasks import ImageClassification, NWayEpisodes, get_family

TRACES: collections.Counter[str] = collections.Counter()


def make_functions(name: str, steps: int, batch: int) -> dict[str, Callable[..., Any]]:
    """Jitted samplers; each bumps TRACES[(name, kind)] when (and only when) it is traced."""

    def single(family: Any, key: jax.Array) -> jax.Array:
        TRACES[f"{name}/single"] += 1
        return family.sample(key, 1, batch).support.x

    def scan(family: Any, key: jax.Array) -> jax.Array:
        TRACES[f"{name}/scan"] += 1

        def step(carry: jax.Array, i: jax.Array) -> tuple[jax.Array, None]:
            x = family.sample(jax.random.fold_in(key, i), 1, batch).support.x
            return carry + x.mean(), None  # consume the batch so it is not optimised away

        total, _ = jax.lax.scan(step, jnp.float32(0), jnp.arange(steps))
        return total

    def episode(family: Any, key: jax.Array) -> jax.Array:
        TRACES[f"{name}/episode"] += 1
        return family.sample(key, steps, batch).support.x

    return {"single": jax.jit(single), "scan": jax.jit(scan), "episode": jax.jit(episode)}


def time_call(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn()`` in seconds (after one warm-up call)."""
    return median_ms(fn, warmup=1, repeats=repeats) / 1e3


def families() -> list[tuple[str, Any]]:
    """The families to time (real data when imported, else synthetic stand-ins)."""
    rng = np.random.default_rng(0)
    out: list[tuple[str, Any]] = [
        ("xor", get_family("xor")),
        ("toy2d_val", get_family("toy2d_val")),
    ]
    try:
        out.append(("mnist 10x10", get_family("mnist", resolution=10)))
    except DataNotFoundError:
        images = rng.integers(0, 256, (50000, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, 50000)
        out.append(
            ("synthetic 10x10", ImageClassification.from_arrays(images, labels, resolution=10))
        )
    try:
        out.append(
            (
                "omniglot 10-way",
                get_family("omniglot", subsets=("background_small1", "background_small2")),
            )
        )
    except DataNotFoundError:
        images = rng.integers(0, 256, (4840, 28, 28), dtype=np.uint8)
        out.append(
            ("synthetic 10-way", NWayEpisodes.from_arrays(images, np.arange(4840) // 20, 10))
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="T, batches per episode")
    parser.add_argument("--batch", type=int, default=128, help="B, examples per batch")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per measurement")
    args = parser.parse_args()
    T, B, R = args.steps, args.batch, args.repeats
    print(f"device: {jax.devices()[0]}  T={T} steps  B={B}  median of {R} calls\n")
    header = (
        f"{'family':<18} {'n_in':>5} {'single/call':>12} {'py loop/step':>13} "
        f"{'scan/step':>10} {'episode/step':>13} {'traces (single, scan, episode)':>31}"
    )
    print(header)
    print("-" * len(header))
    key = jax.random.key(0)
    for name, fam in families():
        fns = make_functions(name, T, B)
        single = time_call(lambda f=fns["single"], fam=fam: f(fam, key), R)

        def py_loop(f: Callable[..., Any] = fns["single"], fam: Any = fam) -> Any:
            out = None
            for i in range(T):
                out = f(fam, jax.random.fold_in(key, i))
            return out

        loop = time_call(py_loop, max(R // 4, 3)) / T
        scan = time_call(lambda f=fns["scan"], fam=fam: f(fam, key), R) / T
        episode = time_call(lambda f=fns["episode"], fam=fam: f(fam, key), R) / T
        traces = tuple(TRACES[f"{name}/{k}"] for k in ("single", "scan", "episode"))
        print(
            f"{name:<18} {fam.num_inputs:>5} {single * 1e6:>10.1f}us {loop * 1e6:>11.1f}us "
            f"{scan * 1e6:>8.1f}us {episode * 1e6:>11.1f}us {str(traces):>31}"
        )
    print(
        "\nEach function was traced exactly once although it ran many times: sampling is a "
        "compiled\nprogram with no Python per step. 'py loop' pays Python dispatch per batch; "
        "'scan' and\n'episode' sample every batch inside one compiled call."
    )
    assert all(v == 1 for v in TRACES.values()), f"unexpected retraces: {dict(TRACES)}"


if __name__ == "__main__":
    main()
