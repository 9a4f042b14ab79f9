"""``variants`` (paper §4.5, Fig. 9, App. C.7): synapse symmetry, synapse states, genome init.

The paper trains the eight combinations {symmetric, asymmetric} x {single-, multi-state
synapses} x {backprop, random init} to 10 unrolls, against SGD; the best three are symmetric
single-state backprop-init, symmetric multi-state random-init and asymmetric multi-state
random-init, and "the other five are much worse". Here one genome is meta-trained per
combination on the same tasks and evaluated beside tuned SGD on the same held-out tasks
(:mod:`blur.experiments.reproduce.ablation`).

* symmetric: ``NetworkSpec.symmetric_synapses`` (backward synapses are the transposed forward
  ones) or not (independent backward synapses, updated by their own rule).
* single-state: ``single_state_synapses`` (every synapse channel equals channel 0) or not (K
  independently initialised channels).
* backprop init: the ``delta`` genome, this library's error-driven version of the paper's
  "close to backprop" init (the paper's, as reconstructed, learns nothing before
  meta-training: calibration.md, trap 1); random init: the authors' random genome
  (``random``: rule matrices ~ N(0, 1)). Both keep the base's Hebbian rates and synapse scale,
  so the two differ only in the rule matrices.

Names: ``sym|asym``-``single|multi``-``bp|rand``. Scales: ``small`` all eight on the toy2d
preset; ``paper`` all eight on the mnist10 preset; ``tiny`` two of them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from blur.experiments.reproduce.ablation import (
    Variant,
    base_config,
    run_ablation,
    select,
    with_network,
)
from blur.experiments.reproduce.common import Outcome

INITS = {"bp": "delta", "rand": "random"}
DEFAULT = {"tiny": ("sym-single-bp", "asym-multi-rand"), "small": None, "paper": None}


def all_variants(scale: str, seed: int = 0, meta_steps: int | None = None,
                 num_runs: int | None = None) -> list[Variant]:
    """The eight combinations on the scale's base config, the paper's order."""
    base = base_config(scale, seed, meta_steps, num_runs)
    out = []
    for sym in ("sym", "asym"):
        for states in ("single", "multi"):
            for init in ("bp", "rand"):
                config = with_network(base, symmetric_synapses=sym == "sym",
                                      single_state_synapses=states == "single")
                config = dataclasses.replace(config, genome_init=INITS[init])
                description = (f"{'symmetric' if sym == 'sym' else 'asymmetric'}, "
                               f"{states}-state synapses, "
                               f"{'backprop (delta)' if init == 'bp' else 'random'} init")
                out.append(Variant(f"{sym}-{states}-{init}", config, description))
    return out


def run(
    out: Path, scale: str = "small", seed: int = 0, command: str | None = None,
    variants: tuple[str, ...] | None = None, meta_steps: int | None = None,
    num_runs: int | None = None,
) -> Outcome:
    """Meta-train and evaluate one genome per combination; writes ``variants.png``,
    ``table.md`` and ``table.json``.

    Args:
      variants: the combinations to run (default: the scale's; small and paper: all eight).
      meta_steps, num_runs: override the scale's meta-steps and best-of-N runs per variant.
    """
    chosen = select(all_variants(scale, seed, meta_steps, num_runs), variants, DEFAULT[scale])
    return run_ablation(
        out, "variants", scale, seed, chosen,
        "Synapse symmetry x synapse states x genome init (§4.5, Fig. 9, App. C.7)",
        {"variants": [v.name for v in chosen], "meta_steps": meta_steps, "num_runs": num_runs},
        command,
    )
