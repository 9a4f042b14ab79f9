"""``blur genomes list | show NAME | card NAME GENOME ...``: the shipped pretrained genomes."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Annotated

import tyro

from blur.experiments.config import EvalSettings

USAGE = """usage: blur genomes list               the shipped genome names, one line each
       blur genomes show NAME          NAME's model card (markdown)
       blur genomes card NAME GENOME   (re)write NAME's genome file and card from a measured
                                        evaluation (blur genomes card --help)"""


@dataclasses.dataclass(frozen=True)
class CardArgs:
    """Convert GENOME into the shipped genome NAME and write its model card from a measured
    evaluation against tuned SGD, SGD with momentum and Adam (one command; nothing typed).

    Attributes:
      name: the shipped name, e.g. ``mnist-k4``.
      genome: a genome.json (v2; or v1 inside its run folder, whose config.json gives the
        network, the meta-training tasks and, from metrics.jsonl, the wall time).
      tasks: evaluation families (test splits for image data), e.g. ``mnist?split=test``.
      summary: one paragraph describing the genome.
      made_with: the command that made the genome.
      machine: the machine the genome was made on.
      wall_time_s: meta-training wall time (default: the run folder's metrics.jsonl).
      wall_time_note: how the wall time was measured, if not from metrics.jsonl.
      meta_trained_on: meta-training families (default: the run folder's config.json).
      evaluation: steps, tasks (>= 10), batch and query sizes of the card's table.
      seed: the evaluation's PRNG seed.
      into: output folder (default: the installed package's blur/genomes folder).
    """

    name: tyro.conf.Positional[str]
    genome: tyro.conf.Positional[Path]
    tasks: tuple[str, ...]
    summary: str
    made_with: str
    machine: str
    wall_time_s: float | None = None
    wall_time_note: str = ""
    meta_trained_on: tuple[str, ...] = ()
    evaluation: EvalSettings = EvalSettings()
    seed: int = 0
    into: Annotated[Path | None, tyro.conf.arg(help_behavior_hint="(default: package)")] = None


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    from blur import genomes

    sub, rest = argv[0], argv[1:]
    if sub == "list":
        for name in genomes.available():
            print(f"{name:<14} {genomes.card(name)['summary'].split('. ')[0]}")
        return 0
    if sub == "show":
        if len(rest) != 1:
            print("usage: blur genomes show NAME", file=sys.stderr)
            return 2
        print(genomes.render_card(genomes.card(rest[0])))
        return 0
    if sub == "card":
        args = tyro.cli(CardArgs, args=rest, prog="blur genomes card")
        if args.evaluation.num_tasks < 10:
            raise SystemExit(f"blur genomes card: a card needs >= 10 tasks per family, got "
                             f"--evaluation.num-tasks {args.evaluation.num_tasks}")
        from blur.genomes.cards import make_card

        card = make_card(
            args.name, args.genome, tasks=args.tasks, summary=args.summary,
            made_with=args.made_with, machine=args.machine, settings=args.evaluation,
            seed=args.seed, wall_time_s=args.wall_time_s, wall_time_note=args.wall_time_note,
            meta_trained_on=args.meta_trained_on, into=args.into,
            card_command=shlex.join(["blur", "genomes", "card", *rest]),
        )
        print(genomes.render_card(card))
        return 0
    print(f"blur genomes: unknown subcommand {sub!r}\n{USAGE}", file=sys.stderr)
    return 2
