"""``states`` (paper App. C.3, Fig. 13): does a neuron with more states learn better?

The paper: "merely increasing the number of states improves performance" (Fig. 13: 2, 4, 8 and
16 states, accuracy after 10 unrolls, multiple meta-train runs and the best run). Here one
genome is meta-trained for each K on the same tasks, from the same initialiser embedded in
K x K (states beyond the first two start unused and are free for meta-training to recruit),
and every genome is evaluated beside tuned SGD on the same held-out tasks
(:mod:`blur.experiments.reproduce.ablation`).

Scales: ``small`` K = 2, 3, 4, 8 on the toy2d preset (hidden (20,)); ``paper`` K = 2, 4, 8, 16
on the mnist10 preset; ``tiny`` K = 2, 3, 4, 8 on the tiny toy run.
``--variants k2 k16`` picks others (any of k2, k3, k4, k8, k16).
"""

from __future__ import annotations

from pathlib import Path

from blur.experiments.reproduce.ablation import (
    Variant,
    base_config,
    run_ablation,
    select,
    with_network,
)
from blur.experiments.reproduce.common import Outcome

ALL_STATES = (2, 3, 4, 8, 16)
DEFAULT_STATES = {"tiny": (2, 3, 4, 8), "small": (2, 3, 4, 8), "paper": (2, 4, 8, 16)}


def all_variants(scale: str, seed: int = 0, meta_steps: int | None = None,
                 num_runs: int | None = None) -> list[Variant]:
    """One variant ``kK`` per K of :data:`ALL_STATES` on the scale's base config."""
    base = base_config(scale, seed, meta_steps, num_runs)
    return [Variant(f"k{k}", with_network(base, num_states=k), f"K = {k} states per neuron")
            for k in ALL_STATES]


def run(
    out: Path, scale: str = "small", seed: int = 0, command: str | None = None,
    variants: tuple[str, ...] | None = None, meta_steps: int | None = None,
    num_runs: int | None = None,
) -> Outcome:
    """Meta-train and evaluate one genome per K; writes ``states.png``, ``table.md``/``.json``.

    Args:
      variants: names of the K to run (``k2``, ``k3``, ...; default the scale's).
      meta_steps, num_runs: override the scale's meta-steps and best-of-N runs per K.
    """
    chosen = select(all_variants(scale, seed, meta_steps, num_runs), variants,
                    [f"k{k}" for k in DEFAULT_STATES[scale]])
    return run_ablation(
        out, "states", scale, seed, chosen, "Number of states K (App. C.3, Fig. 13)",
        {"variants": [v.name for v in chosen], "meta_steps": meta_steps, "num_runs": num_runs},
        command,
    )
