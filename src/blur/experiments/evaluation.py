"""Judge rules: the one evaluation path of ``blur evaluate``, ``blur compare`` and every run.

For each task family, ``num_tasks`` fresh tasks are sampled once. Every genome (each with the
network it trains) and every gradient baseline is trained on the same support batches, from
the same init keys, and scored on the same query examples after every inner step. A baseline's
learning rate is tuned over its grid (:data:`blur.baselines.DEFAULT_LRS`): "oracle" picks the
best rate for each step count, "fixed" the single rate best at the last reported step.

The table gives mean ± standard error over tasks and the **paired** difference genome −
baseline (oracle rate) with a 95% t-interval over tasks: a rule beats a baseline at a step only
where that interval excludes zero. With several families a pooled row pairs all their tasks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from blur.baselines import tuned_curves
from blur.experiments.config import EvalSettings, build_family
from blur.genome import Genome
from blur.inner import evaluate as evaluate_query
from blur.inner import unroll
from blur.network import NetworkConfig, NetworkSpec, init_state
from blur.tasks.base import Batch, Episode, TaskFamily

CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class Contender:
    """A genome to evaluate, with the network it trains and the name it is reported under."""

    name: str
    genome: Genome
    network: NetworkConfig

    def spec_for(self, family: TaskFamily) -> NetworkSpec:
        spec = self.network.spec_for(family)
        spec.check_genome(self.genome)
        return spec


@partial(jax.jit, static_argnames=("spec",))
def genome_curves(
    genome: Genome, spec: NetworkSpec, support: Batch, query: Batch, keys: jax.Array
) -> jax.Array:
    """Query accuracy of N fresh networks after 0..T BLUR steps.

    Args:
      support: x [N, T, B, n_0], y [N, T, B].
      query: x [N, M, n_0], y [N, M].
      keys: [N] synapse-init keys.

    Returns:
      [N, T + 1]; entry [n, t] is task n's query accuracy after t steps.
    """

    def one(s: Batch, q: Batch, key: jax.Array) -> jax.Array:
        state = init_state(key, genome, spec, s.x.shape[1])
        q1 = Batch(x=q.x[None], y=q.y[None])  # one query batch of M
        _, metrics = unroll(genome, spec, state, s, query=q1)
        first = evaluate_query(genome, spec, state, q1)[1]
        return jnp.concatenate([first[None], metrics.query_accuracy])

    return jax.vmap(one)(support, query, keys)


def sample_tasks(
    family: TaskFamily, key: jax.Array, num_tasks: int, num_steps: int, batch_size: int,
    query_size: int,
) -> Episode:
    """``num_tasks`` episodes with support x [N, T, B, n] and one flat query x [N, M, n]."""
    keys = jax.random.split(key, num_tasks)
    eps = jax.vmap(lambda k: family.sample(k, num_steps, batch_size, 1, query_size))(keys)
    return Episode(support=eps.support, query=Batch(x=eps.query.x[:, 0], y=eps.query.y[:, 0]))


@dataclasses.dataclass
class BaselineCurves:
    """A tuned baseline on one family: ``curves[g, n, t]`` at learning rate ``lrs[g]``."""

    lrs: np.ndarray
    curves: np.ndarray

    def oracle(self) -> tuple[np.ndarray, np.ndarray]:
        """(per-task curves [N, T+1] at the best rate for each step, that rate [T+1])."""
        best = np.argmax(self.curves.mean(axis=1), axis=0)  # [T+1]
        steps = np.arange(self.curves.shape[2])
        return self.curves[best, :, steps].T, self.lrs[best]

    def fixed(self, step: int) -> tuple[np.ndarray, float]:
        """(per-task curves [N, T+1] at the single rate best after ``step`` steps, that rate)."""
        g = int(np.argmax(self.curves[:, :, step].mean(axis=1)))
        return self.curves[g], float(self.lrs[g])


@dataclasses.dataclass
class FamilyEvaluation:
    """Per-task curves of every contender and baseline on one family's tasks."""

    family: str
    genomes: dict[str, np.ndarray]  # name -> [N, T+1]
    baselines: dict[str, BaselineCurves]

    def curves(self) -> dict[str, np.ndarray]:
        """Every method's per-task curves [N, T+1] (baselines at their oracle rate)."""
        out = dict(self.genomes)
        out.update({name: b.oracle()[0] for name, b in self.baselines.items()})
        return out


def evaluate(
    contenders: Sequence[Contender],
    families: Sequence[TaskFamily],
    key: jax.Array,
    *,
    num_steps: int,
    num_tasks: int,
    batch_size: int,
    query_size: int,
    baselines: Sequence[str] = ("sgd",),
    baseline_hidden: tuple[int, ...] | None = None,
    transform: Callable[[Episode, jax.Array], Episode] | None = None,
) -> list[FamilyEvaluation]:
    """Train every contender and tuned baseline on the same fresh tasks of each family.

    Args:
      contenders: genomes with their networks (input and output widths come from the family).
      families: task families.
      key: PRNG key; family i uses ``fold_in(key, i)`` for its tasks and init keys.
      num_steps: T, inner steps (curves have T + 1 points, from step 0).
      num_tasks, batch_size, query_size: N tasks of T support batches of B, M query examples.
      baselines: ``sgd``, ``momentum`` and/or ``adam``, tuned over their learning-rate grids.
      baseline_hidden: hidden widths of the baselines' MLP (default: the first contender's).
      transform: applied to each family's sampled tasks (support x [N, T, B, n], query
        x [N, M, n]) with the key ``fold_in(family key, 2)`` before anything trains on them,
        e.g. labels permuted from some step on (``blur reproduce stability``); every contender
        and baseline sees the transformed tasks.

    Returns:
      One :class:`FamilyEvaluation` per family.
    """
    if not contenders and not baselines:
        raise ValueError("nothing to evaluate: give at least one genome or baseline")
    hidden = baseline_hidden
    if hidden is None:
        if not contenders:
            raise ValueError("baseline_hidden is needed when no genome is evaluated")
        hidden = contenders[0].network.hidden
    out = []
    for i, family in enumerate(families):
        k = jax.random.fold_in(key, i) if len(families) > 1 else key
        ep = sample_tasks(family, k, num_tasks, num_steps, batch_size, query_size)
        if transform is not None:
            ep = transform(ep, jax.random.fold_in(k, 2))
        init_keys = jax.random.split(jax.random.fold_in(k, 1), num_tasks)
        genomes = {
            c.name: np.asarray(
                genome_curves(c.genome, c.spec_for(family), ep.support, ep.query, init_keys)
            )
            for c in contenders
        }
        sizes = (family.num_inputs, *hidden, family.num_classes)
        tuned = {}
        for name in baselines:
            lrs, curves = tuned_curves(init_keys, ep.support, ep.query, sizes, name)
            tuned[name] = BaselineCurves(np.asarray(lrs), np.asarray(curves))
        out.append(FamilyEvaluation(family.name, genomes, tuned))
    return out


# ------------------------------------------------------------------ statistics and tables


def mean_se(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard error over the first axis of ``values`` [N]."""
    values = np.asarray(values, np.float64)
    n = values.shape[0]
    se = float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return float(np.mean(values)), se


def paired_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired tasks [N] and its two-sided 95% t-interval (lo, hi)."""
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    n = d.shape[0]
    mean = float(np.mean(d))
    if n < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * np.std(d, ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half


def summarize(
    results: Sequence[FamilyEvaluation], report_steps: Sequence[int]
) -> list[dict[str, Any]]:
    """Rows (one per family and step, plus pooled rows over families) of the report.

    Each row: ``family``, ``step``, ``num_tasks``, and for every method ``<name>`` =
    {mean, se} (a baseline also ``lr``: its oracle rate), and for every genome and baseline
    pair ``<genome>-<baseline>`` = {mean, lo, hi} (the paired difference and its interval).
    """
    rows = []
    groups: list[tuple[str, list[FamilyEvaluation]]] = [(r.family, [r]) for r in results]
    if len(results) > 1:
        groups.append(("all", list(results)))
    for name, group in groups:
        curves = [r.curves() for r in group]
        lrs = [{b: c.oracle()[1] for b, c in r.baselines.items()} for r in group]
        for t in report_steps:
            row: dict[str, Any] = {
                "family": name, "step": int(t),
                "num_tasks": int(sum(next(iter(c.values())).shape[0] for c in curves)),
            }
            methods = list(curves[0])
            for m in methods:
                values = np.concatenate([c[m][:, t] for c in curves])
                mean, se = mean_se(values)
                row[m] = {"mean": mean, "se": se}
                if len(group) == 1 and m in lrs[0]:
                    row[m]["lr"] = float(lrs[0][m][t])
            for g in group[0].genomes:
                for b in group[0].baselines:
                    a = np.concatenate([c[g][:, t] for c in curves])
                    z = np.concatenate([c[b][:, t] for c in curves])
                    mean, lo, hi = paired_interval(a, z)
                    row[f"{g}-{b}"] = {"mean": mean, "lo": lo, "hi": hi}
            rows.append(row)
    return rows


def verdict(diff: dict[str, float]) -> str:
    """``ahead`` / ``behind`` where the 95% interval excludes zero, else ``tie``."""
    if diff["lo"] > 0:
        return "ahead"
    if diff["hi"] < 0:
        return "behind"
    return "tie"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of :func:`summarize` rows (accuracies in %)."""
    if not rows:
        return ""
    first = rows[0]
    methods = [k for k, v in first.items() if isinstance(v, dict) and "se" in v]
    diffs = [k for k, v in first.items() if isinstance(v, dict) and "lo" in v]
    def label(name: str) -> str:
        return name.upper() if name in ("sgd", "momentum", "adam") else name

    head = ["task", "step", *[label(m) for m in methods]]
    head += [f"{label(d.rsplit('-', 1)[0])}-{label(d.rsplit('-', 1)[1])} (95% CI)"
             for d in diffs]
    table = [head]
    for r in rows:
        cells = [r["family"], str(r["step"])]
        for m in methods:
            v = r[m]
            cell = f"{100 * v['mean']:.1f} ± {100 * v['se']:.1f}"
            if "lr" in v:
                cell += f" ({v['lr']:.3g})"
            cells.append(cell)
        for d in diffs:
            v = r[d]
            cells.append(f"{100 * v['mean']:+.1f} [{100 * v['lo']:+.1f}, {100 * v['hi']:+.1f}]")
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_json(
    results: Sequence[FamilyEvaluation],
    report_steps: Sequence[int],
    rows: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Everything needed to redraw the table and the curves (means per step, per-task data).

    ``rows``: the :func:`summarize` rows when the caller has them already.
    """
    last = max(report_steps)

    def baseline(b: BaselineCurves) -> dict[str, Any]:
        oracle, oracle_lr = b.oracle()
        fixed, fixed_lr = b.fixed(last)
        return {"lrs": b.lrs.tolist(), "oracle": oracle.tolist(), "oracle_lr": oracle_lr.tolist(),
                "fixed": fixed.tolist(), "fixed_lr": fixed_lr}

    return {
        "report_steps": list(report_steps),
        "confidence": CONFIDENCE,
        "rows": list(rows) if rows is not None else summarize(results, report_steps),
        "families": [
            {
                "family": r.family,
                "genomes": {k: v.tolist() for k, v in r.genomes.items()},
                "baselines": {k: baseline(b) for k, b in r.baselines.items()},
            }
            for r in results
        ],
    }


# ------------------------------------------------------------------ the path every command takes


@dataclasses.dataclass
class Report:
    """An evaluation with its table rows, its text table and its JSON form."""

    results: list[FamilyEvaluation]
    rows: list[dict[str, Any]]
    table: str
    data: dict[str, Any]


def evaluate_report(
    contenders: Sequence[Contender],
    families: Sequence[str],
    settings: EvalSettings,
    key: jax.Array,
    baselines: Sequence[str] | None = None,
) -> Report:
    """:func:`evaluate` on families named as in run configs, summarised at the report steps."""
    results = evaluate(
        contenders,
        [build_family(t) for t in families],
        key,
        num_steps=max(settings.report_steps),
        num_tasks=settings.num_tasks,
        batch_size=settings.batch_size,
        query_size=settings.query_size,
        baselines=tuple(settings.baselines if baselines is None else baselines),
    )
    rows = summarize(results, settings.report_steps)
    return Report(results, rows, format_table(rows), to_json(results, settings.report_steps, rows))


def contender_from_file(
    path: Path, name: str | None = None, network: NetworkConfig | None = None
) -> Contender:
    """A genome file as a contender: its own network (schema v2), else its run folder's.

    Args:
      path: a genome.json.
      name: the name it is reported under (default: the file's parent folder name).
      network: overrides the file's network.

    Raises:
      GenomeFormatError: the file is invalid, or no network is known for a v1 file outside a
        run folder (the message says to pass one).
    """
    from blur.experiments.runs import CONFIG, load_run_config
    from blur.genome import GenomeFormatError
    from blur.io.genome_file import check_network_fits, load_genome_file

    loaded = load_genome_file(path)
    net = network or loaded.network
    if net is None and (path.parent / CONFIG).exists():
        net = load_run_config(path.parent).network
    if net is None:
        raise GenomeFormatError(
            f"{path}: a v1 genome file outside a run folder does not say which network it "
            "trains; give the network (e.g. --network.hidden ... --network.num-states K)"
        )
    check_network_fits(loaded.genome, net, str(path))
    return Contender(name or path.parent.name or path.stem, loaded.genome, net)
