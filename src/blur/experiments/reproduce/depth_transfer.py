"""``depth-transfer`` (paper §4.5, Fig. 10): a genome meta-trained at one depth, used at others.

The paper: genomes meta-trained on deeper networks generalise to shallower ones "but not vice
versa"; a 2-layer genome works with 1 hidden layer but diverges with 4, and a 4-layer genome
trains 1-3-layer and 10-layer networks. Here a genome is meta-trained at each training depth
and every genome is evaluated at every evaluation depth beside SGD tuned on an MLP of that
depth, on the same held-out tasks (:mod:`blur.experiments.reproduce.ablation`): both
directions, shallow -> deep and deep -> shallow.

A genome that applies to any depth must be shared by all layers (``per_layer_genome=False``;
a per-layer genome has one entry per synapse layer and fixes the depth), so the base network
is the scale's with a shared genome. A shared genome cannot use the per-layer delta init of
error feedback (its last layer reads the error apart), so the base uses ``label`` feedback
with the shared delta init (rate 3, He-scale synapses); everything else is the scale's base.

Scales: ``small`` the toy2d preset, width 20, meta-trained at 1 and 3 hidden layers and
evaluated at 1, 2 and 3; ``paper`` the mnist10 preset, width 256, trained at 1, 2 and 4 and
evaluated at 1, 2, 4, 5 and 10 (Fig. 10's depths); ``tiny`` width 8, trained at 1 and 2,
evaluated at 1 and 2. ``--genome FILE`` evaluates a shared genome file at the evaluation
depths instead of meta-training.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax

from blur.experiments.config import RunConfig
from blur.experiments.evaluation import contender_from_file
from blur.experiments.reproduce.ablation import (
    EVAL_KEY,
    Probe,
    Trained,
    Variant,
    base_config,
    evaluate_probes,
    select,
    train_all,
    with_network,
    write_report,
)
from blur.experiments.reproduce.common import Outcome
from blur.genome import Genome
from blur.network import NetworkConfig

TRAIN_DEPTHS = {"tiny": (1, 2), "small": (1, 3), "paper": (1, 2, 4)}
EVAL_DEPTHS = {"tiny": (1, 2), "small": (1, 2, 3), "paper": (1, 2, 4, 5, 10)}
ALL_TRAIN_DEPTHS = (1, 2, 3, 4)


def check_shared(network: NetworkConfig, genome: Genome | None, source: str) -> None:
    """Refuse a per-layer genome (or network): it fixes the depth.

    Raises:
      ValueError: naming ``source`` and the fix.
    """
    per_layer = network.per_layer_genome or (genome is not None and genome.num_layers
                                             is not None)
    if per_layer:
        layers = genome.num_layers if genome is not None else network.num_layers
        raise ValueError(
            f"{source}: depth-transfer needs a genome shared by all layers, but this one is "
            f"per-layer ({layers} synapse layers), which fixes the depth; meta-train a shared "
            "one (--network.no-per-layer-genome) and pass that"
        )


def shared_base(scale: str, seed: int, meta_steps: int | None,
                num_runs: int | None) -> RunConfig:
    """The scale's base config with a shared genome (module docstring)."""
    base = base_config(scale, seed, meta_steps, num_runs)
    base = dataclasses.replace(base, init_eta_tilde=(3.0,))
    return with_network(base, per_layer_genome=False, feedback="label")


def hidden_at(base: RunConfig, depth: int) -> tuple[int, ...]:
    """``depth`` hidden layers of the base's first width."""
    return (base.network.hidden[0],) * depth


def check_depths(depths: tuple[int, ...], what: str) -> tuple[int, ...]:
    if not depths or len(set(depths)) != len(depths) or any(
            not isinstance(d, int) or d < 1 for d in depths):
        raise ValueError(f"{what}={depths} must be distinct numbers of hidden layers >= 1")
    return tuple(depths)


def all_variants(scale: str, seed: int = 0, meta_steps: int | None = None,
                 num_runs: int | None = None) -> list[Variant]:
    """One variant ``trainNL`` per training depth N of :data:`ALL_TRAIN_DEPTHS` (and the
    paper's)."""
    base = shared_base(scale, seed, meta_steps, num_runs)
    depths = sorted(set(ALL_TRAIN_DEPTHS) | set(TRAIN_DEPTHS["paper"]))
    return [Variant(f"train{d}L", with_network(base, hidden=hidden_at(base, d)),
                    f"meta-trained with {d} hidden layer(s) of {base.network.hidden[0]}")
            for d in depths]


def from_file(path: Path, base: RunConfig) -> Trained:
    """A shared genome file as a 'trained' variant (no meta-training).

    Raises:
      ValueError: the genome is per-layer (:func:`check_shared`), or the file is invalid.
    """
    contender = contender_from_file(path, "genome")
    check_shared(contender.network, contender.genome, str(path))
    config = dataclasses.replace(base, network=contender.network)
    depth = len(contender.network.hidden)
    return Trained(Variant(f"file{depth}L", config, f"{path} ({depth} hidden layer(s))"),
                   contender.genome, None, None, 0.0, None)


def run(
    out: Path, scale: str = "small", seed: int = 0, command: str | None = None,
    variants: tuple[str, ...] | None = None, eval_depths: tuple[int, ...] | None = None,
    genome: str | Path | None = None, meta_steps: int | None = None,
    num_runs: int | None = None,
) -> Outcome:
    """Meta-train at the training depths (or load ``genome``), evaluate at every evaluation
    depth; writes ``depth-transfer.png``, ``table.md`` and ``table.json``.

    Args:
      variants: training depths as ``train1L``, ``train3L``, ... (default: the scale's).
      eval_depths: numbers of hidden layers to evaluate at (default: the scale's).
      genome: a shared genome file to evaluate instead of meta-training (its file's network
        gives K and the other settings; the width is kept, the depth varied).
      meta_steps, num_runs: override the scale's meta-steps and best-of-N runs per depth.
    """
    start = time.perf_counter()
    base = shared_base(scale, seed, meta_steps, num_runs)
    check_shared(base.network, None, "the base network")
    depths = check_depths(tuple(eval_depths) if eval_depths is not None else EVAL_DEPTHS[scale],
                          "eval_depths")
    out.mkdir(parents=True, exist_ok=True)
    if genome is not None:
        if variants is not None:
            raise ValueError("give either --genome (evaluate a file) or --variants (training "
                             "depths to meta-train), not both")
        t = from_file(Path(genome), base)
        trained = {t.variant.name: t}
        chosen = [t.variant]
    else:
        chosen = select(all_variants(scale, seed, meta_steps, num_runs), variants,
                        [f"train{d}L" for d in TRAIN_DEPTHS[scale]])
        trained = train_all(chosen, out)
    width = chosen[0].config.network.hidden[0]
    probes = [Probe(v.name, v.name, (width,) * d) for d in depths for v in chosen]
    settings = base.evaluation
    families = base.tasks.evaluation_families()
    groups = evaluate_probes(trained, probes, families, settings,
                             jax.random.fold_in(jax.random.PRNGKey(seed), EVAL_KEY))
    options = {"variants": [v.name for v in chosen], "eval_depths": list(depths),
               "genome": str(genome) if genome is not None else None,
               "meta_steps": meta_steps, "num_runs": num_runs}
    return write_report(out, "depth-transfer", scale, seed, start, groups, trained, chosen,
                        settings, families,
                        "Depth transfer (§4.5, Fig. 10): rows = trained depth, hidden = "
                        "evaluated depth", options, command)
