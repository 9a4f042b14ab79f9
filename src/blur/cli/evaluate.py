"""``blur evaluate GENOME``: train fresh networks with a genome and with tuned baselines."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import tyro

from blur.experiments.config import EvalSettings, NetworkConfig


@dataclasses.dataclass(frozen=True)
class EvaluateArgs:
    """Accuracy after each inner step of a genome vs oracle-tuned SGD / momentum / Adam.

    Attributes:
      genome: a genome.json file (from a run folder).
      tasks: task families, e.g. ``xor`` ``mnist?split=test`` ``fashion_mnist?split=test``.
      network: the network to train (input/output widths come from each task). When GENOME
        comes first and sits in a run folder, its ``config.json`` gives the defaults shown here.
      evaluation: steps to report, tasks, batch and query sizes, baselines.
      seed: PRNG seed for tasks and initialisations.
      output: optional JSON file for the full curves.
    """

    genome: tyro.conf.Positional[Path]
    tasks: tuple[str, ...] = ("centered_circle", "pie", "blob5")
    network: NetworkConfig = NetworkConfig()
    evaluation: EvalSettings = EvalSettings()
    seed: int = 0
    output: Path | None = None
    baselines: tuple[Literal["sgd", "momentum", "adam"], ...] | None = None


def _run_network(genome_path: Path) -> NetworkConfig | None:
    """The network config of the run folder holding ``genome_path``, if there is one."""
    from blur.experiments.runs import CONFIG, load_run_config

    if not (genome_path.parent / CONFIG).exists():
        return None
    return load_run_config(genome_path.parent).network


def main(argv: list[str]) -> int:
    default = None
    if argv and not argv[0].startswith("-"):  # GENOME first: default to its run's network
        network = _run_network(Path(argv[0]))
        if network is not None:
            default = EvaluateArgs(genome=Path(argv[0]), network=network)
    args = tyro.cli(EvaluateArgs, args=argv, prog="blur evaluate", default=default)
    import json

    import jax

    from blur.experiments.config import build_family
    from blur.experiments.evaluate import evaluate_family, format_table
    from blur.io.atomic import write_text_atomic
    from blur.io.genome_file import load_genome

    genome = load_genome(args.genome)
    ev = args.evaluation
    baselines = args.baselines if args.baselines is not None else ev.baselines
    key = jax.random.PRNGKey(args.seed)
    results = []
    for text in args.tasks:
        family = build_family(text)
        spec = args.network.spec_for(family)
        if genome.num_states != spec.num_states:
            raise SystemExit(f"blur evaluate: the genome has K={genome.num_states} states but "
                             f"--network.num-states is {spec.num_states}; pass "
                             f"--network.num-states {genome.num_states}")
        results.append(evaluate_family(
            genome, spec, family, key, num_steps=max(ev.report_steps), num_tasks=ev.num_tasks,
            batch_size=ev.batch_size, query_size=ev.query_size, baselines=tuple(baselines),
        ))
    print(format_table(results, ev.report_steps))
    if args.output is not None:
        write_text_atomic(args.output, json.dumps({"results": results}, indent=1))
    return 0
