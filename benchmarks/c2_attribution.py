"""What bounds the C2 inner step (issue 11's ratio/K <= 1.2 target): the step taken apart.

C2 = 784-256-10, K=4, B=128, asymmetric synapses, T=20 steps in one jitted ``lax.scan``. Every
variant is timed interleaved with the same SGD scan (``blur.bench``), and reported as its time
per step over SGD's per step, divided by K:

* ``shipped``: ``blur.unroll`` as the bench runs it (normalisation on both passes, metrics);
* ``no-norm``: the same with ``neuron_norm="none"``;
* ``no-metrics``: forward, feedback, backward and Hebbian update only (the four ``cf_*``
  functions of ``blur.rules``, no loss / accuracy / finiteness / synapse RMS per step);
* ``no-metrics-no-norm``: both removed;
* ``matmuls``: only the step's matrix products, same shapes (per channel: the forward product
  of each layer, the Hebbian outer products, the backward product of the top layer) and one
  add per synapse: the floor of a BLUR step on this machine.

    PYTHONPATH=src .venv/bin/python benchmarks/c2_attribution.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

import blur
from blur import bench
from blur.network import to_channel_first
from blur.rules import cf_backward, cf_feedback, cf_forward, cf_hebbian


def _spec(norm: str) -> blur.NetworkSpec:
    cfg = bench.CONFIGS["C2"]
    return blur.NetworkSpec(cfg.sizes, cfg.num_states, neuron_norm=norm, symmetric_synapses=False)


def _setup(norm: str, T: int) -> tuple[Any, ...]:
    cfg = bench.CONFIGS["C2"]
    spec = _spec(norm)
    genome = blur.random_genome(jax.random.key(1), cfg.num_states)
    state = blur.init_state(jax.random.key(2), genome, spec, cfg.batch)
    batches = bench.random_batch(jax.random.key(0), (T, cfg.batch), cfg.sizes[0], cfg.sizes[-1])
    return spec, genome, state, batches


def shipped(norm: str, T: int) -> Callable[[], Any]:
    spec, genome, state, batches = _setup(norm, T)
    run = jax.jit(lambda g, s, b: blur.unroll(g, spec, s, b))
    return lambda: run(genome, state, batches)


def no_metrics(norm: str, T: int) -> Callable[[], Any]:
    spec, genome, state, batches = _setup(norm, T)

    @jax.jit
    def run(g: blur.Genome, s: Any, b: blur.Batch) -> Any:
        def body(cs: Any, batch: blur.Batch) -> tuple[Any, None]:
            neurons = cf_forward(g, spec, cs, batch.x)
            neurons = cf_feedback(spec, neurons, batch.y)
            neurons = cf_backward(g, spec, cs, neurons)
            return cf_hebbian(g, spec, cs, neurons), None

        return jax.lax.scan(body, to_channel_first(spec, s), b)[0]

    return lambda: run(genome, state, batches)


def matmuls(T: int) -> Callable[[], Any]:
    """The step's products only: [K,B,784]@[K,784,256], [K,B,256]@[K,256,10], the backward
    [K,B,10]@[K,10,256], and the Hebbian [K,784,B]@[K,B,256], [K,256,B]@[K,B,10] (and the
    backward synapses' [K,10,B]@[K,B,256]), each synapse updated by one add."""
    cfg = bench.CONFIGS["C2"]
    K, B = cfg.num_states, cfg.batch
    k = jax.random.split(jax.random.key(0), 4)
    w0 = jax.random.normal(k[0], (K, 784, 256)) * 0.01
    w1 = jax.random.normal(k[1], (K, 256, 10)) * 0.01
    wb = jax.random.normal(k[2], (K, 10, 256)) * 0.01
    xs = jax.random.normal(k[3], (T, K, B, 784))

    @jax.jit
    def run(w0: jax.Array, w1: jax.Array, wb: jax.Array, xs: jax.Array) -> Any:
        def body(c: Any, x: jax.Array) -> tuple[Any, None]:
            w0, w1, wb = c
            h = jnp.tanh(jnp.einsum("kbi,kij->kbj", x, w0))
            o = jnp.tanh(jnp.einsum("kbi,kij->kbj", h, w1))
            hb = jnp.tanh(jnp.einsum("kbi,kij->kbj", o, wb))
            w0 = w0 + 1e-3 * jnp.einsum("kbi,kbj->kij", x, hb)
            w1 = w1 + 1e-3 * jnp.einsum("kbi,kbj->kij", hb, o)
            wb = wb + 1e-3 * jnp.einsum("kbi,kbj->kij", o, hb)
            return (w0, w1, wb), None

        return jax.lax.scan(body, (w0, w1, wb), xs)[0]

    return lambda: run(w0, w1, wb, xs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", type=str, default=None)
    parser.add_argument("--markdown", type=str, default=None, help="write the table here")
    args = parser.parse_args(argv)
    cfg, T = bench.CONFIGS["C2"], args.steps
    fns = {
        "sgd": bench.sgd_scan_fn(cfg, T),
        "shipped": shipped("both", T),
        "no-norm": shipped("none", T),
        "no-metrics": no_metrics("both", T),
        "no-metrics-no-norm": no_metrics("none", T),
        "matmuls": matmuls(T),
    }
    samples = bench.interleave(fns, args.warmup, args.rounds)
    K = cfg.num_states
    rows = {}
    print(f"C2 {cfg.label}, T={T}, {args.rounds} interleaved rounds; load {bench._load()}")
    print(f"  sgd: {1e3 * statistics.median(samples['sgd']) / T:.3f} ms/step")
    for name in fns:
        if name == "sgd":
            continue
        r = bench.ratio_stats(samples[name], samples["sgd"], 1.0 / K)
        rows[name] = {"ms_per_step": 1e3 * statistics.median(samples[name]) / T,
                      "ratio_per_K": {k: r[k] for k in ("median", "q25", "q75")}}
        print(f"  {name:<20} {rows[name]['ms_per_step']:7.3f} ms/step  ratio/K "
              f"{r['median']:.2f} [{r['q25']:.2f}-{r['q75']:.2f}]")
    load = bench._load()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"T": T, "rounds": args.rounds, "load_end": load,
                       "machine": bench.machine(), "rows": rows}, f, indent=1)
    if args.markdown:
        info = bench.machine()
        lines = [
            "# The C2 inner step taken apart (`benchmarks/c2_attribution.py`)",
            "",
            f"Written by `PYTHONPATH=src python benchmarks/c2_attribution.py --rounds "
            f"{args.rounds} --markdown ...`: jax {info['jax']}, {info['platform']}, "
            f"{info['cpu_count']} CPU cores, load average at the end {load}. C2 = "
            f"{cfg.label}, asymmetric, T = {T} steps per jitted scan; SGD: "
            f"{1e3 * statistics.median(samples['sgd']) / T:.3f} ms/step. Ratio = median of "
            "the per-round ratios to the SGD scan, divided by K, [25th-75th percentile].",
            "",
            "| variant | ms/step | ratio/K |",
            "|---|---|---|",
        ]
        for name, row in rows.items():
            r = row["ratio_per_K"]
            lines.append(f"| {name} | {row['ms_per_step']:.3f} | {r['median']:.2f} "
                         f"[{r['q25']:.2f}-{r['q75']:.2f}] |")
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
