"""``unsupervised`` (paper §5, future work): synapse updates after the forward pass, before any
label is seen (``NetworkSpec.unsupervised_update``).

The paper names "weight updates on the forward pass" as future work (the authors' code has a
flag for it). With the option on, every inner step applies the genome's Hebbian update
(eqs. 7-8) once to the forward-pass neurons before the label is written into the output
layer, then runs the usual feedback, backward pass and supervised update from those synapses.

Two modes, both through the ablation driver (:mod:`blur.experiments.reproduce.ablation`):

* default: a genome (the shipped ``mnist-k4``, or ``--genome NAME|FILE``) trains 28x28 MNIST
  test-split tasks (``mnist?query_split=test``) with the option off and on, beside tuned SGD, on
  the same batches from the same synapse inits. The genome was meta-trained without the
  option, so "on" shows what the extra update does to a rule that never saw it.
* ``--variants off on``: meta-train a genome without and with the option on the ablation base
  config (toy2d at small scale, mnist10 at paper scale) and evaluate each on its own setting,
  so the rule can learn to use (or suppress) the forward-pass update.

Scales (genome mode): ``tiny`` 2 tasks, 4 steps of 16, 64 query images; ``small`` 10 tasks,
50 steps of 128, 1000 query images; ``paper`` 10 tasks, 100 steps, the whole test split.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax

from blur.experiments.reproduce.ablation import (
    EVAL_KEY,
    Probe,
    Trained,
    Variant,
    base_config,
    evaluate_probes,
    run_ablation,
    select,
    with_network,
    write_report,
)
from blur.experiments.reproduce.common import Outcome
from blur.experiments.reproduce.mnist_generalisation import SETTINGS, load

FAMILIES = ("mnist?query_split=test",)
TITLE = "Unsupervised forward-pass update (§5 future work): off vs on"


def all_variants(scale: str, seed: int = 0, meta_steps: int | None = None,
                 num_runs: int | None = None) -> list[Variant]:
    """``off`` and ``on``: the ablation base config without and with the option."""
    base = base_config(scale, seed, meta_steps, num_runs)
    return [Variant(name, with_network(base, unsupervised_update=on),
                    f"unsupervised_update={on}") for name, on in (("off", False), ("on", True))]


def run(
    out: Path, scale: str = "small", seed: int = 0, command: str | None = None,
    genome: str | Path | None = None, variants: tuple[str, ...] | None = None,
    meta_steps: int | None = None, num_runs: int | None = None,
) -> Outcome:
    """Compare the accuracy curve without and with the forward-pass update; writes
    ``unsupervised.png``, ``table.md`` and ``table.json`` (module docstring for the modes).

    Args:
      genome: a shipped genome name or file (genome mode; default ``mnist-k4``).
      variants: ``off`` and/or ``on`` to meta-train instead (meta-training mode).
      meta_steps, num_runs: meta-training mode's meta-steps and best-of-N runs.
    """
    options = {"genome": str(genome) if genome is not None else None,
               "variants": list(variants) if variants is not None else None,
               "meta_steps": meta_steps, "num_runs": num_runs}
    if variants is not None:
        if genome is not None:
            raise ValueError("give either --genome (evaluate a genome with the option off and "
                             "on) or --variants (meta-train off / on), not both")
        chosen = select(all_variants(scale, seed, meta_steps, num_runs), variants)
        return run_ablation(out, "unsupervised", scale, seed, chosen,
                            TITLE + " (each meta-trained with its setting)", options, command)
    if meta_steps is not None or num_runs is not None:
        raise ValueError("--meta-steps and --num-runs apply to the meta-training mode only "
                         "(--variants off on)")
    start = time.perf_counter()
    loaded = load(genome)
    settings = SETTINGS[scale]
    trained: dict[str, Trained] = {}
    for name, on in (("off", False), ("on", True)):
        config = dataclasses.replace(
            loaded.variant.config, evaluation=settings,
            network=dataclasses.replace(loaded.variant.config.network, unsupervised_update=on))
        trained[name] = dataclasses.replace(
            loaded, variant=Variant(name, config, f"{loaded.variant.name}, "
                                    f"unsupervised_update={on}"))
    if loaded.variant.config.network.unsupervised_update:
        raise ValueError(f"genome {loaded.variant.name!r} was meta-trained with "
                         "unsupervised_update on; this mode compares a genome meta-trained "
                         "without it")
    out.mkdir(parents=True, exist_ok=True)
    probes = [Probe(name, name) for name in trained]
    groups = evaluate_probes(trained, probes, FAMILIES, settings,
                             jax.random.fold_in(jax.random.PRNGKey(seed), EVAL_KEY))
    return write_report(
        out, "unsupervised", scale, seed, start, groups, trained,
        [t.variant for t in trained.values()], settings, FAMILIES,
        f"{TITLE}, genome {loaded.variant.name} on 28x28 MNIST test images", options, command,
        extra={"genome": str(genome or "mnist-k4"), "mode": "genome"},
        selection=f"The genome ({loaded.variant.description}) was meta-trained without the "
        "option and not here (meta-val: —).")
