"""Run folders: names, creation and checks, the resolved config, the initial genome, timing.

Used by the run loop (:mod:`blur.experiments.loop`) and the commands that read run folders.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from blur.experiments.config import RunConfig, config_from_json, config_to_json
from blur.genome import Genome, init_genome
from blur.io.atomic import write_text_atomic

log = logging.getLogger("blur")

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.npz"
GENOME = "genome.json"
UNCALIBRATED = "genome_uncalibrated.json"  # the selected genome before calibration
EVAL = "eval.json"


class RunDirError(ValueError):
    """The run folder is in a state that the command cannot use."""


def prepare_run_dir(config: RunConfig, resume: bool, write: bool = True) -> Path:
    """Create (or, with ``resume``, check) the run folder and write ``config.json``.

    ``write=False`` (a process other than 0 of a multi-process run): only the path, and the
    resume check; the folder is process 0's to create.
    """
    run_dir = config.resolved_run_dir()
    if resume:
        if not (run_dir / CHECKPOINT).exists():
            raise RunDirError(
                f"{run_dir}: nothing to resume (no {CHECKPOINT}); start it without --resume"
            )
        return run_dir
    if not write:
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
    genome = init_genome(config.genome_init, key, config.network.num_states, L, **options)
    return _with_fwd_norm_shift(genome, config)


def _with_fwd_norm_shift(genome: Genome, config: RunConfig) -> Genome:
    """``config.init_fwd_norm_shift`` written into the genome's forward-normalisation shift.

    The values are states 0..n-1 of every hidden layer (n <= K; the other states start at 0,
    so a preset's value carries over to a network with more states). A per-layer genome's
    output layer keeps 0; a shared genome has one shift for all layers. Like every genome
    field, the shift is carried (and meta-trained) whatever the network; it is read only
    where the forward pass is normalised (``network.neuron_norm``).
    """
    values = config.init_fwd_norm_shift
    if not values:
        return genome
    shape = genome.fwd_norm_shift.shape  # [K], or [L, K] per layer
    K = shape[-1]
    if len(values) > K:
        raise ValueError(
            f"init_fwd_norm_shift has {len(values)} values but the network has K={K} states:"
            f" give at most {K} (states 0..{K - 1} of the hidden layers)"
        )
    row = np.zeros(K, np.float32)
    row[: len(values)] = values
    if len(shape) == 2:
        shift = np.zeros(shape, np.float32)
        shift[:-1] = row  # every hidden layer; the output layer keeps 0
    else:
        shift = row
    return genome.replace(fwd_norm_shift=jnp.asarray(shift))


def progress_bar(total: int, initial: int, desc: str, show: bool = True):  # noqa: ANN201
    """A tqdm bar on a TTY, silent otherwise (or with ``show=False``)."""
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, disable=not (show and sys.stderr.isatty()),
        dynamic_ncols=True,
    )


def dump_json(data: Any) -> str:
    """Indented JSON text for the run folder's files (NaN and inf refused)."""
    return json.dumps(data, indent=1, allow_nan=False) + "\n"


class Timer:
    """Wall time that survives resumes (previous runs' time + this process's)."""

    def __init__(self, previous: float = 0.0) -> None:
        self.previous = previous
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return self.previous + time.perf_counter() - self.start
