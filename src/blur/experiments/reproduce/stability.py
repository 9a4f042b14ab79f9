"""``stability`` (paper App. C.5-C.6, Figs. 15-16): long inner runs, Oja's term against synapse
normalisation, labels randomised in the middle of the episode.

The paper (Fig. 16, best of 10 runs, 800 steps, labels randomised after step 500): without
Oja's term synapses grow exponentially, overflow and diverge; with synapse normalisation the
peak accuracy may be lower, but it keeps improving beyond the meta-training horizon; with
synapse normalisation plus Oja the synapses saturate and the model keeps learning, so its
accuracy reacts to the label randomisation. Fig. 16's four settings are the variants here
(``NetworkSpec.synapse_stabiliser``): ``oja``, ``none``, ``normalize`` (App. C.6: unit-norm
incoming weights) and ``normalize+oja``.

Each variant is meta-trained at the base's short horizon (:mod:`.ablation`), then evaluated
beside tuned SGD for ``num_steps`` inner steps, on tasks whose support labels are mapped
through a fixed random permutation from batch ``switch`` on (:func:`label_switch`: one
derangement per task, so every label changes; pure JAX on the sampled batches). The query is
scored against the labels in force: the original ones after up to ``switch`` steps, the
permuted ones after more. Both are the one evaluation path (``evaluate`` with a ``transform``)
on the same tasks, once with the query's labels permuted and once without; the curves are
joined at ``switch``.

Beside the accuracy, ``synapses.png`` shows what Fig. 15 plots: the root-mean-square of the
forward synapses after every step (``StepMetrics.synapse_norm``, log scale) and the fraction of
inner runs still finite, on fresh tasks of the same families with the same label switch.

Scales: ``small`` the toy2d preset, 800 steps, switch at 500; ``paper`` the mnist10 preset,
800 steps, switch at 500; ``tiny`` 8 steps, switch at 5.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from blur.experiments.config import build_family
from blur.experiments.evaluation import BaselineCurves, FamilyEvaluation, sample_tasks
from blur.experiments.reproduce.ablation import (
    EVAL_KEY,
    Group,
    Probe,
    Trained,
    Variant,
    base_config,
    evaluate_probes,
    select,
    train_all,
    with_network,
    write_report,
)
from blur.experiments.reproduce.common import Outcome, save_figure
from blur.genome import Genome
from blur.inner import unroll
from blur.network import NetworkSpec, init_state
from blur.tasks.base import Batch, Episode

STABILISERS: dict[str, tuple[str, ...]] = {
    "oja": ("oja",),
    "none": (),
    "normalize": ("normalize",),
    "normalize+oja": ("normalize", "oja"),
}


@dataclasses.dataclass(frozen=True)
class Horizon:
    """Inner steps of the evaluation, the first permuted batch, and the reported steps."""

    num_steps: int
    switch: int
    report_steps: tuple[int, ...]


HORIZONS = {
    "tiny": Horizon(8, 5, (2, 5, 6, 8)),
    "small": Horizon(800, 500, (10, 50, 100, 500, 510, 600, 800)),
    "paper": Horizon(800, 500, (10, 50, 100, 500, 510, 600, 800)),
}


def derangement(key: jax.Array, num_classes: int) -> jax.Array:
    """A random permutation [C] of 0..C-1 with no fixed point (a random cyclic order), C >= 2."""
    order = jax.random.permutation(key, num_classes)
    return jnp.zeros(num_classes, order.dtype).at[order].set(jnp.roll(order, -1))


def label_switch(switch: int, num_classes: int, permute_query: bool
                 ) -> Callable[[Episode, jax.Array], Episode]:
    """An ``evaluate`` transform: labels of support batches ``>= switch`` mapped through one
    derangement per task (and, with ``permute_query``, all query labels through the same one).

    The episode: support y [N, T, B], query y [N, M]. The key fixes the derangements, so the
    two evaluations (query permuted or not) train on identical batches.
    """
    if num_classes < 2:
        raise ValueError(f"label randomisation needs >= 2 classes, got {num_classes}")

    def transform(ep: Episode, key: jax.Array) -> Episode:
        n, t = ep.support.y.shape[:2]
        perms = jax.vmap(lambda k: derangement(k, num_classes))(jax.random.split(key, n))
        permuted = jax.vmap(lambda p, y: p[y])(perms, ep.support.y)
        late = (jnp.arange(t) >= switch)[None, :, None]
        support = Batch(x=ep.support.x, y=jnp.where(late, permuted, ep.support.y))
        query = ep.query
        if permute_query:
            query = Batch(x=query.x, y=jax.vmap(lambda p, y: p[y])(perms, query.y))
        return Episode(support=support, query=query)

    return transform


def join(before: list[FamilyEvaluation], after: list[FamilyEvaluation], switch: int
         ) -> list[FamilyEvaluation]:
    """Curves [.., T+1] of ``before`` up to ``switch`` steps and of ``after`` beyond."""
    def cat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([a[..., :switch + 1], b[..., switch + 1:]], axis=-1)

    return [
        FamilyEvaluation(
            a.family,
            {k: cat(a.genomes[k], b.genomes[k]) for k in a.genomes},
            {k: BaselineCurves(a.baselines[k].lrs, cat(a.baselines[k].curves,
                                                        b.baselines[k].curves))
             for k in a.baselines},
        )
        for a, b in zip(before, after, strict=True)
    ]


@partial(jax.jit, static_argnames=("spec",))
def synapse_curves(genome: Genome, spec: NetworkSpec, support: Batch, keys: jax.Array
                   ) -> tuple[jax.Array, jax.Array]:
    """RMS of the forward synapses [N, T] after each step, and whether the run is finite [N, T].

    Args:
      support: x [N, T, B, n_0], y [N, T, B]; keys: [N] synapse-init keys.
    """
    def one(s: Batch, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        _, metrics = unroll(genome, spec, init_state(key, genome, spec, s.x.shape[1]), s)
        return metrics.synapse_norm, metrics.finite

    return jax.vmap(one)(support, keys)


def synapse_amplitudes(trained: dict[str, Trained], families: list[str], num_tasks: int,
                       num_steps: int, batch_size: int, switch: int,
                       key: jax.Array) -> dict[str, dict[str, list[float]]]:
    """Per variant, over fresh tasks of all families with labels permuted from ``switch``:
    the geometric mean over finite runs of the synapse RMS after each step, and the fraction
    of runs still finite."""
    out: dict[str, dict[str, list[float]]] = {}
    for name, t in trained.items():
        norms, finite = [], []
        for i, text in enumerate(families):
            family = build_family(text)
            transform = label_switch(switch, family.num_classes, permute_query=False)
            k = jax.random.fold_in(key, i)
            ep = transform(sample_tasks(family, k, num_tasks, num_steps, batch_size, 1),
                           jax.random.fold_in(k, 2))
            spec = t.variant.config.network.spec_for(family)
            n, f = synapse_curves(t.genome, spec, ep.support,
                                  jax.random.split(jax.random.fold_in(k, 1), num_tasks))
            norms.append(np.asarray(n))
            finite.append(np.asarray(f) & np.isfinite(np.asarray(n)))
        norm, ok = np.concatenate(norms), np.concatenate(finite)
        logs = np.where(ok, np.log(np.where(ok, norm, 1.0)), np.nan)
        with np.errstate(invalid="ignore"):
            counts = ok.sum(axis=0)
            geo = np.where(counts > 0, np.exp(np.nansum(logs, axis=0) / np.maximum(counts, 1)),
                           np.nan)
        out[name] = {"rms": [float(x) if np.isfinite(x) else None for x in geo],
                     "finite": ok.mean(axis=0).tolist()}
    return out


def plot_synapses(amplitudes: dict[str, dict[str, list[float | None]]], switch: int,
                  path: Path) -> Path:
    """Fig. 15's view: synapse RMS (log) and the fraction of finite runs against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, a in amplitudes.items():
        steps = np.arange(1, len(a["rms"]) + 1)
        rms = np.array([np.nan if x is None else x for x in a["rms"]])
        ax.semilogy(steps, rms, label=name)
        bx.plot(steps, a["finite"], label=name)
    for a in (ax, bx):
        a.axvline(switch, color="grey", ls="--", lw=1)
        a.set_xlabel("inner step")
        a.legend(fontsize=7)
    ax.set_title("synapse RMS (geometric mean over finite runs)", fontsize=9)
    bx.set_title("fraction of inner runs still finite", fontsize=9)
    bx.set_ylim(-0.02, 1.02)
    return save_figure(fig, path)


def all_variants(scale: str, seed: int = 0, meta_steps: int | None = None,
                 num_runs: int | None = None) -> list[Variant]:
    """One variant per stabiliser setting of :data:`STABILISERS` on the scale's base."""
    base = base_config(scale, seed, meta_steps, num_runs)
    return [Variant(name, with_network(base, synapse_stabiliser=stab),
                    f"synapse stabiliser: {' + '.join(stab) or 'none'}")
            for name, stab in STABILISERS.items()]


def run(
    out: Path, scale: str = "small", seed: int = 0, command: str | None = None,
    variants: tuple[str, ...] | None = None, num_steps: int | None = None,
    switch: int | None = None, meta_steps: int | None = None, num_runs: int | None = None,
) -> Outcome:
    """Meta-train each stabiliser setting, evaluate it over a long run with the labels
    randomised at ``switch``; writes ``stability.png``, ``synapses.png``, ``table.md`` and
    ``table.json``.

    Args:
      variants: stabiliser settings to run (default all four).
      num_steps, switch: the evaluation's inner steps and first permuted batch (default: the
        scale's; reported steps beyond ``num_steps`` are dropped).
      meta_steps, num_runs: override the scale's meta-steps and best-of-N runs per setting.
    """
    start = time.perf_counter()
    horizon = HORIZONS[scale]
    steps_n = num_steps if num_steps is not None else horizon.num_steps
    at = switch if switch is not None else horizon.switch
    if not (isinstance(steps_n, int) and isinstance(at, int) and 1 <= at < steps_n):
        raise ValueError(f"switch={at} must be an inner step in [1, num_steps={steps_n}): "
                         "some batches must come before and after the label randomisation")
    report = tuple(sorted({s for s in horizon.report_steps if s <= steps_n} | {at, steps_n}))
    chosen = select(all_variants(scale, seed, meta_steps, num_runs), variants)
    config = chosen[0].config
    families = config.tasks.evaluation_families()
    # the label derangement is drawn per number of classes (the toy families mix 2 and 5)
    classes = {f: build_family(f).num_classes for f in families}
    settings = dataclasses.replace(config.evaluation, report_steps=report)
    out.mkdir(parents=True, exist_ok=True)
    trained = train_all(chosen, out)
    probes = [Probe(v.name, v.name) for v in chosen]
    key = jax.random.fold_in(jax.random.PRNGKey(seed), EVAL_KEY)
    joined: dict[str, list[FamilyEvaluation]] = {}  # family -> its result on each network
    for c in sorted(set(classes.values())):
        subset = [f for f in families if classes[f] == c]
        before, after = (
            evaluate_probes(trained, probes, subset, settings, key,
                            transform=label_switch(at, c, permute_query=p), num_steps=steps_n)
            for p in (False, True)
        )
        for b, a in zip(before, after, strict=True):
            for f, r in zip(subset, join(b.results, a.results, at), strict=True):
                joined.setdefault(f, []).append(r)
    # every class count evaluates the same networks in the same order (before's groups)
    groups = [Group(g.hidden, g.probes, [joined[f][i] for f in families])
              for i, g in enumerate(before)]
    amplitudes = synapse_amplitudes(
        trained, list(families), settings.num_tasks, steps_n, settings.batch_size, at,
        jax.random.fold_in(key, 99))
    synapses = plot_synapses(amplitudes, at, out / "synapses.png")
    options = {"variants": [v.name for v in chosen], "num_steps": steps_n, "switch": at,
               "meta_steps": meta_steps, "num_runs": num_runs}
    return write_report(
        out, "stability", scale, seed, start, groups, trained, chosen, settings, families,
        f"Oja vs synapse normalisation over {steps_n} steps, labels permuted from step "
        f"{at + 1} on (App. C.5-C.6, Figs. 15-16)", options, command,
        marks=[(at, "labels permuted")],
        extra={"num_steps": steps_n, "switch": at,
               "meta_train_horizon": config.final_num_steps(), "synapses": amplitudes},
        figures=[synapses],
    )
