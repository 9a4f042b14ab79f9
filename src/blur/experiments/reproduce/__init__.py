"""``blur reproduce``: one command per experiment of the paper (issue 13).

Every experiment of the issue is in :data:`EXPERIMENTS`, implemented or not, with the paper
section it reproduces and its estimated CPU time at the default scale. An implemented one is a
module of this package with a ``run(out, scale, seed, **options) -> Outcome`` function; it
writes a run folder holding its figure(s) as PNG, ``table.md``, ``table.json`` and
``run.json`` (command, scale, wall time, machine). Running one that is not implemented raises
:class:`ExperimentNotImplementedError`, which says so.

Scales: ``tiny`` (tests: seconds), ``small`` (default: fits a 2-core CPU) and ``paper`` (the
paper's size; a GPU where the experiment is large).
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any, Literal

Scale = Literal["tiny", "small", "paper"]
SCALES: tuple[str, ...] = ("tiny", "small", "paper")


class ExperimentNotImplementedError(ValueError):
    """The experiment is listed by the issue but has no implementation yet."""


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One experiment of the paper.

    Attributes:
      name: the command's argument, e.g. ``symmetry``.
      section: where it is in the paper (section, figures, appendix).
      reproduces: what the experiment shows, in one line.
      cpu_time: estimated wall time at the default (small) scale on a 2-core CPU; for an
        experiment not implemented yet, the issue's budget (marked as a target).
      module: the module under this package that runs it; None while not implemented.
      missing: for an unimplemented experiment, what is missing.
    """

    name: str
    section: str
    reproduces: str
    cpu_time: str
    module: str | None = None
    missing: str = ""

    @property
    def implemented(self) -> bool:
        return self.module is not None


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("symmetry", "§3.5, Fig. 2, App. A",
               "is a learned rule gradient descent? Jacobian symmetry and the generalised-GD "
               "metric test", "9 min (measured: 536 s, 2-core CPU under load ~16)", "symmetry"),
    Experiment("toy", "§4.1, Figs. 3-4",
               "meta-train on xor/and/two-moons, validate on the held-out 2-D group",
               "2 min (measured: 138 s, 2-core CPU, 2026-11-29)", "toy"),
    Experiment("mnist-generalisation", "§4.2, Figs. 5, 11",
               "a 10x10-MNIST genome trains 28x28 MNIST / Fashion / EMNIST / KMNIST vs SGD",
               "3 min (measured: 170 s; the shipped per-layer genome: one depth)",
               "mnist_generalisation"),
    Experiment("omniglot", "§4.5 (Fig. 9's setting)",
               "Omniglot 10-way meta-training, evaluated on unseen class subsets and MNIST",
               "5 min (measured: 304 s, beside 1-2 other jobs)", "omniglot"),
    Experiment("sgd-sweep", "§4.3, Fig. 6",
               "a genome vs SGD with and without momentum over 4 decades of learning rates",
               "3 min (measured: 167 s, 2-core CPU under load ~16)", "sgd_sweep"),
    Experiment("cma-vs-gradient", "§4.4, Fig. 7",
               "CMA-ES and gradient meta-training on the same task, accuracy vs meta-step",
               "3 min (measured: 178 s, beside 1 other job)", "cma_vs_gradient"),
    Experiment("normalisation", "§4.5, Fig. 8",
               "neuron normalisation: none / forward / backward / both",
               "9 min (measured: 525 s, beside another job)",
               "normalisation"),
    Experiment("variants", "§4.5, Fig. 9, App. C.7",
               "symmetric/asymmetric x single/multi-state synapses x backprop/random init",
               "11 min (measured: 687 s, beside 1-2 other jobs)",
               "variants"),
    Experiment("depth-transfer", "§4.5, Fig. 10",
               "meta-train at one depth, evaluate at others, both directions",
               "7 min (measured: 415 s)", "depth_transfer"),
    Experiment("activations", "§4.5, App. C.2, Fig. 12",
               "forward/backward non-linearity pairs",
               "13 min (measured: 800 s, beside 2-3 other jobs)",
               "activations"),
    Experiment("states", "App. C.3, Fig. 13", "number of states K = 2, 3, 4, 8",
               "10 min (measured: 599 s, beside a test run)",
               "states"),
    Experiment("stability", "App. C.5-C.6, Figs. 15-16",
               "800 steps with Oja / synapse normalisation, labels randomised at step 500",
               "18 min (measured: 1,104 s, beside 2-3 other jobs)", "stability"),
    Experiment("unsupervised", "§5 (future work)",
               "synapse updates after the forward pass, before any label",
               "2 min (measured: 91 s; a shipped genome, no meta-training)",
               "unsupervised"),
]}


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; ``ValueError`` lists the valid names."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise ValueError(
            f"unknown experiment {name!r}; choose one of {list(EXPERIMENTS)} "
            "(`blur reproduce --list`)"
        ) from None


def check_runnable(name: str) -> Experiment:
    """The experiment ``name`` if it can run.

    Raises:
      ValueError: unknown experiment.
      ExperimentNotImplementedError: listed by the issue but not implemented yet (says what is
        missing).
    """
    exp = get_experiment(name)
    if exp.module is None:
        raise ExperimentNotImplementedError(
            f"experiment {name!r} ({exp.section}) is not implemented yet: {exp.missing}. "
            f"Implemented: {[e.name for e in EXPERIMENTS.values() if e.implemented]}"
        )
    return exp


def run_experiment(
    name: str, out: str | Path, scale: Scale = "small", seed: int = 0,
    command: str | None = None, **options: Any,
) -> Any:
    """Run experiment ``name`` into the folder ``out``; returns its module's ``Outcome``.

    ``command`` (the command line, if any) is recorded in ``run.json``; ``options`` go to the
    experiment (e.g. ``genome=PATH``).

    Raises:
      ValueError: unknown experiment or scale.
      ExperimentNotImplementedError: the experiment is listed but not implemented yet.
    """
    exp = check_runnable(name)
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {list(SCALES)}")
    module = importlib.import_module(f"{__name__}.{exp.module}")
    return module.run(Path(out), scale=scale, seed=seed, command=command, **options)
