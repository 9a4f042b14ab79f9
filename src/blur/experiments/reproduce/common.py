"""What every ``blur reproduce`` experiment writes: ``table.md``, ``table.json``, ``run.json``."""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import jax

from blur.experiments.config import CalibrationSettings, RunConfig, get_preset
from blur.experiments.runs import dump_json
from blur.io.atomic import write_text_atomic


def reproduce_preset(name: str) -> RunConfig:
    """The preset that the experiments' small scales build on.

    ``toy2d`` is pinned at its setting before issue 10 retuned the main job (commit 225d142:
    no neuron normalisation, meta-rate 1e-2, horizon 10 -> 20, 6 tasks per meta-step,
    validation every 200 meta-steps on 8 tasks after the run's final T, best of 4 runs with no
    exploit step, the table on 16 tasks per family), the setting every small-scale result in
    ``docs/REPRODUCTION.md`` was measured with, so that those commands still reproduce them.
    ``mnist10``, the paper scale's base, is pinned at its setting before issue 10 changed it
    (commit afe7631: no neuron normalisation, rates 200/100/50, 800 meta-steps with T = 10 ->
    20, the query scored after step 10 and T, no calibration, the table to step 100), so that
    the experiments vary what the paper varies and not the later additions. Every other preset
    is returned as shipped.
    """
    from blur.outer.gradient import Curriculum

    config = get_preset(name)
    if name == "mnist10":
        return dataclasses.replace(
            config,
            init_eta_tilde=(200.0, 100.0, 50.0),
            network=dataclasses.replace(config.network, neuron_norm="none"),
            objective=dataclasses.replace(config.objective, score_steps=(10,)),
            gradient=dataclasses.replace(
                config.gradient, meta_steps=800,
                curriculum=Curriculum(start=10, increment=5, every=300, maximum=20)),
            calibration=CalibrationSettings(),
            evaluation=dataclasses.replace(config.evaluation, report_steps=(10, 25, 50, 100)),
        )
    if name != "toy2d":
        return config
    return dataclasses.replace(
        config,
        network=dataclasses.replace(config.network, neuron_norm="none"),
        gradient=dataclasses.replace(
            config.gradient, learning_rate=1e-2, num_runs=4, exploit_below=None,
            curriculum=Curriculum(start=10, increment=5, every=200, maximum=20)),
        objective=dataclasses.replace(config.objective, num_tasks=6),
        validate_every=200,
        validate_tasks=8,
        validate_num_steps=None,
        evaluation=dataclasses.replace(config.evaluation, num_tasks=16),
    )


TABLE_MD = "table.md"
TABLE_JSON = "table.json"
RUN_JSON = "run.json"


@dataclasses.dataclass
class Outcome:
    """An experiment's result: its folder, figures, table rows and wall time.

    Attributes:
      out: the run folder.
      figures: the PNG files written.
      table: the JSON-able table (also in ``table.json``).
      markdown: the table as markdown (also in ``table.md``).
      wall_s: wall time of the whole experiment in seconds.
    """

    out: Path
    figures: list[Path]
    table: dict[str, Any]
    markdown: str
    wall_s: float


def machine() -> dict[str, Any]:
    """The machine a result was measured on (for the run folder and REPRODUCTION.md)."""
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "cpu_count": os.cpu_count(),
    }


def save_figure(fig: Any, path: Path, dpi: int = 90) -> Path:
    """Lay out, write and close a matplotlib figure; returns ``path``."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def finish(
    out: Path, experiment: str, scale: str, seed: int, start: float, figures: list[Path],
    table: dict[str, Any], markdown: str, options: dict[str, Any], command: str | None = None,
) -> Outcome:
    """Write ``table.md``, ``table.json`` and ``run.json`` into ``out`` (atomically)."""
    wall = time.perf_counter() - start
    write_text_atomic(out / TABLE_MD, markdown + "\n")
    write_text_atomic(out / TABLE_JSON, dump_json(table))
    run = {
        "experiment": experiment,
        "scale": scale,
        "seed": seed,
        "options": options,
        "command": command,
        "wall_s": round(wall, 2),
        "machine": machine(),
        "figures": [p.name for p in figures],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    write_text_atomic(out / RUN_JSON, dump_json(run))
    return Outcome(out, figures, table, markdown, wall)
