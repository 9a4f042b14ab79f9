"""A/B of the first layer's ν^{c0} (x W) product in the mnist10 meta-step (issue 11).

Each variant of ``blur.rules._input_product`` is traced into its own jitted
``outer.gradient.meta_step`` of the mnist10 preset (as ``blur bench`` builds it), checked to
give the same genomes after the step, and timed interleaved (variant A, B, ..., A, B, ...) so
that a shared machine's drift cancels in the per-round ratios.

    PYTHONPATH=src .venv/bin/python benchmarks/outer_bounds_tried/ab_input_product.py \
        [VARIANTS [T [ROUNDS]]]

VARIANTS: comma-separated names from ``VARIANTS`` (the first is the reference); default all.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from blur import bench, rules
from blur.outer import gradient


def broadcast(nu0: jax.Array, xw: jax.Array) -> jax.Array:
    """The code before: a broadcast multiply."""
    return nu0[:, None, None] * xw[None]


def stacked(nu0: jax.Array, xw: jax.Array) -> jax.Array:
    """K scaled copies, stacked."""
    return jnp.stack([nu0[c] * xw for c in range(nu0.shape[0])])


def outer_dot(nu0: jax.Array, xw: jax.Array) -> jax.Array:
    """An outer product as a dot_general with a contraction of length 1 (kept)."""
    out = jax.lax.dot_general(nu0[:, None], xw.reshape(1, -1), (((1,), (0,)), ((), ())))
    return out.reshape(nu0.shape[0], *xw.shape)


def mixed(nu0: jax.Array, xw: jax.Array) -> jax.Array:
    """Through the genome's state mixing ``rules._mix`` with D = 1 (einsum JVP)."""
    return rules._mix(nu0[:, None], xw[None])


VARIANTS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "broadcast": broadcast, "stacked": stacked, "outer_dot": outer_dot, "mixed": mixed,
}


def main(argv: list[str]) -> None:
    names = argv[0].split(",") if argv else list(VARIANTS)
    T = int(argv[1]) if len(argv) > 1 else 10
    rounds = int(argv[2]) if len(argv) > 2 else 5
    m = bench.mnist10_setup(T)
    raw = gradient.meta_step.__wrapped__
    fns, outs = {}, {}
    kept = rules._input_product
    try:
        for name in names:
            rules._input_product = VARIANTS[name]  # read when the step is traced, just below
            f = jax.jit(partial(raw, spec=m.spec, family=m.family, cfg=m.cfg,
                                optimizer=m.optimizer))
            outs[name] = jax.block_until_ready(f(m.state, m.key))
            fns[name] = partial(f, m.state, m.key)
    finally:
        rules._input_product = kept
    ref = jax.tree_util.tree_leaves(outs[names[0]][0].genomes)
    for name in names[1:]:
        got = jax.tree_util.tree_leaves(outs[name][0].genomes)
        diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(ref, got, strict=True))
        print(f"{name}: largest genome difference to {names[0]} after the step: {diff:.3g}")
    samples = bench.interleave(fns, warmup=1, rounds=rounds)
    base = np.asarray(samples[names[0]])
    for name, s in samples.items():
        ratio = np.median(np.asarray(s) / base)
        print(f"{name:10s} median {np.median(s):.3f} s  per-round ratio to {names[0]}: "
              f"{ratio:.3f}  rounds: {[round(x, 3) for x in s]}")


if __name__ == "__main__":
    main(sys.argv[1:])
