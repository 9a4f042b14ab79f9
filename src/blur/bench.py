"""Time one jitted BLUR inner step against one jitted SGD step on the same MLP shape.

BLUR step = ``blur.step``: forward, feedback, backward, Hebbian update of every synapse.
SGD step  = ``jax.grad`` of the batch-mean softmax cross-entropy of an ordinary MLP (the ReLU
MLP of :mod:`blur.baselines`, linear output, weights + biases) and a parameter update.

Both are jitted, timed in the same process on the same input batch, with nothing donated;
the reported time is the median over ``--repeats`` calls (each ``block_until_ready``) after
``--warmup`` calls. A BLUR step does about K channel matmuls per SGD matmul, so the figure of
merit is (BLUR / SGD) / K; the aim is <= 1.2 on C2.

Usage:
  .venv/bin/blur bench [--repeats 50] [--json out.json] [--configs C1 C2]
  .venv/bin/python benchmarks/inner_step.py [same options]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

import blur
from blur.baselines import init_mlp, mlp_loss


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    sizes: tuple[int, ...]
    num_states: int
    batch: int


CONFIGS = {
    "C1": Config("C1", (2, 20, 2), 2, 512),
    "C2": Config("C2", (784, 256, 10), 4, 128),
    "C3": Config("C3", (196, 512, 10), 2, 128),
}


def blur_spec(cfg: Config, symmetric: bool) -> blur.NetworkSpec:
    """A realistic BLUR network: per-state normalisation on both passes, multi-state synapses,
    asymmetric unless ``symmetric`` (then the backward weights are tied, one Hebbian update)."""
    return blur.NetworkSpec(
        cfg.sizes, cfg.num_states, neuron_norm="both", symmetric_synapses=symmetric
    )


def median_ms(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls, each waited for
    with ``block_until_ready``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def time_blur(cfg: Config, symmetric: bool, batch: blur.Batch, warmup: int, repeats: int) -> float:
    spec = blur_spec(cfg, symmetric)
    genome = blur.random_genome(jax.random.key(1), cfg.num_states)
    state = blur.init_state(jax.random.key(2), genome, spec, cfg.batch)
    step = jax.jit(blur.step, static_argnums=1)
    return median_ms(lambda: step(genome, spec, state, batch), warmup, repeats)


@jax.jit
def sgd_step(
    params: list[tuple[jax.Array, jax.Array]], x: jax.Array, y: jax.Array
) -> list[tuple[jax.Array, jax.Array]]:
    grads = jax.grad(mlp_loss)(params, x, y)
    return jax.tree_util.tree_map(lambda p, g: p - 0.1 * g, params, grads)


def time_sgd(cfg: Config, batch: blur.Batch, warmup: int, repeats: int) -> float:
    params = init_mlp(jax.random.key(3), cfg.sizes)
    return median_ms(lambda: sgd_step(params, batch.x, batch.y), warmup, repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="blur bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed calls per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls after compiling")
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--no-symmetric", action="store_true", help="skip the symmetric-synapse BLUR variant"
    )
    parser.add_argument("--json", type=str, default=None, help="write the results here")
    args = parser.parse_args(argv)

    device = jax.devices()[0]
    print(
        f"jax {jax.__version__} on {device.platform} ({device.device_kind}), "
        f"median of {args.repeats} after {args.warmup} warm-up calls"
    )
    variants = [False] if args.no_symmetric else [False, True]
    rows = []
    header = f"{'config':<26}{'synapses':<11}{'BLUR ms':>9}{'SGD ms':>9}{'BLUR/SGD':>10}{'/K':>7}"
    print(header)
    print("-" * len(header))
    for name in args.configs:
        cfg = CONFIGS[name]
        kx, ky = jax.random.split(jax.random.key(0))
        batch = blur.Batch(
            x=jax.random.normal(kx, (cfg.batch, cfg.sizes[0]), jnp.float32),
            y=jax.random.randint(ky, (cfg.batch,), 0, cfg.sizes[-1]),
        )
        sgd_ms = time_sgd(cfg, batch, args.warmup, args.repeats)
        for symmetric in variants:
            blur_ms = time_blur(cfg, symmetric, batch, args.warmup, args.repeats)
            ratio = blur_ms / sgd_ms
            label = f"{name} {'-'.join(map(str, cfg.sizes))} K={cfg.num_states} B={cfg.batch}"
            kind = "symmetric" if symmetric else "asymmetric"
            print(
                f"{label:<26}{kind:<11}{blur_ms:9.3f}{sgd_ms:9.3f}{ratio:10.2f}"
                f"{ratio / cfg.num_states:7.2f}"
            )
            rows.append(
                {
                    "config": name,
                    "sizes": list(cfg.sizes),
                    "K": cfg.num_states,
                    "B": cfg.batch,
                    "synapses": kind,
                    "blur_ms": blur_ms,
                    "sgd_ms": sgd_ms,
                    "ratio": ratio,
                    "ratio_per_K": ratio / cfg.num_states,
                }
            )
    if args.json:
        meta = {
            "jax": jax.__version__,
            "platform": device.platform,
            "device_kind": device.device_kind,
            "repeats": args.repeats,
            "warmup": args.warmup,
        }
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2)
        print(f"wrote {args.json}")
    return 0
