"""Several genomes against the best tuned baseline: the library behind ``blur compare``.

Every genome (a shipped name such as ``mnist-k4``, or a genome.json file) and every tuned
baseline goes through the one evaluation path (:func:`blur.experiments.evaluation.evaluate_report`):
same tasks, same support batches, same init keys. On top of its rows this module picks, for
each task family and step, the **best** tuned baseline (highest mean accuracy at its oracle
rate) and reports each genome's paired difference to it with the 95% t-interval over tasks.

Outputs (:func:`write_comparison`): ``table.md`` (markdown), ``table.csv`` (one row per
family, step and method), ``accuracy_vs_step.png`` (mean ± s.e. shaded) and ``compare.json``
(the full curves, for redrawing).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax

from blur.experiments.config import EvalSettings
from blur.experiments.evaluation import Contender, Report, contender_from_file, evaluate_report
from blur.network import NetworkConfig

BASELINE_LABELS = {"sgd": "SGD", "momentum": "SGD+momentum 0.9", "adam": "Adam"}


def resolve_contender(
    ref: str, name: str | None = None, network: NetworkConfig | None = None
) -> Contender:
    """A shipped genome name (``blur.genomes.available()``) or a genome.json path.

    Raises:
      GenomeFormatError: ``ref`` is neither a shipped name nor a readable genome file (the
        message lists the shipped names).
    """
    from blur import genomes
    from blur.genome import GenomeFormatError

    if ref in genomes.available():
        loaded = genomes.load(ref)
        assert loaded.network is not None  # every shipped file carries its network
        return Contender(name or ref, loaded.genome, network or loaded.network)
    path = Path(ref)
    if not path.exists():
        raise GenomeFormatError(
            f"{ref!r} is neither a shipped genome ({', '.join(genomes.available())}) nor an "
            "existing genome.json file"
        )
    return contender_from_file(path, name, network)


def unique_names(refs: Sequence[str]) -> list[str]:
    """Report names for genome references: shipped names as they are, files by their folder
    (or stem), with ``-2``, ``-3`` appended where two would clash."""
    from blur import genomes

    names: list[str] = []
    for ref in refs:
        if ref in genomes.available():
            base = ref
        else:
            p = Path(ref)
            base = p.parent.name if p.name == "genome.json" and p.parent.name else p.stem
        name, i = base, 2
        while name in names:
            name, i = f"{base}-{i}", i + 1
        names.append(name)
    return names


def best_baseline(row: dict[str, Any], baselines: Sequence[str]) -> str:
    """The baseline with the highest mean accuracy in one :func:`summarize` row."""
    return max(baselines, key=lambda b: row[b]["mean"])


@dataclasses.dataclass
class Comparison:
    """An evaluation of several genomes with the best-baseline columns worked out."""

    report: Report
    genomes: list[str]
    baselines: list[str]

    def best_rows(self) -> list[dict[str, Any]]:
        """The report rows, each with ``best`` (the best baseline's name) added."""
        return [{**r, "best": best_baseline(r, self.baselines)} for r in self.report.rows]

    def markdown(self) -> str:
        """Markdown table: accuracy (mean ± s.e. over tasks, %) of every genome and baseline
        (oracle rate in brackets), and each genome minus the best baseline with its 95%
        interval."""
        head = ["task", "step", "tasks", *self.genomes,
                *[f"tuned {BASELINE_LABELS[b]}" for b in self.baselines], "best baseline",
                *[f"{g} − best (95% CI)" for g in self.genomes]]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.best_rows():
            cells = [r["family"], str(r["step"]), str(r["num_tasks"])]
            cells += [_pct(r[g]) for g in self.genomes]
            for b in self.baselines:
                cell = _pct(r[b])
                if "lr" in r[b]:
                    cell += f" ({r[b]['lr']:.3g})"
                cells.append(cell)
            cells.append(BASELINE_LABELS[r["best"]])
            for g in self.genomes:
                d = r[f"{g}-{r['best']}"]
                cells.append(f"{100 * d['mean']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def csv(self) -> str:
        """One line per family, step and method: accuracy mean and s.e. (fractions), the
        oracle learning rate (baselines), and for genomes the paired difference to the best
        baseline with its 95% interval."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["family", "step", "num_tasks", "method", "kind", "mean", "se", "lr",
                         "best_baseline", "diff_to_best", "diff_lo", "diff_hi"])
        for r in self.best_rows():
            for m in [*self.genomes, *self.baselines]:
                genome = m in self.genomes
                d = r[f"{m}-{r['best']}"] if genome else None
                writer.writerow([
                    r["family"], r["step"], r["num_tasks"], m,
                    "genome" if genome else "baseline",
                    f"{r[m]['mean']:.6f}", f"{r[m]['se']:.6f}",
                    "" if genome else f"{r[m].get('lr', float('nan')):.6g}",
                    r["best"],
                    *(("", "", "") if d is None
                      else (f"{d['mean']:.6f}", f"{d['lo']:.6f}", f"{d['hi']:.6f}")),
                ])
        return buf.getvalue()


def _pct(v: dict[str, float]) -> str:
    return f"{100 * v['mean']:.1f} ± {100 * v['se']:.1f}"


def compare(
    refs: Sequence[str],
    families: Sequence[str],
    settings: EvalSettings,
    key: jax.Array,
    baselines: Sequence[str] | None = None,
    network: NetworkConfig | None = None,
) -> Comparison:
    """Evaluate genomes (shipped names or files) and tuned baselines on ``families``.

    Args:
      refs: genome references (see :func:`resolve_contender`).
      families: task family strings, e.g. ``mnist?split=test``.
      settings: evaluation settings (steps, tasks, batch and query sizes, baselines).
      key: PRNG key of the tasks and inits (the same for every genome and baseline).
      baselines: overrides ``settings.baselines``; at least one is needed for the
        best-baseline columns.
      network: overrides every genome's own network.
    """
    names = unique_names(refs)
    contenders = [resolve_contender(r, n, network) for r, n in zip(refs, names, strict=True)]
    return compare_contenders(contenders, families, settings, key, baselines)


def compare_contenders(
    contenders: Sequence[Contender],
    families: Sequence[str],
    settings: EvalSettings,
    key: jax.Array,
    baselines: Sequence[str] | None = None,
) -> Comparison:
    """:func:`compare` for genomes already loaded (names must be distinct)."""
    names = [c.name for c in contenders]
    if len(set(names)) != len(names):
        raise ValueError(f"genome names must be distinct, got {names}")
    chosen = list(settings.baselines if baselines is None else baselines)
    if not chosen:
        raise ValueError("give at least one baseline (--baselines sgd momentum adam)")
    report = evaluate_report(contenders, families, settings, key, chosen)
    return Comparison(report, names, chosen)


def write_comparison(comparison: Comparison, output_dir: Path) -> dict[str, Path]:
    """Write ``table.md``, ``table.csv``, ``accuracy_vs_step.png`` and ``compare.json``."""
    from blur.experiments.runs import dump_json
    from blur.io.atomic import write_text_atomic
    from blur.io.plots import plot_evaluation

    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": output_dir / "table.md",
        "csv": output_dir / "table.csv",
        "png": output_dir / "accuracy_vs_step.png",
        "json": output_dir / "compare.json",
    }
    write_text_atomic(paths["markdown"], comparison.markdown() + "\n")
    write_text_atomic(paths["csv"], comparison.csv())
    write_text_atomic(paths["json"], dump_json(comparison.report.data))
    plot_evaluation(comparison.report.data, paths["png"])
    return paths
