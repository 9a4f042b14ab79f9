"""``toy`` (paper §4.1, Figs. 3-4): meta-train on xor / and / two-moons, validate on the
held-out 2-D group.

One genome is meta-trained with the one run loop (the shared ablation driver's
:func:`~blur.experiments.reproduce.ablation.train_all`: best of N runs, selected on the
held-out families) and evaluated with the one evaluation path
(:func:`blur.experiments.evaluation.evaluate`) beside tuned SGD on fresh tasks of

* the meta-training families (``meta-train``) and
* the held-out meta-validation families (``meta-val``),

with two spreads (paper Fig. 4 shows both):

* over **runs**: every run's final genome (from the run's checkpoint, via
  ``GradientTrainer.candidates``) on the same tasks: the range of the per-run means;
* over **synapse inits**: the selected genome on the same tasks from ``num_inits`` sets of
  synapse-init keys: the standard deviation of the per-init means.

``toy-regions.png`` shows the selected genome's decision regions on a dense grid over
``[-1, 1]^2``: for one task of each held-out family, a fresh network trained for T steps with
the genome (:func:`blur.inner.unroll`), then :func:`blur.inner.predict` on the grid; the task's
true boundary is drawn where the family has one (not ``blob5``, whose labels are sampled).

Scales: ``tiny`` (tests) the ablation driver's tiny toy run (1 run, 2 meta-steps, xor -> pie);
``small`` the toy2d preset with 200 meta-steps and best of 2 runs; ``paper`` the toy2d preset
unchanged (600 meta-steps, best of 4).
"""

from __future__ import annotations

import dataclasses
import textwrap
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from blur.experiments.config import EvalSettings, RunConfig, build_family, get_preset
from blur.experiments.evaluation import (
    Contender,
    FamilyEvaluation,
    evaluate,
    genome_curves,
    sample_tasks,
)
from blur.experiments.reproduce.ablation import (
    EVAL_KEY,
    Trained,
    Variant,
    base_config,
    pooled_curve,
    train_all,
)
from blur.experiments.reproduce.common import Outcome, finish, markdown_table, save_figure
from blur.genome import Genome
from blur.inner import predict, unroll_jit
from blur.network import init_state

NUM_INITS = {"tiny": 2, "small": 4, "paper": 8}
GRID = {"tiny": 40, "small": 120, "paper": 200}
SELECTED = "selected"


def config_at(scale: str, seed: int, meta_steps: int | None, num_runs: int | None) -> RunConfig:
    """The run config of the scale (module docstring)."""
    if scale == "paper":
        c = get_preset("toy2d")
        g = dataclasses.replace(c.gradient, meta_steps=meta_steps or c.gradient.meta_steps,
                                num_runs=num_runs or c.gradient.num_runs)
        return dataclasses.replace(c, seed=seed, gradient=g)
    return base_config(scale, seed, meta_steps, num_runs)


def run_genomes(trained: Trained) -> list[Genome]:
    """Every run's final genome, read from the run folder's checkpoint (the candidates the
    meta-optimiser holds at the end; a dropped run's is included too)."""
    from blur.experiments import loop, runs
    from blur.io.checkpoint import load_checkpoint, load_meta
    from blur.outer.gradient import unstack

    config = dataclasses.replace(trained.variant.config, run_dir=trained.run_dir)
    path = Path(trained.run_dir or "") / runs.CHECKPOINT
    trainer = loop.make_trainer(config, trained.genome)
    meta = load_meta(path)
    tree, meta = load_checkpoint(path, like=trainer.checkpoint_template(meta))
    genomes, _ = trainer.candidates(trainer.from_checkpoint(tree, meta))
    return list(unstack(genomes))


def init_curves(contender: Contender, families: list[str], key: jax.Array, num_steps: int,
                settings: EvalSettings, num_inits: int) -> np.ndarray:
    """Mean query accuracy over all tasks [num_inits, T + 1] of the contender on the tasks that
    :func:`evaluate` samples with ``key``, each row from another set of synapse-init keys."""
    rows = []
    for i in range(num_inits):
        curves = []
        for f, name in enumerate(families):
            family = build_family(name)
            k = jax.random.fold_in(key, f) if len(families) > 1 else key
            ep = sample_tasks(family, k, settings.num_tasks, num_steps, settings.batch_size,
                              settings.query_size)
            # init 0 is evaluate()'s own init keys; the others are fresh ones.
            ik = jax.random.fold_in(k, 1) if i == 0 else jax.random.fold_in(k, 1000 + i)
            keys = jax.random.split(ik, settings.num_tasks)
            curves.append(np.asarray(genome_curves(contender.genome, contender.spec_for(family),
                                                   ep.support, ep.query, keys)))
        rows.append(np.concatenate(curves).mean(axis=0))
    return np.stack(rows)


def regions(genome: Genome, config: RunConfig, families: list[str], key: jax.Array,
            num_steps: int, grid: int) -> list[dict[str, Any]]:
    """One held-out task per family: the genome's predicted class on a ``grid x grid`` mesh of
    ``[-1, 1]^2`` after ``num_steps`` steps of batch ``config.evaluation.batch_size``, the
    task's true labels on the mesh (None for sampled labels) and the last support batch."""
    axis = np.linspace(-1.0, 1.0, grid, dtype=np.float32)
    xx, yy = np.meshgrid(axis, axis)
    points = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], axis=1))
    out = []
    for f, name in enumerate(families):
        family = build_family(name)
        k = jax.random.fold_in(key, f)
        ep = family.sample(k, num_steps, config.evaluation.batch_size, 1, 1)
        spec = config.network.spec_for(family)
        state = init_state(jax.random.fold_in(k, 1), genome, spec,
                           config.evaluation.batch_size)
        final, _ = unroll_jit(genome, spec, state, ep.support)
        pred = np.asarray(jnp.argmax(predict(genome, spec, final, points), axis=-1))
        truth = None
        if getattr(family, "kind", "blobs") != "blobs" and hasattr(family, "label"):
            truth = np.asarray(family.label(k, points)).reshape(grid, grid)
        acc = float(np.mean(pred == truth.ravel())) if truth is not None else None
        out.append({"family": name, "pred": pred.reshape(grid, grid), "truth": truth,
                    "grid_accuracy": acc, "x": np.asarray(ep.support.x[-1]),
                    "y": np.asarray(ep.support.y[-1]), "num_classes": family.num_classes})
    return out


def summary(curves: dict[str, np.ndarray], runs_: list[str], inits: np.ndarray,
            step: int) -> dict[str, Any]:
    """A table cell at ``step``: the selected genome's mean over tasks, the range of the runs'
    means, the s.d. over init sets, SGD's mean."""
    run_means = [float(curves[r].mean(axis=0)[step]) for r in runs_]
    return {
        "mean": float(curves[SELECTED].mean(axis=0)[step]),
        "runs": run_means, "runs_min": min(run_means), "runs_max": max(run_means),
        "inits": inits[:, step].tolist(), "inits_sd": float(np.std(inits[:, step], ddof=1))
        if inits.shape[0] > 1 else float("nan"),
        "sgd": float(curves["sgd"].mean(axis=0)[step]),
    }


def plot_curves(groups: dict[str, dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.2), squeeze=False)
    for ax, (name, g) in zip(axes[0], groups.items(), strict=True):
        curves, runs_, inits = g["curves"], g["runs"], g["inits"]
        steps = np.arange(curves[SELECTED].shape[1])
        run_means = np.stack([curves[r].mean(axis=0) for r in runs_])
        ax.fill_between(steps, run_means.min(axis=0), run_means.max(axis=0), color="C0",
                        alpha=0.2, label=f"range over {len(runs_)} runs")
        m, sd = inits.mean(axis=0), inits.std(axis=0, ddof=1) if len(inits) > 1 else 0 * steps
        ax.fill_between(steps, m - sd, m + sd, color="C1", alpha=0.3,
                        label=f"± s.d. over {len(inits)} synapse inits")
        ax.plot(steps, curves[SELECTED].mean(axis=0), color="C0", lw=2, label="selected genome")
        ax.plot(steps, curves["sgd"].mean(axis=0), color="k", lw=1.5,
                label="SGD (tuned per step)")
        ax.set_title(f"{name}: {', '.join(g['families'])}", fontsize=8)
        ax.set_xlabel("inner step")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("query accuracy (mean over tasks)")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def plot_regions(panels: list[dict[str, Any]], path: Path, num_steps: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, p in zip(axes.ravel(), panels, strict=False):
        c = p["num_classes"]
        ax.imshow(p["pred"], origin="lower", extent=(-1, 1, -1, 1), cmap="tab10",
                  vmin=0, vmax=9, alpha=0.45, interpolation="nearest")
        if p["truth"] is not None:
            ax.contour(np.linspace(-1, 1, p["truth"].shape[0]),
                       np.linspace(-1, 1, p["truth"].shape[0]), p["truth"], levels=[0.5],
                       colors="k", linewidths=1)
        ax.scatter(p["x"][:, 0], p["x"][:, 1], c=p["y"], cmap="tab10", vmin=0, vmax=9, s=8,
                   edgecolors="k", linewidths=0.3)
        acc = p["grid_accuracy"]
        extra = f", grid acc {100 * acc:.0f}%" if acc is not None else f", {c} classes"
        ax.set_title(f"{p['family']}{extra}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(textwrap.fill(f"Decision regions after {num_steps} steps (fill: predicted "
                               "class; black line: true boundary; dots: last support batch)",
                               45 * cols), fontsize=8)
    return save_figure(fig, path)


def run(
    out: Path, scale: str = "small", seed: int = 0, command: str | None = None,
    meta_steps: int | None = None, num_runs: int | None = None,
) -> Outcome:
    """Meta-train one genome on the toy tasks and report it; writes ``toy.png``,
    ``toy-regions.png``, ``table.md``, ``table.json``.

    Args:
      meta_steps, num_runs: override the scale's meta-steps and best-of-N runs.
    """
    start = time.perf_counter()
    config = config_at(scale, seed, meta_steps, num_runs)
    out.mkdir(parents=True, exist_ok=True)
    variant = Variant("toy", config, "meta-trained on the toy2d preset's tasks")
    trained = train_all([variant], out)["toy"]
    per_run = run_genomes(trained)
    settings = config.evaluation
    steps = tuple(settings.report_steps)
    num_steps = max(steps)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), EVAL_KEY)
    run_names = [f"run{i}" for i in range(len(per_run))]
    contenders = [Contender(SELECTED, trained.genome, config.network)]
    contenders += [Contender(n, g, config.network) for n, g in zip(run_names, per_run,
                                                                     strict=True)]
    sets = {"meta-train": list(config.tasks.train),
            "meta-val": list(config.tasks.evaluation_families())}
    groups: dict[str, dict[str, Any]] = {}
    for g, (name, families) in enumerate(sets.items()):
        k = jax.random.fold_in(key, g)
        results: list[FamilyEvaluation] = evaluate(
            contenders, [build_family(f) for f in families], k, num_steps=num_steps,
            num_tasks=settings.num_tasks, batch_size=settings.batch_size,
            query_size=settings.query_size, baselines=("sgd",),
            baseline_hidden=config.network.hidden)
        curves = {c.name: pooled_curve(results, c.name) for c in contenders}
        curves["sgd"] = pooled_curve(results, "sgd")
        inits = init_curves(contenders[0], families, k, num_steps, settings, NUM_INITS[scale])
        groups[name] = {"families": families, "curves": curves, "runs": run_names,
                        "inits": inits}
    title = "Toy 2-D tasks (§4.1, Figs. 3-4)"
    figures = [plot_curves(groups, out / "toy.png", title)]
    panels = regions(trained.genome, config, sets["meta-val"], jax.random.fold_in(key, 99),
                     num_steps, GRID[scale])
    figures.append(plot_regions(panels, out / "toy-regions.png", num_steps))

    rows = []
    for s in steps:
        row: dict[str, Any] = {"step": int(s)}
        for name, g in groups.items():
            row[name] = summary(g["curves"], g["runs"], g["inits"], s)
        rows.append(row)
    head = ["step"]
    for name in groups:
        head += [f"{name}", f"{name} runs (min–max)", f"{name} inits (s.d.)", f"{name} SGD"]
    body = []
    for row in rows:
        cells = [str(row["step"])]
        for name in groups:
            c = row[name]
            cells += [f"{100 * c['mean']:.1f}",
                      f"{100 * c['runs_min']:.1f}–{100 * c['runs_max']:.1f}",
                      f"{100 * c['inits_sd']:.1f}", f"{100 * c['sgd']:.1f}"]
        body.append(cells)
    num = groups["meta-train"]["curves"][SELECTED].shape[0]
    caption = (
        f"{title}. Query accuracy (%) of the selected genome (best of "
        f"{config.gradient.num_runs} runs x {config.gradient.meta_steps} meta-steps, "
        f"meta-val {100 * (trained.best_score or float('nan')):.1f}% at meta-step "
        f"{trained.best_step}), mean over {num} meta-train and "
        f"{groups['meta-val']['curves'][SELECTED].shape[0]} meta-val tasks "
        f"({settings.num_tasks} per family), batch {settings.batch_size}, "
        f"{settings.query_size} query examples. runs: the range of the mean over the same "
        "tasks of each run's final genome; inits: the s.d. of the selected genome's mean over "
        f"{NUM_INITS[scale]} sets of synapse inits; SGD: tuned per step on the same batches."
    )
    grid_rows = [[p["family"], "—" if p["grid_accuracy"] is None
                  else f"{100 * p['grid_accuracy']:.1f}"] for p in panels]
    text = (caption + "\n\n" + markdown_table(head, body)
            + f"\n\nDecision regions (toy-regions.png): accuracy (%) on the {GRID[scale]}^2 "
            f"grid after {num_steps} steps, one task per held-out family.\n\n"
            + markdown_table(["family", "grid accuracy"], grid_rows))
    table = {
        "experiment": "toy",
        "network": dataclasses.asdict(config.network),
        "meta_steps": config.gradient.meta_steps, "num_runs": config.gradient.num_runs,
        "meta_val": trained.best_score, "best_step": trained.best_step,
        "run_dir": str(trained.run_dir), "families": sets,
        "evaluation": dataclasses.asdict(settings), "num_inits": NUM_INITS[scale],
        "rows": rows,
        "mean_curves": {name: {m: c.mean(axis=0).tolist() for m, c in g["curves"].items()}
                        for name, g in groups.items()},
        "regions": [{"family": p["family"], "grid_accuracy": p["grid_accuracy"]}
                    for p in panels],
    }
    options = {"meta_steps": meta_steps, "num_runs": num_runs}
    return finish(out, "toy", scale, seed, start, figures, table, text, options, command)
