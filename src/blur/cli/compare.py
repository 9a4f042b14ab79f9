"""``blur compare GENOME... --tasks ... --baselines ...``: genomes vs the best tuned baseline."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import tyro

from blur.experiments.config import EvalSettings
from blur.network import NetworkConfig


@dataclasses.dataclass(frozen=True)
class CompareArgs:
    """Several genomes and tuned baselines on several task families, one evaluation path.

    Writes ``table.md`` (each genome minus the best tuned baseline with its 95% interval),
    ``table.csv``, ``accuracy_vs_step.png`` (mean ± s.e. shaded) and ``compare.json`` into
    ``--output-dir``.

    Attributes:
      genomes: shipped names (``blur genomes list``) and/or genome.json files.
      tasks: task families, e.g. ``mnist?split=test`` ``fashion_mnist?split=test``.
      baselines: tuned optimisers (learning rate oracle-tuned per step over a 4-decade grid).
      evaluation: steps to report, tasks per family, batch and query sizes.
      seed: PRNG seed for tasks and initialisations (the same for every method).
      output_dir: folder for the table, CSV, plot and JSON.
      network: a network for every genome (default: each genome's own).
    """

    genomes: tyro.conf.Positional[tuple[str, ...]]
    tasks: tuple[str, ...] = ("mnist?split=test",)
    baselines: tuple[Literal["sgd", "momentum", "adam"], ...] = ("sgd", "momentum", "adam")
    evaluation: EvalSettings = EvalSettings()
    seed: int = 0
    output_dir: Path = Path("compare")
    network: NetworkConfig | None = None


def main(argv: list[str]) -> int:
    args = tyro.cli(CompareArgs, args=argv, prog="blur compare")
    import jax

    from blur.experiments.compare import compare, write_comparison

    comparison = compare(args.genomes, args.tasks, args.evaluation, jax.random.PRNGKey(args.seed),
                         args.baselines, args.network)
    paths = write_comparison(comparison, args.output_dir)
    print(comparison.markdown())
    print("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return 0
