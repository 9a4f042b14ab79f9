"""``blur evaluate GENOME``: train fresh networks with a genome and with tuned baselines."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import tyro

from blur.experiments.config import PAPER_NETWORK, EvalSettings
from blur.network import NetworkConfig


@dataclasses.dataclass(frozen=True)
class EvaluateArgs:
    """Accuracy after each inner step of a genome vs oracle-tuned SGD / momentum / Adam.

    Attributes:
      genome: a genome.json file.
      tasks: task families, e.g. ``xor`` ``mnist?split=test`` ``fashion_mnist?split=test``.
      network: the network to train (input/output widths come from each task). When GENOME
        comes first, the network recorded in it (or in its run folder's config.json) gives
        the defaults shown here.
      evaluation: steps to report, tasks, batch and query sizes, baselines.
      seed: PRNG seed for tasks and initialisations.
      output: optional JSON file for the full curves and the table rows.
      baselines: overrides ``evaluation.baselines``.
    """

    genome: tyro.conf.Positional[Path]
    tasks: tuple[str, ...] = ("centered_circle", "pie", "blob5")
    network: NetworkConfig = PAPER_NETWORK
    evaluation: EvalSettings = EvalSettings()
    seed: int = 0
    output: Path | None = None
    baselines: tuple[Literal["sgd", "momentum", "adam"], ...] | None = None


def main(argv: list[str]) -> int:
    from blur.experiments.evaluation import contender_from_file

    default = None
    if argv and not argv[0].startswith("-"):  # GENOME first: default to its recorded network
        try:
            found = contender_from_file(Path(argv[0]))
        except ValueError:
            found = None  # reported below, with the parsed arguments
        if found is not None:
            default = EvaluateArgs(genome=Path(argv[0]), network=found.network)
    args = tyro.cli(EvaluateArgs, args=argv, prog="blur evaluate", default=default)
    import jax

    from blur.experiments.evaluation import evaluate_report
    from blur.experiments.runs import dump_json
    from blur.io.atomic import write_text_atomic

    contender = contender_from_file(args.genome, "BLUR", args.network)
    report = evaluate_report([contender], args.tasks, args.evaluation,
                             jax.random.PRNGKey(args.seed), args.baselines)
    print(report.table)
    if args.output is not None:
        write_text_atomic(args.output, dump_json(report.data))
    return 0
