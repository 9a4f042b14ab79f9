"""The shared driver of the ablations (paper §4.5 and App. C: Figs. 8-10, 12-13, 15-16).

An ablation is a list of :class:`Variant`: run configs derived from one base config that differ
in one setting (the number of states, the neuron normalisation, ...). The driver

1. meta-trains every variant with the one run loop (:func:`blur.experiments.loop.run`,
   gradient meta-training, best-of-N selection on the held-out validation families) into
   ``OUT/runs/NAME`` (a finished or interrupted run there is resumed, never redone);
2. evaluates every selected genome with the one evaluation path
   (:func:`blur.experiments.evaluation.evaluate`, ``summarize``, ``format_table``) beside
   tuned SGD on the same tasks: the same support batches, synapse-init keys and query
   examples for every variant and for SGD, so differences are paired;
3. writes one table row per :class:`Probe` (a variant's genome on a network, by default the one
   it was trained on): accuracy at the report steps and the paired difference to SGD with its
   95% interval, and one accuracy-against-step curve per probe (one panel per evaluated
   network).

Scales (:func:`base_config`): ``tiny`` (tests: a 1-run, 2-meta-step toy run, 2 evaluation
tasks), ``small`` (the ``toy2d`` preset as pinned by :func:`.common.reproduce_preset`, with
200 meta-steps and best of 2 runs per variant,
evaluated as the preset is: 16 tasks of each of the six held-out 2-D families) and ``paper``
(the ``mnist10`` preset as pinned there: K=4, hidden (256, 128), 10x10 MNIST meta-training, 28x28
MNIST and Fashion-MNIST evaluation; the paper trained longer, 10,000 meta-steps per curriculum
stage, and kept the best of 8 runs).
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from blur.experiments.config import (
    EvalSettings,
    RunConfig,
    TaskConfig,
    build_family,
    config_from_json,
    config_to_json,
)
from blur.experiments.evaluation import (
    Contender,
    FamilyEvaluation,
    evaluate,
    format_table,
    summarize,
    verdict,
)
from blur.experiments.reproduce.common import (
    Outcome,
    finish,
    markdown_table,
    reproduce_preset,
    save_figure,
)
from blur.genome import Genome
from blur.outer.gradient import Curriculum
from blur.tasks.base import Episode, TaskFamily

EVAL_KEY = 777
"""The evaluation key is ``fold_in(PRNGKey(seed), 777)``, as in a run's final evaluation."""


@dataclasses.dataclass(frozen=True)
class Variant:
    """One setting of an ablation: a name (the table's row) and its full run config."""

    name: str
    config: RunConfig
    description: str = ""


@dataclasses.dataclass(frozen=True)
class Probe:
    """One table row and curve: variant ``variant``'s genome trained on a network.

    ``hidden``: the hidden widths it is evaluated at; None: those it was meta-trained at.
    """

    name: str
    variant: str
    hidden: tuple[int, ...] | None = None


@dataclasses.dataclass
class Trained:
    """A meta-trained variant: its selected genome, how it was selected, and the
    meta-optimiser's counters (``skipped`` updates per run, ``dropped`` runs)."""

    variant: Variant
    genome: Genome
    best_score: float | None
    best_step: int | None
    wall_s: float
    run_dir: Path | None
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Group:
    """The probes evaluated on one network (hidden widths), beside SGD on that network."""

    hidden: tuple[int, ...]
    probes: list[Probe]
    results: list[FamilyEvaluation]


# ------------------------------------------------------------------ scales and variants


def base_config(scale: str, seed: int = 0, meta_steps: int | None = None,
                num_runs: int | None = None) -> RunConfig:
    """The base run config of every ablation at ``scale`` (module docstring).

    ``meta_steps`` and ``num_runs`` override the scale's meta-steps and best-of-N runs.
    """
    for name, value in (("meta_steps", meta_steps), ("num_runs", num_runs)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name}={value!r} must be a positive integer (or None for the "
                             f"scale's default)")
    if scale == "tiny":
        c = reproduce_preset("toy2d")
        c = dataclasses.replace(
            c,
            tasks=TaskConfig(train=("xor",), validate=("pie",)),
            network=dataclasses.replace(c.network, hidden=(8,)),
            objective=dataclasses.replace(c.objective, num_tasks=2, batch_size=16,
                                          score_steps=()),
            gradient=dataclasses.replace(
                c.gradient, meta_steps=2, num_runs=1,
                curriculum=Curriculum(start=3, increment=0, every=0, maximum=3)),
            validate_every=2, validate_tasks=2, checkpoint_every=2, log_every=1,
            evaluation=EvalSettings(report_steps=(2, 4), num_tasks=2, batch_size=16,
                                    query_size=32, baselines=("sgd",)),
        )
    elif scale == "small":
        c = reproduce_preset("toy2d")
        c = dataclasses.replace(
            c,
            gradient=dataclasses.replace(
                c.gradient, meta_steps=200, num_runs=2,
                curriculum=Curriculum(start=10, increment=5, every=100, maximum=15)),
            validate_every=100, checkpoint_every=100,
        )
    elif scale == "paper":
        c = reproduce_preset("mnist10")
    else:
        raise ValueError(f"unknown scale {scale!r}; choose tiny, small or paper")
    gradient = dataclasses.replace(
        c.gradient,
        meta_steps=meta_steps or c.gradient.meta_steps,
        num_runs=num_runs or c.gradient.num_runs,
    )
    return dataclasses.replace(c, seed=seed, gradient=gradient)


def with_network(base: RunConfig, **changes: Any) -> RunConfig:
    """``base`` with its network's fields changed (validated by NetworkSpec's own checks)."""
    return dataclasses.replace(base, network=dataclasses.replace(base.network, **changes))


def select(variants: Sequence[Variant], names: Sequence[str] | None,
           default: Sequence[str] | None = None) -> list[Variant]:
    """The variants called ``names`` in the order given (None: those named in ``default``, or
    all of them).

    Raises:
      ValueError: a name that is not one of the variants (the message lists them), none, or a
        name twice.
    """
    by_name = {v.name: v for v in variants}
    if names is None:
        names = list(default) if default is not None else list(by_name)
    names = list(names)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {list(by_name)}")
    if not names:
        raise ValueError(f"no variants given; choose from {list(by_name)}")
    if len(set(names)) != len(names):
        raise ValueError(f"variants {names} repeat a name")
    return [by_name[n] for n in names]


def folder_name(name: str) -> str:
    """A variant name as a folder name (``fwd=relu/bwd=tanh`` -> ``fwd_relu_bwd_tanh``)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_") or "variant"


# ------------------------------------------------------------------ meta-training


def meta_train(variant: Variant, run_dir: Path) -> Trained:
    """Meta-train ``variant`` into ``run_dir`` with the one run loop (no final evaluation).

    A run folder that already holds this variant's run (same config) is resumed: a finished
    run only reloads its selected genome.

    Raises:
      ValueError: ``run_dir`` holds a run of another config.
    """
    from blur.experiments import loop, runs

    config = dataclasses.replace(variant.config, run_dir=run_dir)
    resume = (run_dir / runs.CHECKPOINT).exists()
    if resume:
        recorded = (run_dir / runs.CONFIG).read_text("utf-8")
        # Compared through the current schema, so a run recorded before a field with a default
        # was added (e.g. network.unsupervised_update) still resumes.
        if config_to_json(config_from_json(recorded)) != config_to_json(config):
            raise ValueError(
                f"{run_dir} holds a run of another config than variant {variant.name!r} at "
                "this scale and seed; give another --out, or delete that folder"
            )
    result = loop.run(config, resume=resume, evaluate=False)
    score = result.best_score if np.isfinite(result.best_score) else None
    return Trained(variant, result.genome, score, result.best_step, result.wall_time, run_dir,
                   result.summary)


def train_all(variants: Sequence[Variant], out: Path) -> dict[str, Trained]:
    """Meta-train every variant into ``out/runs/NAME``; returns them by name."""
    names = [folder_name(v.name) for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"variant names {[v.name for v in variants]} collide as folders")
    return {v.name: meta_train(v, out / "runs" / n) for v, n in zip(variants, names, strict=True)}


# ------------------------------------------------------------------ evaluation


def evaluate_probes(
    trained: dict[str, Trained], probes: Sequence[Probe], families: Sequence[str | TaskFamily],
    settings: EvalSettings, key: jax.Array,
    transform: Callable[[Episode, jax.Array], Episode] | None = None,
    num_steps: int | None = None,
) -> list[Group]:
    """Evaluate every probe beside tuned baselines, one :func:`evaluate` call per network.

    Every group samples the same tasks (one key), so all rows are paired with each other too.
    ``families``: names (:func:`build_family`) or built families; ``num_steps``: inner steps
    (default: the largest report step).
    """
    hiddens: list[tuple[int, ...]] = []
    for p in probes:
        h = p.hidden or trained[p.variant].variant.config.network.hidden
        if h not in hiddens:
            hiddens.append(h)
    built = [build_family(f) if isinstance(f, str) else f for f in families]
    groups = []
    for hidden in hiddens:
        members = [p for p in probes
                   if (p.hidden or trained[p.variant].variant.config.network.hidden) == hidden]
        contenders = []
        for p in members:
            t = trained[p.variant]
            network = dataclasses.replace(t.variant.config.network, hidden=hidden)
            contenders.append(Contender(p.name, t.genome, network))
        results = evaluate(
            contenders, built, key,
            num_steps=num_steps or max(settings.report_steps), num_tasks=settings.num_tasks,
            batch_size=settings.batch_size, query_size=settings.query_size,
            baselines=settings.baselines, baseline_hidden=hidden, transform=transform,
        )
        groups.append(Group(hidden, members, results))
    return groups


def pooled_curve(results: Sequence[FamilyEvaluation], name: str) -> np.ndarray:
    """Per-task curves [N, T+1] of ``name`` (a genome or a baseline) pooled over families."""
    return np.concatenate([r.curves()[name] for r in results])


# ------------------------------------------------------------------ the report


def report_rows(groups: Sequence[Group], trained: dict[str, Trained],
                steps: Sequence[int]) -> list[dict[str, Any]]:
    """One row per probe: meta-training, and at each report step the mean ± s.e. accuracy over
    all tasks of all families, the baseline's, and the paired difference with its 95% CI."""
    rows = []
    for g in groups:
        summary = summarize(g.results, steps)
        pooled = "all" if len(g.results) > 1 else g.results[0].family
        by_step = {r["step"]: r for r in summary if r["family"] == pooled}
        base = next(iter(g.results[0].baselines))
        for p in g.probes:
            t = trained[p.variant]
            cells = []
            for s in steps:
                r = by_step[s]
                diff = r[f"{p.name}-{base}"]
                cells.append({"step": int(s), "mean": r[p.name]["mean"], "se": r[p.name]["se"],
                              "baseline": dict(r[base]), "diff": dict(diff),
                              "verdict": verdict(diff)})
            rows.append({
                "name": p.name, "variant": p.variant, "hidden": list(g.hidden),
                "trained_hidden": list(t.variant.config.network.hidden),
                "baseline": base, "num_tasks": by_step[steps[0]]["num_tasks"],
                "meta_val": t.best_score, "best_step": t.best_step,
                "meta_train_s": round(t.wall_s, 1), "meta_train": t.summary,
                "num_runs": t.variant.config.gradient.num_runs, "steps": cells,
            })
    return rows


def _pct(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{100 * x:.1f}" if np.isfinite(x) else "nan"


def markdown(rows: Sequence[dict[str, Any]], groups: Sequence[Group], steps: Sequence[int],
             title: str) -> str:
    """The table of :func:`report_rows` (accuracies in %) with each group's full
    per-family ``format_table`` below it."""
    base = rows[0]["baseline"].upper() if rows else "SGD"
    last = steps[-1]
    transfer = any(r["hidden"] != r["trained_hidden"] for r in rows)
    head = ["variant", *(["trained at"] if transfer else []), "hidden", "meta-val",
            *[f"step {s}" for s in steps], f"{base} @ {last}", f"−{base} @ {last} (95% CI)",
            "verdict"]
    body = []
    for r in rows:
        cells = r["steps"]
        d = cells[-1]["diff"]
        dropped = len(r["meta_train"].get("dropped", []))
        meta_val = _pct(r["meta_val"]) + (f" ({dropped}/{r['num_runs']} runs dropped)"
                                           if dropped else "")
        body.append([
            r["name"], *([str(tuple(r["trained_hidden"]))] if transfer else []),
            str(tuple(r["hidden"])), meta_val,
            *[f"{_pct(c['mean'])} ± {_pct(c['se'])}" for c in cells],
            _pct(cells[-1]["baseline"]["mean"]),
            f"{100 * d['mean']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]",
            cells[-1]["verdict"],
        ])
    text = title + "\n\n" + markdown_table(head, body)
    for g in groups:
        text += (f"\n\nPer family, hidden {g.hidden}, against the oracle-tuned baseline "
                 f"(95% CI):\n\n```\n" + format_table(summarize(g.results, steps)) + "\n```")
    return text


def plot(groups: Sequence[Group], path: Path, title: str,
         marks: Sequence[tuple[int, str]] = ()) -> Path:
    """Accuracy (mean over all tasks) against inner step: one curve per probe, the tuned
    baseline in black, one panel per evaluated network; ``marks`` are (step, label) lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 4.2), squeeze=False)
    for ax, g in zip(axes[0], groups, strict=True):
        for p in g.probes:
            curve = pooled_curve(g.results, p.name).mean(axis=0)
            ax.plot(np.arange(curve.size), curve, lw=1.5, label=p.name)
        for b in g.results[0].baselines:
            curve = pooled_curve(g.results, b).mean(axis=0)
            ax.plot(np.arange(curve.size), curve, color="k", lw=2,
                    label=f"{b.upper()} (tuned per step)")
        for step, label in marks:
            ax.axvline(step, color="grey", ls="--", lw=1)
            ax.text(step, 0.97, f" {label}", fontsize=7, color="grey", va="top")
        ax.set_title(f"hidden {g.hidden}", fontsize=9)
        ax.set_xlabel("inner step")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("query accuracy (mean over tasks)")
    fig.suptitle(textwrap.fill(title, 60 * len(groups)), fontsize=10)
    return save_figure(fig, path)


def write_report(
    out: Path, experiment: str, scale: str, seed: int, start: float, groups: list[Group],
    trained: dict[str, Trained], variants: Sequence[Variant], settings: EvalSettings,
    families: Sequence[str], title: str, options: dict[str, Any], command: str | None,
    marks: Sequence[tuple[int, str]] = (), extra: dict[str, Any] | None = None,
    figures: Sequence[Path] = (), notes: str = "", selection: str | None = None,
) -> Outcome:
    """Rows, ``EXPERIMENT.png``, ``table.md``, ``table.json`` and ``run.json`` of an ablation
    (``extra``: more entries of ``table.json``; ``figures``: more figures already written;
    ``notes``: markdown appended to ``table.md``; ``selection``: replaces the caption's
    sentence on how the genomes were meta-trained, e.g. for a genome loaded from a file)."""
    steps = tuple(settings.report_steps)
    rows = report_rows(groups, trained, steps)
    figure = plot(groups, out / f"{experiment}.png", title, marks)
    num = rows[0]["num_tasks"] if rows else 0
    caption = (
        f"{title}. Query accuracy (%), mean ± s.e. over {num} tasks ({len(families)} "
        f"famil{'y' if len(families) == 1 else 'ies'} x {settings.num_tasks}), batch "
        f"{settings.batch_size}, {settings.query_size} query examples; every variant and the "
        f"baseline train on the same batches from the same synapse-init keys. "
        + (selection if selection is not None else
           f"meta-val: the selected genome's meta-validation accuracy (best of "
           f"{variants[0].config.gradient.num_runs} runs x "
           f"{variants[0].config.gradient.meta_steps} meta-steps).")
        + " verdict: ahead / behind where the 95% interval of the paired difference excludes "
        "0, else tie."
    )
    text = markdown(rows, groups, steps, caption)
    if notes:
        text += "\n\n" + notes
    table = {
        "experiment": experiment,
        "variants": [{"name": v.name, "description": v.description,
                      "network": dataclasses.asdict(v.config.network),
                      "genome_init": v.config.genome_init,
                      "meta_steps": v.config.gradient.meta_steps,
                      "num_runs": v.config.gradient.num_runs,
                      "run_dir": str(trained[v.name].run_dir or "")} for v in variants],
        "families": list(families),
        "evaluation": dataclasses.asdict(settings),
        "rows": rows,
        "groups": [{
            "hidden": list(g.hidden),
            "rows": summarize(g.results, steps),
            "mean_curves": {name: pooled_curve(g.results, name).mean(axis=0).tolist()
                            for name in [p.name for p in g.probes]
                            + list(g.results[0].baselines)},
        } for g in groups],
        **(extra or {}),
    }
    return finish(out, experiment, scale, seed, start, [figure, *figures], table, text, options,
                  command)


def run_ablation(
    out: Path, experiment: str, scale: str, seed: int, variants: Sequence[Variant],
    title: str, options: dict[str, Any], command: str | None = None,
    probes: Sequence[Probe] | None = None,
) -> Outcome:
    """Meta-train ``variants``, evaluate ``probes`` (default: each variant on its own network)
    against tuned SGD on the base config's evaluation families, and write the report.

    The evaluation settings and families are the first variant's (every variant of an
    ablation shares them).
    """
    start = time.perf_counter()
    if not variants:
        raise ValueError(f"{experiment}: no variants to run")
    first = variants[0].config
    for v in variants[1:]:
        if (v.config.evaluation, v.config.tasks) != (first.evaluation, first.tasks):
            raise ValueError(f"variant {v.name!r} is evaluated differently from "
                             f"{variants[0].name!r}; an ablation shares its tasks")
    out.mkdir(parents=True, exist_ok=True)
    trained = train_all(variants, out)
    probes = list(probes) if probes is not None else [Probe(v.name, v.name) for v in variants]
    families = first.tasks.evaluation_families()
    groups = evaluate_probes(trained, probes, families, first.evaluation,
                             jax.random.fold_in(jax.random.PRNGKey(seed), EVAL_KEY))
    return write_report(out, experiment, scale, seed, start, groups, trained, variants,
                        first.evaluation, families, title, options, command)
