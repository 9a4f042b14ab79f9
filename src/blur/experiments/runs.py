"""Run folders: config, metrics, checkpoints, the best genome, and the final evaluation table.

Shared by gradient meta-training and evolution (:mod:`blur.experiments.meta_train`,
:mod:`blur.experiments.evolve`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

from blur.experiments.config import RunConfig, build_family, config_from_json, config_to_json
from blur.experiments.evaluate import evaluate_family, format_table
from blur.genome import Genome, init_genome
from blur.io.atomic import write_text_atomic
from blur.io.genome_file import save_genome
from blur.io.metrics import append_metrics
from blur.tasks.base import TaskFamily

log = logging.getLogger("blur")

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.npz"
GENOME = "genome.json"
EVAL = "eval.json"


class RunDirError(ValueError):
    """The run folder is in a state that the command cannot use."""


def prepare_run_dir(config: RunConfig, resume: bool) -> Path:
    """Create (or, with ``resume``, check) the run folder and write ``config.json``."""
    run_dir = config.resolved_run_dir()
    if resume:
        if not (run_dir / CHECKPOINT).exists():
            raise RunDirError(
                f"{run_dir}: nothing to resume (no {CHECKPOINT}); start it without --resume"
            )
        return run_dir
    if (run_dir / CHECKPOINT).exists() or (run_dir / METRICS).exists():
        raise RunDirError(
            f"{run_dir} already holds a run; continue it with `--resume {run_dir}` or choose "
            "another folder with --run-dir"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / CONFIG, config_to_json(config) + "\n")
    return run_dir


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The resolved config of an existing run folder (for ``--resume``)."""
    path = Path(run_dir) / CONFIG
    try:
        config = config_from_json(path.read_text("utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path} not found: {run_dir} is not a blur run folder") from None
    except (ValueError, TypeError) as e:
        raise RunDirError(f"{path} is not a valid run config: {e}") from None
    return config.__class__(**{**config.__dict__, "run_dir": Path(run_dir)})


def initial_genome(config: RunConfig, num_layers: int, key: jax.Array) -> Genome:
    """The starting genome of a run (``genome_init``), per layer if the network asks for it."""
    L = num_layers if config.network.per_layer_genome else None
    options: dict[str, Any] = {}
    if config.genome_init == "delta":
        options["feedback"] = config.network.feedback
    rates = config.init_eta_tilde
    if len(rates) == 1:
        options["eta_tilde"] = rates[0]
    elif len(rates) > 1:
        if L is None or len(rates) != L:
            raise ValueError(
                f"init_eta_tilde has {len(rates)} values but the network has {num_layers} synapse"
                " layers" + ("" if L is not None else " and a shared genome")
                + ": give one value, or one per layer with network.per_layer_genome=True"
            )
        options["eta_tilde"] = rates
    if config.init_scale is not None:
        options["init_scale"] = config.init_scale
    return init_genome(config.genome_init, key, config.network.num_states, L, **options)


@dataclass
class Validator:
    """Held-out families and the best genome found so far on them (best-of-N selection)."""

    config: RunConfig
    families: tuple[TaskFamily, ...] = ()
    best_score: float = -np.inf
    best_step: int = -1
    best_run: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.families = tuple(build_family(t) for t in self.config.tasks.validate)

    def consider(self, scores: np.ndarray, genomes: list[Genome], step: int, run_dir: Path) -> bool:
        """Keep the best of ``scores`` [R]; write ``genome.json`` when it improves."""
        r = int(np.argmax(scores))
        if float(scores[r]) > self.best_score:
            self.best_score, self.best_step, self.best_run = float(scores[r]), step, r
            save_genome(
                genomes[r],
                run_dir / GENOME,
                step=step,
                run=r,
                meta_val_accuracy=self.best_score,
                preset=self.config.preset,
            )
            return True
        return False

    def state(self) -> dict[str, Any]:
        # -inf (nothing validated yet) is not JSON: stored as null.
        best = self.best_score if np.isfinite(self.best_score) else None
        return {"best_score": best, "best_step": self.best_step, "best_run": self.best_run}

    def restore(self, meta: dict[str, Any]) -> None:
        best = meta.get("best_score")
        self.best_score = -np.inf if best is None else float(best)  # 0.0 is a valid best
        self.best_step = int(meta.get("best_step", -1))
        self.best_run = int(meta.get("best_run", -1))


def progress_bar(total: int, initial: int, desc: str):  # noqa: ANN201
    """A tqdm bar on a TTY, silent otherwise."""
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, disable=not sys.stderr.isatty(), dynamic_ncols=True
    )


def log_record(run_dir: Path, record: dict[str, Any]) -> None:
    append_metrics(run_dir / METRICS, record)


def final_evaluation(config: RunConfig, genome: Genome, run_dir: Path) -> str:
    """Evaluate ``genome`` on the validation families vs tuned baselines; write eval.json."""
    ev = config.evaluation
    T = max(ev.report_steps)
    results = []
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 777)
    for family in Validator(config).families:
        spec = config.network.spec_for(family)
        results.append(
            evaluate_family(
                genome,
                spec,
                family,
                key,
                num_steps=T,
                num_tasks=ev.num_tasks,
                batch_size=ev.batch_size,
                query_size=ev.query_size,
                baselines=ev.baselines,
            )
        )
    table = format_table(results, ev.report_steps)
    write_text_atomic(
        run_dir / EVAL,
        json.dumps(
            {"report_steps": list(ev.report_steps), "results": results, "table": table}, indent=1
        ),
    )
    return table


class Timer:
    """Wall time that survives resumes (previous runs' time + this process's)."""

    def __init__(self, previous: float = 0.0) -> None:
        self.previous = previous
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return self.previous + time.perf_counter() - self.start
