"""``normalisation`` (paper §4.5, Fig. 8): does neuron normalisation matter?

The paper ("Importance of neuron normalization"): genomes meta-trained without normalisation
did not generalise as well to other resolutions and deeper networks, and normalisation is
"crucial" for meta-training stability; Fig. 8's bars are no norm / backward only / forward only
/ both. Here one genome is meta-trained for each setting of ``NetworkSpec.neuron_norm``
(per-state normalisation with the genome's learnable shift and scale, §3.4) on the same tasks
and evaluated beside tuned SGD on the same held-out tasks
(:mod:`blur.experiments.reproduce.ablation`). Fig. 8's other axes (resolution, depth) are not
varied here; ``depth-transfer`` varies depth.

Scales: ``small`` the toy2d preset (hidden (20,)); ``paper`` the mnist10 preset (evaluated at
28x28); ``tiny`` the tiny toy run. ``--variants none both`` picks some of
none / forward / backward / both.
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

NORMS = ("none", "forward", "backward", "both")
LABELS = {"none": "no norm", "forward": "forward only", "backward": "backward only",
          "both": "both passes"}


def all_variants(scale: str, seed: int = 0, meta_steps: int | None = None,
                 num_runs: int | None = None) -> list[Variant]:
    """One variant per ``neuron_norm`` setting on the scale's base config."""
    base = base_config(scale, seed, meta_steps, num_runs)
    return [Variant(n, with_network(base, neuron_norm=n), f"neuron normalisation: {LABELS[n]}")
            for n in NORMS]


def run(
    out: Path, scale: str = "small", seed: int = 0, command: str | None = None,
    variants: tuple[str, ...] | None = None, meta_steps: int | None = None,
    num_runs: int | None = None,
) -> Outcome:
    """Meta-train and evaluate one genome per normalisation setting; writes
    ``normalisation.png``, ``table.md`` and ``table.json``.

    Args:
      variants: the settings to run (default all four of :data:`NORMS`).
      meta_steps, num_runs: override the scale's meta-steps and best-of-N runs per setting.
    """
    chosen = select(all_variants(scale, seed, meta_steps, num_runs), variants)
    return run_ablation(
        out, "normalisation", scale, seed, chosen,
        "Neuron normalisation (§4.5, Fig. 8)",
        {"variants": [v.name for v in chosen], "meta_steps": meta_steps, "num_runs": num_runs},
        command,
    )
