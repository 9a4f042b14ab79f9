"""``activations`` (paper §4.5, App. C.2, Fig. 12): forward/backward non-linearity pairs.

The paper: the choice of forward/backward non-linearity "has relatively little impact"; genomes
were meta-learned for almost every combination, including no non-linearity on the backward
pass; a fully linear network gains nothing from more states (Fig. 12: pairs from relu, tanh,
sigmoid and linear, 2, 4 and 8 states, accuracy after 10 unrolls). Here one genome is
meta-trained per (``forward_activation``, ``backward_activation``) pair of the hidden layers
(the output layer keeps the base's) and, with ``states``, per number of states, and every
genome is evaluated beside tuned SGD on the same held-out tasks
(:mod:`blur.experiments.reproduce.ablation`).

A pair is written ``FORWARD/BACKWARD`` with each side one of :data:`UNITARY` (the activations
that act on every state alike, as in the paper; the ``binary_*`` ones are backprop's σ/σ'
construction, not a non-linearity choice).

Scales: ``small`` six pairs at K = 2 on the toy2d preset (its own pair, relu_tanh/linear,
among them); ``paper`` all 16 pairs of relu/tanh/sigmoid/linear at K = 2, 4, 8 on the mnist10
preset (48 meta-training runs: a GPU job); ``tiny`` two pairs.
"""

from __future__ import annotations

from pathlib import Path

from blur.experiments.reproduce.ablation import (
    Variant,
    base_config,
    run_ablation,
    with_network,
)
from blur.experiments.reproduce.common import Outcome

UNITARY = ("relu", "tanh", "sigmoid", "linear", "relu_tanh")
PAPER_SET = ("relu", "tanh", "sigmoid", "linear")
DEFAULT_PAIRS = {
    "tiny": ("relu_tanh/linear", "linear/linear"),
    "small": ("relu_tanh/linear", "relu/linear", "tanh/tanh", "tanh/linear", "sigmoid/linear",
              "linear/linear"),
    "paper": tuple(f"{f}/{b}" for f in PAPER_SET for b in PAPER_SET),
}
DEFAULT_STATES = {"tiny": None, "small": None, "paper": (2, 4, 8)}


def parse_pair(text: str) -> tuple[str, str]:
    """``'relu/tanh'`` -> ``('relu', 'tanh')``.

    Raises:
      ValueError: not two names joined by ``/``, or a name not in :data:`UNITARY`.
    """
    parts = text.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"activation pair {text!r} must look like FORWARD/BACKWARD, "
                         f"e.g. relu/tanh, with each side one of {list(UNITARY)}")
    for side, name in zip(("forward", "backward"), parts, strict=True):
        if name not in UNITARY:
            hint = (" (binary_* activations are backprop's σ/σ' construction, not a "
                    "non-linearity of this ablation)" if name.startswith("binary_") else "")
            raise ValueError(f"activation pair {text!r}: {side} activation {name!r} is not one "
                             f"of {list(UNITARY)}{hint}")
    return parts[0], parts[1]


def make_variants(scale: str, pairs: tuple[str, ...], states: tuple[int, ...] | None,
                  seed: int = 0, meta_steps: int | None = None,
                  num_runs: int | None = None) -> list[Variant]:
    """One variant per pair (and per K of ``states``; None: the base config's K)."""
    base = base_config(scale, seed, meta_steps, num_runs)
    if len(set(pairs)) != len(pairs) or not pairs:
        raise ValueError(f"activation pairs {list(pairs)} must be given, each once")
    if states is not None and (not states or len(set(states)) != len(states)
                               or any(not isinstance(k, int) or k < 2 for k in states)):
        raise ValueError(f"states={states} must be distinct numbers of states >= 2")
    out = []
    for k in states or (None,):
        for text in pairs:
            fwd, bwd = parse_pair(text)
            changes = {"forward_activation": fwd, "backward_activation": bwd}
            name = text
            if k is not None:
                changes["num_states"] = k
                name = f"{text} k{k}" if states and len(states) > 1 else text
            description = f"forward {fwd}, backward {bwd}" + (f", K = {k}" if k else "")
            out.append(Variant(name, with_network(base, **changes), description))
    return out


def run(
    out: Path, scale: str = "small", seed: int = 0, command: str | None = None,
    variants: tuple[str, ...] | None = None, states: tuple[int, ...] | None = None,
    meta_steps: int | None = None, num_runs: int | None = None,
) -> Outcome:
    """Meta-train and evaluate one genome per activation pair (and K); writes
    ``activations.png``, ``table.md`` and ``table.json``.

    Args:
      variants: the pairs ``FORWARD/BACKWARD`` to run (default: the scale's).
      states: numbers of states to cross them with (default: the scale's; small: the base's).
      meta_steps, num_runs: override the scale's meta-steps and best-of-N runs per variant.
    """
    pairs = tuple(variants) if variants is not None else DEFAULT_PAIRS[scale]
    ks = tuple(states) if states is not None else DEFAULT_STATES[scale]
    chosen = make_variants(scale, pairs, ks, seed, meta_steps, num_runs)
    return run_ablation(
        out, "activations", scale, seed, chosen,
        "Forward/backward activations (§4.5, App. C.2, Fig. 12)",
        {"variants": list(pairs), "states": list(ks) if ks else None, "meta_steps": meta_steps,
         "num_runs": num_runs},
        command,
    )
