"""``omniglot`` (paper §4.5, Fig. 9's setting): meta-train on 10-way Omniglot episodes, evaluate
on disjoint class subsets that neither meta-training nor selection saw, and on MNIST.

The paper: 10-way episodes from 1200 classes, evaluated on 10 subsets, best of 8 runs; error
bars = s.d. over the 10 Omniglot subsets.

Here (the imported data are the two small background subsets): meta-training on the
``omniglot`` preset's tasks (10-way episodes of ``background_small1``: Balinese, Early
Aramaic, Greek, Korean, Latin), selection on the ``val`` character carve-out of the alphabets
that only ``background_small2`` has (Japanese katakana, Sanskrit, Tagalog), and evaluation on
the ``train`` carve-out of those same alphabets (84 characters), cut into disjoint subsets of
10 characters (classes ``10i .. 10i+9``; 8 subsets): each subset is a 10-way family whose
episodes use exactly its 10 classes. Alphabets disjoint from training and characters disjoint
from selection, so no evaluated character was ever seen. The genome is also evaluated on the
MNIST test set (``mnist?query_split=test``, 28x28, 10 classes). All beside tuned SGD on the same
batches (:mod:`blur.experiments.reproduce.ablation`); the table adds the mean ± s.d. over the
subsets of each subset's mean accuracy.

Scales: ``tiny`` (tests) hidden (8,), 2 meta-steps, 2 subsets; ``small`` hidden (128,), K=4,
150 meta-steps at T=10, best of 2 runs, 8 subsets x 10 tasks; ``paper`` the preset (hidden
(256,), 1000 meta-steps, best of 4) and 8 subsets.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from blur.experiments.config import EvalSettings, RunConfig, TaskConfig, get_preset
from blur.experiments.reproduce.ablation import (
    EVAL_KEY,
    Group,
    Probe,
    Variant,
    evaluate_probes,
    train_all,
    write_report,
)
from blur.experiments.reproduce.common import Outcome, markdown_table
from blur.outer.gradient import Curriculum
from blur.tasks.images import NWayEpisodes

HELD_OUT = dict(subsets="background_small2", exclude_alphabets=("Greek", "Latin"))
HELD_OUT_QUERY = "subsets=background_small2&exclude_alphabets=Greek,Latin"
NUM_SUBSETS = {"tiny": 2, "small": 8, "paper": 8}
MNIST = "mnist?query_split=test"


def config_at(scale: str, seed: int, meta_steps: int | None, num_runs: int | None) -> RunConfig:
    """The run config of the scale (module docstring)."""
    c = get_preset("omniglot")
    tasks = TaskConfig(train=c.tasks.train,
                       validate=(f"omniglot?num_ways=10&{HELD_OUT_QUERY}&split=val",))
    c = dataclasses.replace(c, tasks=tasks)
    if scale == "tiny":
        c = dataclasses.replace(
            c,
            network=dataclasses.replace(c.network, hidden=(8,)),
            objective=dataclasses.replace(c.objective, num_tasks=2, batch_size=10,
                                          query_batch_size=10),
            gradient=dataclasses.replace(c.gradient, meta_steps=2, num_runs=1,
                                         curriculum=Curriculum(start=3, increment=0, every=0,
                                                               maximum=3)),
            validate_every=2, validate_tasks=2, checkpoint_every=2, log_every=1,
            evaluation=EvalSettings(report_steps=(2, 4), num_tasks=2, batch_size=10,
                                    query_size=20),
        )
    elif scale == "small":
        c = dataclasses.replace(
            c,
            network=dataclasses.replace(c.network, hidden=(128,)),
            gradient=dataclasses.replace(c.gradient, meta_steps=150, num_runs=2,
                                         curriculum=Curriculum(start=10, increment=0,
                                                               every=0, maximum=10)),
            validate_every=50, checkpoint_every=50,
            evaluation=dataclasses.replace(c.evaluation, report_steps=(10, 25, 50)),
        )
    elif scale != "paper":
        raise ValueError(f"unknown scale {scale!r}; choose tiny, small or paper")
    for name, value in (("meta_steps", meta_steps), ("num_runs", num_runs)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"{name}={value!r} must be a positive integer")
    g = dataclasses.replace(c.gradient, meta_steps=meta_steps or c.gradient.meta_steps,
                            num_runs=num_runs or c.gradient.num_runs)
    return dataclasses.replace(c, seed=seed, gradient=g)


def subsets(num: int) -> list[NWayEpisodes]:
    """``num`` disjoint 10-way families of held-out characters (module docstring).

    Raises:
      ValueError: fewer than ``10 * num`` held-out characters.
    """
    pool = NWayEpisodes.from_omniglot(10, split="train", **HELD_OUT)  # type: ignore[arg-type]
    if pool.num_pool_classes < 10 * num:
        raise ValueError(f"{num} disjoint 10-way subsets need {10 * num} held-out characters; "
                         f"there are {pool.num_pool_classes}")
    return [NWayEpisodes.from_omniglot(
        10, split="train", classes=f"{10 * i}-{10 * i + 9}", name=f"held-out {10 * i}-{10 * i + 9}",
        **HELD_OUT) for i in range(num)]  # type: ignore[arg-type]


def subset_spread(group: Group, name: str, steps: tuple[int, ...]) -> list[dict[str, Any]]:
    """At each step, the mean over tasks per subset of ``name``'s accuracy, and their mean
    and s.d. over the subsets."""
    out = []
    for s in steps:
        per = [float(r.curves()[name][:, s].mean()) for r in group.results]
        out.append({"step": int(s), "subsets": per, "mean": float(np.mean(per)),
                    "sd": float(np.std(per, ddof=1)) if len(per) > 1 else float("nan")})
    return out


def run(
    out: Path, scale: str = "small", seed: int = 0, command: str | None = None,
    meta_steps: int | None = None, num_runs: int | None = None,
) -> Outcome:
    """Meta-train on Omniglot, evaluate on the held-out subsets and MNIST; writes
    ``omniglot.png``, ``table.md`` and ``table.json``.

    Args:
      meta_steps, num_runs: override the scale's meta-steps and best-of-N runs.
    """
    start = time.perf_counter()
    config = config_at(scale, seed, meta_steps, num_runs)
    families = subsets(NUM_SUBSETS[scale])
    out.mkdir(parents=True, exist_ok=True)
    variant = Variant("omniglot", config, "meta-trained on 10-way background_small1 episodes")
    trained = train_all([variant], out)
    settings = config.evaluation
    key = jax.random.fold_in(jax.random.PRNGKey(seed), EVAL_KEY)
    held = evaluate_probes(trained, [Probe("held-out subsets", "omniglot")], families,
                           settings, key)
    mnist = evaluate_probes(trained, [Probe("MNIST (transfer)", "omniglot")], [MNIST],
                            settings, jax.random.fold_in(key, 1))
    steps = tuple(settings.report_steps)
    spread = {name: subset_spread(held[0], name, steps) for name in ("held-out subsets", "sgd")}
    head = ["step", "BLUR: mean ± s.d. over subsets", "SGD: mean ± s.d. over subsets",
            "BLUR: worst–best subset"]
    body = [[str(s), f"{100 * b['mean']:.1f} ± {100 * b['sd']:.1f}",
             f"{100 * g['mean']:.1f} ± {100 * g['sd']:.1f}",
             f"{100 * min(b['subsets']):.1f}–{100 * max(b['subsets']):.1f}"]
            for s, b, g in zip(steps, spread["held-out subsets"], spread["sgd"], strict=True)]
    notes = (f"Spread over the {len(families)} disjoint held-out subsets (each subset's mean "
             f"over its {settings.num_tasks} tasks), query accuracy (%):\n\n"
             + markdown_table(head, body))
    num_mnist = mnist[0].results[0].curves()["sgd"].shape[0]
    return write_report(
        out, "omniglot", scale, seed, start, [*held, *mnist], trained, [variant], settings,
        [f.name for f in families],
        f"Omniglot 10-way (§4.5): held-out character subsets, and MNIST transfer (its row: "
        f"{num_mnist} tasks of {MNIST})",
        {"meta_steps": meta_steps, "num_runs": num_runs}, command,
        extra={"subset_spread": spread, "num_subsets": len(families)}, notes=notes)
