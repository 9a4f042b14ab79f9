"""PNG plots of a run folder: meta-training curves and the final genome's accuracy per step."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from blur.io.metrics import read_metrics  # noqa: E402


def _mean(v: object) -> float:
    arr = np.asarray(v if isinstance(v, list) else [v], dtype=np.float64)
    return float(np.nanmean(arr)) if arr.size else float("nan")


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write ``meta_training.png`` (and ``accuracy_vs_step.png`` if eval.json exists).

    Raises:
      FileNotFoundError: ``run_dir`` holds no ``metrics.jsonl``.
    """
    run_dir = Path(run_dir)
    records = read_metrics(run_dir / "metrics.jsonl")
    if not records:
        raise FileNotFoundError(
            f"{run_dir / 'metrics.jsonl'} is missing or empty: not a run folder?"
        )
    train = [r for r in records if r.get("kind") == "train"]
    val = [r for r in records if r.get("kind") == "validation"]
    out = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in train]
    if train and "meta_loss" in train[0]:
        axes[0].plot(
            steps, [_mean(r["meta_loss"]) for r in train], label="meta-loss (mean of runs)"
        )
    axes[0].set_xlabel("meta-step")
    axes[0].set_ylabel("meta-loss")
    axes[0].legend()
    axes[1].plot(steps, [_mean(r.get("meta_train_accuracy")) for r in train], label="meta-train")
    if val:
        axes[1].plot(
            [r["step"] for r in val],
            [max(np.asarray(r["meta_val_accuracy"], float)) for r in val],
            "o-",
            label="meta-val (best run)",
        )
    axes[1].set_xlabel("meta-step")
    axes[1].set_ylabel("query accuracy")
    axes[1].legend()
    fig.tight_layout()
    path = run_dir / "meta_training.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    out.append(path)
    eval_path = run_dir / "eval.json"
    data = json.loads(eval_path.read_text("utf-8")) if eval_path.exists() else {}
    if "families" in data:  # (an eval.json written before per-task curves has none)
        out.append(plot_evaluation(data, run_dir / "accuracy_vs_step.png"))
    return out


def plot_evaluation(data: dict, path: str | Path) -> Path:
    """Accuracy against inner step, one panel per family, mean ± s.e. over tasks shaded.

    Args:
      data: the JSON form of an evaluation (``blur.experiments.evaluation.to_json``).
      path: the PNG to write.
    """
    families = data["families"]
    fig, axes = plt.subplots(
        1, len(families), figsize=(3.6 * len(families), 3.4), squeeze=False
    )
    for ax, fam in zip(axes[0], families, strict=True):
        curves = {name: np.asarray(c, float) for name, c in fam["genomes"].items()}
        dashed = {f"{name} (tuned)": np.asarray(b["oracle"], float)
                  for name, b in fam["baselines"].items()}
        for label, c in [*curves.items(), *dashed.items()]:
            mean = c.mean(axis=0)
            se = c.std(axis=0, ddof=1) / np.sqrt(c.shape[0]) if c.shape[0] > 1 else 0 * mean
            steps = np.arange(mean.size)
            style = "--" if label in dashed else "-"
            (line,) = ax.plot(steps, mean, style, label=label)
            ax.fill_between(steps, mean - se, mean + se, color=line.get_color(), alpha=0.2)
        ax.set_title(fam["family"], fontsize=9)
        ax.set_xlabel("inner step")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("query accuracy (mean ± s.e.)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
