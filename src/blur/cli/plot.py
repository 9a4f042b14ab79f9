"""``blur plot RUN_DIR``: write PNG plots into the run folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tyro


@dataclasses.dataclass(frozen=True)
class PlotArgs:
    """Write meta_training.png and accuracy_vs_step.png into a run folder."""

    run_dir: tyro.conf.Positional[Path]


def main(argv: list[str]) -> int:
    args = tyro.cli(PlotArgs, args=argv, prog="blur plot")
    from blur.io.plots import plot_run

    try:
        paths = plot_run(args.run_dir)
    except FileNotFoundError as e:
        raise SystemExit(f"blur plot: {e}") from None
    for p in paths:
        print(p)
    return 0
