"""``cma-vs-gradient`` (paper §4.4, Fig. 7): both meta-optimisers on the same task and network.

The paper: "Using CMA to learn best non-differentiable accuracy objective, against gradient
based meta training ... Both methods show best run out of 8" (512 hidden, 2 states, 14x14
MNIST, population 80, "0.84 accuracy in 400 steps").

Here the same base config (network, initial genome, training and validation tasks, seed) is
meta-trained twice with the one run loop (:func:`blur.experiments.loop.run`, through the
ablation driver): once with ``method="gradient"`` (best of N runs, the T curriculum) and once
with ``method="cma"`` (CMA-ES on the accuracy after T steps, T = the gradient run's final T,
every candidate from its own synapse init). Both are validated on the same held-out tasks after
the same number of inner steps, so their ``metrics.jsonl`` validation rows compare directly:
``validation.png`` and the second table give
meta-validation accuracy against meta-step / generation (and wall time). Both selected genomes
are then evaluated beside tuned SGD on the same held-out tasks (the first table and figure).

A meta-step and a generation do not cost the same: a gradient step differentiates N unrolls
(N = best-of-N runs), a generation runs ``popsize`` forward unrolls; the wall-time axis shows
what each cost on this machine.

Scales: ``tiny`` (tests) the tiny toy run (2 meta-steps / 2 generations of 4); ``small`` the
toy2d preset's network and tasks, 200 meta-steps (best of 2 runs) against 200 generations of 16;
``paper`` the mnist10 preset (800 meta-steps, best of 4) against 400 generations of 80.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from blur.experiments.config import EvolutionSettings, RunConfig
from blur.experiments.reproduce.ablation import (
    EVAL_KEY,
    Probe,
    Trained,
    Variant,
    base_config,
    evaluate_probes,
    train_all,
    write_report,
)
from blur.experiments.reproduce.common import Outcome, markdown_table, save_figure
from blur.outer.evolution import CMAConfig

GENERATIONS = {"tiny": 2, "small": 200, "paper": 400}
POPSIZE = {"tiny": 4, "small": 16, "paper": 80}


def make_variants(scale: str, seed: int = 0, meta_steps: int | None = None,
                  num_runs: int | None = None, generations: int | None = None,
                  popsize: int | None = None) -> list[Variant]:
    """The gradient and the CMA-ES run config on one base (module docstring)."""
    for name, value in (("generations", generations), ("popsize", popsize)):
        if value is not None and (not isinstance(value, int) or value < 2):
            raise ValueError(f"{name}={value!r} must be an integer >= 2 (or None for the "
                             "scale's default)")
    base = base_config(scale, seed, meta_steps, num_runs)
    horizon = base.final_num_steps()
    base = dataclasses.replace(base, validate_num_steps=horizon)
    gens = generations or GENERATIONS[scale]
    grad_cfg: RunConfig = base
    cma_cfg = dataclasses.replace(
        base, method="cma",
        objective=dataclasses.replace(base.objective, num_steps=horizon),
        evolution=EvolutionSettings(generations=gens, cma=CMAConfig(
            popsize=popsize or POPSIZE[scale], sigma0=0.3, seed=seed, fresh_init=True)),
        # validate about as often as the gradient run does, relative to the run's length
        validate_every=max(1, round(gens * base.validate_every / base.gradient.meta_steps)),
        checkpoint_every=max(1, round(gens * base.checkpoint_every / base.gradient.meta_steps)),
    )
    return [
        Variant("gradient", grad_cfg, f"gradient meta-training, best of "
                f"{base.gradient.num_runs} runs x {base.gradient.meta_steps} meta-steps"),
        Variant("cma", cma_cfg, f"CMA-ES, {gens} generations of {cma_cfg.evolution.cma.popsize}"
                f", fitness = accuracy after {horizon} steps"),
    ]


def validation_curve(trained: Trained) -> dict[str, list[float]]:
    """The run's validation rows (``metrics.jsonl``): step, the best candidate's accuracy at
    that validation (max over runs; CMA-ES: its mean), the best so far, wall time (s)."""
    from blur.experiments import runs
    from blur.io.metrics import read_metrics

    rows = [r for r in read_metrics(Path(trained.run_dir or "") / runs.METRICS)
            if r.get("kind") == "validation"]
    return {
        "step": [int(r["step"]) for r in rows],
        "accuracy": [float(np.max(r["meta_val_accuracy"])) for r in rows],
        "best": [float(r["best_meta_val_accuracy"]) for r in rows],
        "wall_s": [float(r["wall_time"]) for r in rows],
    }


def plot_validation(curves: dict[str, dict[str, list[float]]], path: Path,
                    units: dict[str, str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, c in curves.items():
        for ax, x in zip(axes, ("step", "wall_s"), strict=True):
            line, = ax.plot(c[x], c["accuracy"], marker="o", ms=3, lw=1.5,
                            label=f"{name} (per {units[name]})")
            ax.plot(c[x], c["best"], ls="--", lw=1, color=line.get_color(),
                    label=f"{name}: best so far")
    axes[0].set_xlabel("meta-step (gradient) / generation (CMA-ES)")
    axes[1].set_xlabel("meta-training wall time (s)")
    for ax in axes:
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("meta-validation accuracy")
    fig.suptitle("CMA-ES vs gradient meta-training (§4.4, Fig. 7): held-out validation "
                 "accuracy", fontsize=10)
    return save_figure(fig, path)


def run(
    out: Path, scale: str = "small", seed: int = 0, command: str | None = None,
    meta_steps: int | None = None, num_runs: int | None = None,
    generations: int | None = None, popsize: int | None = None,
) -> Outcome:
    """Meta-train with both methods, compare their validation curves, evaluate both genomes
    against SGD; writes ``cma-vs-gradient.png``, ``validation.png``, ``table.md``/``.json``.

    Args:
      meta_steps, num_runs: the gradient run's meta-steps and best-of-N (default: the scale's).
      generations, popsize: the CMA-ES run's (default: the scale's).
    """
    start = time.perf_counter()
    variants = make_variants(scale, seed, meta_steps, num_runs, generations, popsize)
    out.mkdir(parents=True, exist_ok=True)
    trained = train_all(variants, out)
    first = variants[0].config
    families = first.tasks.evaluation_families()
    groups = evaluate_probes(trained, [Probe(v.name, v.name) for v in variants], families,
                             first.evaluation,
                             jax.random.fold_in(jax.random.PRNGKey(seed), EVAL_KEY))
    curves = {name: validation_curve(t) for name, t in trained.items()}
    units = {"gradient": "meta-step", "cma": "generation"}
    figure = plot_validation(curves, out / "validation.png", units)
    head = ["method", "validations", "first", "last", "best (at)", "meta-training wall (s)"]
    body = []
    for name, c in curves.items():
        t = trained[name]
        body.append([
            name, str(len(c["step"])), f"{100 * c['accuracy'][0]:.1f}",
            f"{100 * c['accuracy'][-1]:.1f}",
            f"{100 * max(c['best']):.1f} ({units[name]} {t.best_step})",
            f"{t.wall_s:.1f}",
        ])
    cma = variants[1].config
    notes = (
        f"Meta-validation accuracy (%) during meta-training, on the same held-out tasks "
        f"({', '.join(first.tasks.validate)}, {first.validate_tasks} tasks) after "
        f"{first.validation_steps()} inner steps; gradient: max over its "
        f"{first.gradient.num_runs} runs at each validation (every {first.validate_every} "
        f"meta-steps), CMA-ES: the distribution mean (every {cma.validate_every} generations "
        f"of {cma.evolution.cma.popsize}). Curves: validation.png.\n\n"
        + markdown_table(head, body)
    )
    options = {"meta_steps": meta_steps, "num_runs": num_runs, "generations": generations,
               "popsize": popsize}
    extra: dict[str, Any] = {"validation": curves, "methods": {
        v.name: {"method": v.config.method, "description": v.description} for v in variants}}
    return write_report(out, "cma-vs-gradient", scale, seed, start, groups, trained, variants,
                        first.evaluation, families,
                        "CMA-ES vs gradient meta-training (§4.4, Fig. 7): both selected "
                        "genomes against tuned SGD", options, command, extra=extra,
                        figures=[figure], notes=notes)
