"""``sgd-sweep`` (paper §4.3, Fig. 6): a genome against SGD with and without momentum, over four
decades of learning rates, up to 100 inner steps.

The paper's Fig. 6 ("Performance of 4-state BLUR network vs. SGD with different learning
rates") plots MNIST accuracy against step for BLUR and for SGD at learning rates spanning four
orders of magnitude. Here every curve comes from the one evaluation path
(:func:`blur.experiments.evaluation.evaluate`): the genome and every (optimiser, rate) pair of
:data:`blur.baselines.DEFAULT_LRS` (13 rates over four decades each) train on the same support
batches from the same init keys and are scored on the same query examples.

Scales: ``small`` (default) is the toy2d preset's initial genome on its network, on the six
held-out 2-D families (CPU minutes); ``paper`` is the mnist10 preset's initial genome
(K=4, hidden (256, 128)) on 28x28 MNIST test tasks; ``tiny`` is for tests.
``--genome FILE`` replaces the genome (with the network its file records).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from blur.experiments.config import build_family
from blur.experiments.evaluation import (
    Contender,
    FamilyEvaluation,
    contender_from_file,
    evaluate,
    format_table,
    to_json,
)
from blur.experiments.reproduce.common import (
    Outcome,
    finish,
    markdown_table,
    reproduce_preset,
    save_figure,
)
from blur.tasks import TOY2D_META_VAL

OPTIMIZERS = ("sgd", "momentum")
LABELS = {"sgd": "SGD w.o. momentum", "momentum": "SGD w/ momentum (0.9)"}


@dataclasses.dataclass(frozen=True)
class SweepScale:
    """Sizes of the sweep: the preset whose initial genome and network are used, the task
    families, N tasks per family of T steps of batch B, M query examples."""

    preset: str
    tasks: tuple[str, ...]
    num_tasks: int
    num_steps: int
    batch_size: int
    query_size: int


SCALES = {
    "tiny": SweepScale("toy2d", ("pie",), 2, 4, 16, 32),
    "small": SweepScale("toy2d", TOY2D_META_VAL, 8, 100, 128, 1000),
    "paper": SweepScale("mnist10", ("mnist?split=test",), 10, 100, 128, 2000),
}


def preset_contender(preset: str, seed: int = 0) -> Contender:
    """The initial genome of ``preset`` (what meta-training starts from) on its network."""
    from blur.experiments.runs import initial_genome

    config = reproduce_preset(preset)
    genome = initial_genome(config, config.network.num_layers, jax.random.PRNGKey(seed))
    return Contender(f"BLUR ({preset} init)", genome, config.network)


def pooled(results: list[FamilyEvaluation]) -> tuple[np.ndarray, dict[str, tuple[np.ndarray,
                                                                                 np.ndarray]]]:
    """Per-task curves pooled over families: (genome [N, T+1], {opt: (lrs [G], [G, N, T+1])})."""
    genome = np.concatenate([next(iter(r.genomes.values())) for r in results])
    base = {
        name: (results[0].baselines[name].lrs,
               np.concatenate([r.baselines[name].curves for r in results], axis=1))
        for name in results[0].baselines
    }
    return genome, base


def report_steps(num_steps: int) -> tuple[int, ...]:
    steps = tuple(t for t in (1, 10, 25, 50, 100) if t <= num_steps)
    return steps if num_steps in steps else (*steps, num_steps)


def sweep_rows(genome: np.ndarray, base: dict[str, tuple[np.ndarray, np.ndarray]],
               steps: tuple[int, ...]) -> list[dict[str, Any]]:
    """One row per step: the genome's mean accuracy, and per optimiser the best rate, its mean,
    and how many of the grid's rates the genome's mean beats."""
    rows = []
    for t in steps:
        row: dict[str, Any] = {"step": t, "genome": float(genome[:, t].mean())}
        for name, (lrs, curves) in base.items():
            means = curves[:, :, t].mean(axis=1)  # [G]
            g = int(np.argmax(means))
            row[name] = {
                "best_lr": float(lrs[g]), "best": float(means[g]),
                "worst": float(means.min()),
                "rates_beaten": int((genome[:, t].mean() > means).sum()),
                "num_rates": int(lrs.size),
                "per_lr": [float(m) for m in means],
            }
        rows.append(row)
    return rows


def plot(genome: np.ndarray, base: dict[str, tuple[np.ndarray, np.ndarray]], name: str,
         steps: tuple[int, ...], path: Path) -> Path:
    """Accuracy against step per learning rate (one panel per optimiser, the genome in black),
    and accuracy against learning rate at two steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(base) + 1, figsize=(5 * (len(base) + 1), 4))
    x = np.arange(genome.shape[1])
    g_mean = genome.mean(axis=0)
    for ax, (opt, (lrs, curves)) in zip(axes, base.items(), strict=False):
        cmap = plt.get_cmap("viridis")
        logs = np.log10(lrs)
        for i, lr in enumerate(lrs):
            frac = (logs[i] - logs.min()) / max(logs.max() - logs.min(), 1e-9)
            ax.plot(x, curves[i].mean(axis=0), color=cmap(frac), lw=1,
                    label=f"lr {lr:.3g}" if i % 3 == 0 else None)
        ax.plot(x, g_mean, color="k", lw=2.5, label=name)
        ax.set_title(f"{name} vs {LABELS.get(opt, opt)}", fontsize=9)
        ax.set_xlabel("inner step")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("query accuracy (mean over tasks)")
    ax = axes[-1]
    for t, style in ((steps[1] if len(steps) > 1 else steps[0], "--"), (steps[-1], "-")):
        for opt, (lrs, curves) in base.items():
            ax.semilogx(lrs, curves[:, :, t].mean(axis=1), style, marker="o", ms=3,
                        label=f"{opt} @ step {t}")
        ax.axhline(genome[:, t].mean(), color="k", ls=style, lw=1.5, label=f"{name} @ step {t}")
    ax.set_xlabel("learning rate")
    ax.set_ylim(0, 1)
    ax.set_title("accuracy vs learning rate", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def run(
    out: Path, scale: str = "small", seed: int = 0, command: str | None = None,
    genome: str | Path | None = None, tasks: tuple[str, ...] | None = None,
    num_tasks: int | None = None, query_size: int | None = None,
) -> Outcome:
    """Run the sweep and write ``sgd_sweep.png``, ``table.md`` and ``table.json``.

    Args:
      genome: a genome file (default: the scale's preset's initial genome).
      tasks: task families (default: the scale's).
      num_tasks, query_size: override the scale's tasks per family and query examples.
    """
    start = time.perf_counter()
    sizes = SCALES[scale]
    sizes = dataclasses.replace(sizes, num_tasks=num_tasks or sizes.num_tasks,
                                query_size=query_size or sizes.query_size)
    contender = (contender_from_file(Path(genome), "BLUR") if genome is not None
                 else preset_contender(sizes.preset, seed))
    families = tuple(tasks or sizes.tasks)
    out.mkdir(parents=True, exist_ok=True)
    results = evaluate(
        [contender], [build_family(f) for f in families], jax.random.PRNGKey(seed),
        num_steps=sizes.num_steps, num_tasks=sizes.num_tasks, batch_size=sizes.batch_size,
        query_size=sizes.query_size, baselines=OPTIMIZERS,
    )
    steps = report_steps(sizes.num_steps)
    g, base = pooled(results)
    rows = sweep_rows(g, base, steps)
    figure = plot(g, base, contender.name, steps, out / "sgd_sweep.png")
    head = ["step", contender.name]
    for opt in OPTIMIZERS:
        head += [f"{opt}: best (lr)", f"{opt}: worst", f"{opt}: rates beaten"]
    md_rows = []
    for r in rows:
        cells = [str(r["step"]), f"{100 * r['genome']:.1f}"]
        for opt in OPTIMIZERS:
            o = r[opt]
            cells += [f"{100 * o['best']:.1f} ({o['best_lr']:.3g})", f"{100 * o['worst']:.1f}",
                      f"{o['rates_beaten']}/{o['num_rates']}"]
        md_rows.append(cells)
    lrs_text = "; ".join(f"{opt}: {base[opt][0].min():.3g} .. {base[opt][0].max():.3g} "
                         f"({base[opt][0].size} rates)" for opt in OPTIMIZERS)
    evaluation = to_json(results, steps)
    markdown = (
        f"Query accuracy (%), mean over {g.shape[0]} tasks ({len(families)} families x "
        f"{sizes.num_tasks}), batch {sizes.batch_size}, {sizes.query_size} query examples; "
        f"rates {lrs_text}.\n\n" + markdown_table(head, md_rows)
        + "\n\nPer family, with the paired difference to the oracle-tuned rate (95% CI):\n\n```\n"
        + format_table(evaluation["rows"]) + "\n```"
    )
    table = {
        "genome": contender.name,
        "network": dataclasses.asdict(contender.network),
        "scale": dataclasses.asdict(sizes) | {"tasks": list(families)},
        "lrs": {opt: base[opt][0].tolist() for opt in OPTIMIZERS},
        "rows": rows,
        "evaluation": evaluation,
    }
    options = {"genome": str(genome) if genome is not None else None,
               "tasks": list(families), "num_tasks": sizes.num_tasks,
               "query_size": sizes.query_size}
    return finish(out, "sgd-sweep", scale, seed, start, [figure], table, markdown, options,
                  command)
