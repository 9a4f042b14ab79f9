"""``mnist-generalisation`` (paper §4.2, Figs. 5, 11): a genome meta-trained on 10x10 MNIST
trains 28x28 MNIST, Fashion-MNIST, EMNIST and KMNIST networks, against tuned SGD.

The paper: "Generalization of a genome meta-trained with 2-layer/4-state architecture on MNIST
to other datasets"; BLUR "converges much faster than SGD in the explored training trajectory,
however after about 100 steps SGD reaches the same accuracy and continues to grow".

No meta-training: the genome (default the shipped ``mnist-k4``, meta-trained by the ``mnist10``
preset at 10x10; ``--genome`` a shipped name or a genome file) is evaluated with the one
evaluation path (the ablation driver's :func:`~blur.experiments.reproduce.ablation.
evaluate_probes`) at 28x28 on the test sets, ``NAME?query_split=test``: support batches from
the training images, the query drawn without replacement from the test images. EMNIST and
KMNIST are evaluated where they are imported; otherwise the table says they were skipped.

Networks: hidden (256,) and (256, 128) where the genome allows it. A per-layer genome (one
entry per synapse layer) fixes the depth: only the widths with its number of layers are
evaluated, and the table says which were skipped and why.

Scales: ``tiny`` (tests) 2 tasks per data set, 4 steps of 16, 64 query images; ``small`` 10
tasks, 50 steps of 128, 1000 query images, SGD; ``paper`` 10 tasks, 100 steps of 128, the whole
test split (10,000 images) as the query, SGD.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from blur.experiments.config import EvalSettings, build_family
from blur.experiments.evaluation import contender_from_file
from blur.experiments.reproduce.ablation import (
    EVAL_KEY,
    Group,
    Probe,
    Trained,
    Variant,
    evaluate_probes,
    write_report,
)
from blur.experiments.reproduce.common import (
    Outcome,
    markdown_table,
    reproduce_preset,
    save_figure,
)
from blur.tasks import DataNotFoundError

DATASETS = ("mnist", "fashion_mnist", "emnist", "kmnist")
HIDDEN: tuple[tuple[int, ...], ...] = ((256,), (256, 128))
DEFAULT_GENOME = "mnist-k4"
SETTINGS = {
    "tiny": EvalSettings(report_steps=(2, 4), num_tasks=2, batch_size=16, query_size=64),
    "small": EvalSettings(report_steps=(10, 25, 50), num_tasks=10, batch_size=128,
                          query_size=1000),
    "paper": EvalSettings(report_steps=(10, 25, 50, 100), num_tasks=10, batch_size=128,
                          query_size=10000),
}


def load(genome: str | Path | None) -> Trained:
    """The genome as a 'trained' variant (no meta-training): a shipped name or a file.

    Raises:
      GenomeFormatError: an unknown name / invalid file (the message lists the shipped names).
    """
    import blur.genomes

    source = str(genome) if genome is not None else DEFAULT_GENOME
    if source in blur.genomes.available() and not Path(source).is_file():
        loaded = blur.genomes.load(source)
        name, g, network = source, loaded.genome, loaded.network
        if network is None:  # shipped files are v2 (with their network); a guard
            raise ValueError(f"shipped genome {source!r} records no network")
    else:
        c = contender_from_file(Path(source))
        name, g, network = c.name, c.genome, c.network
    config = dataclasses.replace(reproduce_preset("mnist10"), network=network)
    return Trained(Variant(name, config, f"genome {source}"), g, None, None, 0.0, None)


def usable_hidden(trained: Trained) -> tuple[list[tuple[int, ...]], list[list[str]]]:
    """The widths of :data:`HIDDEN` the genome can train, and a note for each it cannot."""
    layers = trained.genome.num_layers
    if layers is None:
        return list(HIDDEN), []
    ok = [h for h in HIDDEN if len(h) + 1 == layers]
    skipped = [[f"hidden {h}", f"per-layer genome of {layers} synapse layers fixes the depth "
                f"at {layers - 1} hidden layer(s)"] for h in HIDDEN if h not in ok]
    if not ok:
        raise ValueError(
            f"genome {trained.variant.name!r} is per-layer with {layers} synapse layers: it "
            f"fits none of the hidden widths {list(HIDDEN)}; give a genome shared by all "
            "layers, or one meta-trained with 1 or 2 hidden layers"
        )
    return ok, skipped


def available_families() -> tuple[list[str], list[list[str]]]:
    """The test-split families of :data:`DATASETS` that are imported, and a note per skipped
    one."""
    names, skipped = [], []
    for d in DATASETS:
        name = f"{d}?query_split=test"
        try:
            build_family(name)
        except DataNotFoundError:
            skipped.append([d, f"not imported (import it with `blur data fetch {d}`)"])
            continue
        names.append(name)
    return names, skipped


def plot_datasets(groups: list[Group], path: Path, title: str) -> Path:
    """Accuracy against inner step, one panel per data set (columns) and width (rows): the
    genome and tuned SGD, mean over tasks with ± s.e. shading."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = len(groups[0].results)
    fig, axes = plt.subplots(len(groups), cols, figsize=(4.2 * cols, 3.4 * len(groups)),
                             squeeze=False)
    for row, g in zip(axes, groups, strict=True):
        for ax, result in zip(row, g.results, strict=True):
            for name, curves in result.curves().items():
                m = curves.mean(axis=0)
                se = curves.std(axis=0, ddof=1) / np.sqrt(curves.shape[0])
                steps = np.arange(m.size)
                label = f"{name.upper()} (tuned per step)" if name in result.baselines else name
                color = "k" if name in result.baselines else None
                ax.plot(steps, m, lw=1.5, label=label, color=color)
                ax.fill_between(steps, m - se, m + se, alpha=0.2, color=color)
            ax.set_title(f"{result.family.split('[')[0]}, hidden {g.hidden}", fontsize=8)
            ax.set_ylim(0, 1)
            ax.set_xlabel("inner step")
            ax.legend(fontsize=7, loc="lower right")
        row[0].set_ylabel("test accuracy")
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def run(
    out: Path, scale: str = "small", seed: int = 0, command: str | None = None,
    genome: str | Path | None = None,
) -> Outcome:
    """Evaluate the genome at 28x28 on every imported data set and usable width against SGD;
    writes ``mnist-generalisation.png`` (pooled over the data sets), ``datasets.png`` (one
    panel per data set and width), ``table.md`` and ``table.json``.

    Args:
      genome: a shipped genome name or a genome file (default: the shipped ``mnist-k4``).

    Raises:
      ValueError: the genome fits none of the widths, or MNIST itself is not imported.
    """
    start = time.perf_counter()
    trained = load(genome)
    hidden, skipped_hidden = usable_hidden(trained)
    families, skipped_data = available_families()
    if not families:
        raise ValueError("none of the data sets is imported; run `blur data fetch mnist`")
    settings = SETTINGS[scale]
    out.mkdir(parents=True, exist_ok=True)
    name = trained.variant.name
    probes = [Probe(f"{name} {h}", name, h) for h in hidden]
    groups = evaluate_probes({name: trained}, probes, families, settings,
                             jax.random.fold_in(jax.random.PRNGKey(seed), EVAL_KEY))
    figure = plot_datasets(groups, out / "datasets.png",
                           f"Genome {name} vs tuned SGD at 28x28, per test set (mean ± s.e.)")
    skipped = skipped_hidden + skipped_data
    notes = ("Not evaluated:\n\n" + markdown_table(["what", "why"], skipped)) if skipped else ""
    variant = dataclasses.replace(
        trained.variant,
        config=dataclasses.replace(trained.variant.config, evaluation=settings))
    options = {"genome": str(genome) if genome is not None else None}
    return write_report(
        out, "mnist-generalisation", scale, seed, start, groups, {name: trained}, [variant],
        settings, families,
        f"Genome {name} at 28x28 on the test sets (§4.2, Figs. 5, 11); no meta-training here",
        options, command, extra={"skipped": skipped, "genome": str(genome or DEFAULT_GENOME)},
        notes=notes, figures=[figure],
        selection=f"The genome ({trained.variant.description}) was not meta-trained here "
        "(meta-val: —).")
