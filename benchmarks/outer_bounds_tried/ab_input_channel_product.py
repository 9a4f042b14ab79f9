"""A/B of the first layer's (ν^{c0} x) W^c with one synapse matrix per channel (issue 11).

Two workloads, each variant of ``blur.rules._input_channel_product`` traced into its own
jitted function and timed interleaved (drift cancels in the per-round ratios):
- ``c2``: the bench's C2 meta-gradient, jit(grad) of the query loss after a T = 10 unroll
  (``bench.meta_loss_fn``), with and without ``jax.checkpoint``;
- ``generation``: the cma-mnist14 preset's population scoring (``score_population``), forward
  only, as ``blur evolve`` runs it.

    PYTHONPATH=src .venv/bin/python benchmarks/outer_bounds_tried/ab_input_channel_product.py \
        [ROUNDS]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from blur import bench, rules
from blur.outer.evolution import CMAES, score_population


def scaled_input(nu0: jax.Array, x: jax.Array, w: jax.Array) -> jax.Array:
    """The code before: one batched matmul of the scaled input, differentiated as written."""
    return rules._channel_matmul(nu0[:, None, None] * x[None], w)


@jax.custom_jvp
def custom_jvp(nu0: jax.Array, x: jax.Array, w: jax.Array) -> jax.Array:
    """Scaled input in value, scaled after in the derivative (tried, not kept: same times)."""
    return scaled_input(nu0, x, w)


@custom_jvp.defjvp
def _custom_jvp_rule(primals: Any, tangents: Any) -> Any:
    nu0, x, w = primals
    dnu0, dx, dw = tangents
    xw = jnp.stack([x @ w[c] for c in range(w.shape[0])])
    tangent = (dnu0[:, None, None] * xw + rules._input_channel_product(nu0, x, dw)
               + rules._input_channel_product(nu0, dx, w))
    return nu0[:, None, None] * xw, tangent


VARIANTS: dict[str, Callable[..., jax.Array]] = {
    "scaled_input": scaled_input,
    "scaled_after": rules._input_channel_product,  # kept
    "custom_jvp": custom_jvp,
}


def _time(build: Callable[[], Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    fns = {}
    kept = rules._input_channel_product
    try:
        for name, variant in VARIANTS.items():
            rules._input_channel_product = variant  # read when traced, inside build()
            fn = build()
            jax.block_until_ready(fn())
            fns[name] = fn
    finally:
        rules._input_channel_product = kept
    return bench.interleave(fns, warmup=1, rounds=rounds)


def _report(title: str, samples: dict[str, list[float]]) -> None:
    base = np.asarray(samples["scaled_input"])
    print(title)
    for name, s in samples.items():
        print(f"  {name:13s} median {1e3 * np.median(s):8.1f} ms  per-round ratio to "
              f"scaled_input: {np.median(np.asarray(s) / base):.3f}")


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else 9
    cfg = bench.CONFIGS["C2"]
    for remat in (False, True):
        def c2(remat: bool = remat) -> Callable[[], Any]:
            loss, genome = bench.meta_loss_fn(cfg, 10, remat)
            return partial(jax.jit(jax.grad(loss)), genome)
        _report(f"C2 meta-gradient, T = 10, checkpoint={remat}", _time(c2, rounds))
    e = bench.evolution_setup()
    ev = e.config.evolution
    X = jnp.asarray(CMAES(e.x0, ev.cma).ask(), jnp.float32)

    def generation() -> Callable[[], Any]:
        f = jax.jit(partial(score_population.__wrapped__, unravel=e.unravel, spec=e.spec,
                            family=e.family, cfg=e.config.objective,
                            fresh_init=ev.cma.fresh_init, chunk_size=ev.cma.chunk_size))
        return partial(f, X, e.key)
    _report("cma-mnist14 population scoring (80 candidates)",
            _time(generation, max(3, rounds // 3)))


if __name__ == "__main__":
    main(sys.argv[1:])
