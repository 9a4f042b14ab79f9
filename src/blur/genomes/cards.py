"""Write a shipped genome and its model card from measured output (``blur genomes card``).

One call converts a genome file to schema v2 with its network (a v1 file takes the network
from its run folder's config.json), runs the evaluation of ``blur compare`` on it, and writes
``NAME.json``, ``NAME.card.json`` and ``NAME.md`` into the package folder. Nothing on the card
is typed by hand except the provenance that no file records (the command that made the
genome and the machine), which are arguments.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax

from blur._dataclass_json import to_jsonable
from blur.experiments.config import EvalSettings
from blur.experiments.evaluation import Contender, contender_from_file
from blur.genomes import CARD_SUFFIX, package_dir, render_card
from blur.io.genome_file import load_genome_file, save_genome

CARD_BASELINES = ("sgd", "momentum", "adam")


def machine_description() -> str:
    """The platform, CPU count and jax backend/devices of this process."""
    import os

    devices = jax.devices()
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, jax "
            f"{jax.__version__} on {devices[0].platform} ({len(devices)} device(s): "
            f"{devices[0].device_kind})")


def run_folder_facts(genome_path: Path) -> dict[str, Any]:
    """What the genome's run folder records: method, meta-training tasks, wall time."""
    from blur.experiments.runs import CONFIG, METRICS, load_run_config

    folder = genome_path.parent
    facts: dict[str, Any] = {}
    if (folder / CONFIG).exists():
        config = load_run_config(folder)
        facts["method"] = config.method
        facts["meta_trained_on"] = list(config.tasks.train)
        facts["preset"] = config.preset
    if (folder / METRICS).exists():
        walls = [json.loads(line).get("wall_time") for line in
                 (folder / METRICS).read_text("utf-8").splitlines() if line.strip()]
        walls = [w for w in walls if isinstance(w, int | float)]
        if walls:
            facts["wall_time_s"] = float(max(walls))
    return facts


def evaluation_command(
    name: str, tasks: Sequence[str], settings: EvalSettings, seed: int,
    baselines: Sequence[str],
) -> str:
    """The ``blur compare`` command that reproduces a card's table."""
    parts = ["blur", "compare", name, "--tasks", *tasks, "--baselines", *baselines,
             "--seed", str(seed),
             "--evaluation.num-tasks", str(settings.num_tasks),
             "--evaluation.batch-size", str(settings.batch_size),
             "--evaluation.query-size", str(settings.query_size),
             "--evaluation.report-steps", *map(str, settings.report_steps),
             "--output-dir", f"compare-{name}"]
    return shlex.join(parts)


def make_card(
    name: str,
    genome_path: Path,
    *,
    tasks: Sequence[str],
    summary: str,
    made_with: str,
    machine: str,
    settings: EvalSettings,
    seed: int = 0,
    wall_time_s: float | None = None,
    wall_time_note: str = "",
    meta_trained_on: Sequence[str] = (),
    method: str | None = None,
    into: Path | None = None,
    card_command: str = "",
) -> dict[str, Any]:
    """Convert ``genome_path`` into a shipped genome ``name`` and measure its card.

    Args:
      name: the shipped name (``toy2d-k2``).
      genome_path: a genome.json (v2, or v1 inside its run folder).
      tasks: evaluation families (test splits for image data).
      summary: one paragraph on what the genome is.
      made_with: the command that made the genome.
      machine: the machine it was made on.
      settings: evaluation settings (use >= 10 tasks).
      seed: the evaluation's PRNG seed.
      wall_time_s, meta_trained_on, method: default to what the run folder records.
      into: output folder (default: the package's).
      card_command: the command that wrote this card (recorded on it).

    Returns:
      The card as a dict (also written as NAME.card.json and NAME.md).
    """
    into = package_dir() if into is None else into
    facts = run_folder_facts(genome_path)
    base = contender_from_file(genome_path, name)
    source_file = load_genome_file(genome_path)
    method = method or source_file.method or facts.get("method")
    wall = wall_time_s if wall_time_s is not None else facts.get("wall_time_s")
    trained_on = list(meta_trained_on) or facts.get("meta_trained_on") or []
    if wall is None or not trained_on:
        raise ValueError(
            f"{genome_path}: its folder records no {'wall time' if wall is None else 'tasks'}; "
            "pass --wall-time-s and --meta-trained-on"
        )
    save_genome(base.genome, into / f"{name}.json", network=base.network, method=method,
                name=name, source=str(genome_path), source_metadata=source_file.metadata)
    shipped = load_genome_file(into / f"{name}.json")
    contender = Contender(name, shipped.genome, shipped.network or base.network)

    from blur.experiments.compare import compare_contenders

    start = time.perf_counter()
    comparison = compare_contenders([contender], tasks, settings, jax.random.PRNGKey(seed),
                                    CARD_BASELINES)
    seconds = time.perf_counter() - start
    card = {
        "name": name,
        "summary": summary,
        "method": method,
        "made_by": {"command": made_with, "wall_time_s": wall, "machine": machine,
                    "wall_time_note": wall_time_note or (
                        "meta-training loop, from the run's metrics.jsonl"
                        if wall_time_s is None else ""),
                    "source": str(genome_path)},
        "meta_trained_on": trained_on,
        "network": to_jsonable(contender.network),
        "evaluation": {
            "command": evaluation_command(name, tasks, settings, seed, CARD_BASELINES),
            "tasks": list(tasks),
            "seed": seed,
            "settings": to_jsonable(dataclasses.replace(settings, baselines=CARD_BASELINES)),
            "baselines": list(CARD_BASELINES),
            "rows": comparison.report.rows,
            "table": comparison.markdown(),
            "measured_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine_description(),
            "wall_time_s": round(seconds, 1),
        },
        "card_command": card_command,
    }
    from blur.experiments.runs import dump_json
    from blur.io.atomic import write_text_atomic

    write_text_atomic(into / f"{name}{CARD_SUFFIX}", dump_json(card))
    write_text_atomic(into / f"{name}.md", render_card(card))
    return card
