"""Judge a rule: accuracy after each inner step on held-out tasks, next to tuned baselines.

Both the BLUR network and the gradient baselines are trained on the same support batches and
scored on the same query examples of the same sampled tasks.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from blur.baselines import tuned_curves
from blur.genome import Genome
from blur.inner import accuracy, predict, step
from blur.network import NetworkSpec, init_state
from blur.tasks.base import Batch, Episode, TaskFamily


@partial(jax.jit, static_argnames=("spec",))
def blur_curve(
    genome: Genome, spec: NetworkSpec, support: Batch, query: Batch, key: jax.Array
) -> jax.Array:
    """Query accuracy after 0..T BLUR steps on support x [T, B, n_0]; query x [M, n_0].

    Returns:
      [T + 1] accuracies.
    """
    state = init_state(key, genome, spec, support.x.shape[1])

    def acc(s: Any) -> jax.Array:
        return accuracy(predict(genome, spec, s, query.x), query.y)

    def body(s: Any, batch: Batch) -> tuple[Any, jax.Array]:
        s, _ = step(genome, spec, s, batch)
        return s, acc(s)

    _, accs = jax.lax.scan(body, state, support)
    return jnp.concatenate([acc(state)[None], accs])


def sample_eval_episodes(
    family: TaskFamily,
    key: jax.Array,
    num_tasks: int,
    num_steps: int,
    batch_size: int,
    query_size: int,
) -> Episode:
    """``num_tasks`` episodes with support x [N, T, B, n] and flat query x [N, M, n]."""
    keys = jax.random.split(key, num_tasks)
    eps = jax.vmap(lambda k: family.sample(k, num_steps, batch_size, 1, query_size))(keys)
    query = Batch(x=eps.query.x[:, 0], y=eps.query.y[:, 0])
    return Episode(support=eps.support, query=query)


def evaluate_family(
    genome: Genome,
    spec: NetworkSpec,
    family: TaskFamily,
    key: jax.Array,
    *,
    num_steps: int,
    num_tasks: int,
    batch_size: int,
    query_size: int,
    baselines: tuple[str, ...] = ("sgd",),
) -> dict[str, Any]:
    """Accuracy curves of the genome and of each oracle-tuned baseline on ``family``.

    Returns:
      ``{"family", "blur": [T+1], "<opt>": {"curve": [T+1] best per step, "lr": [T+1]}}``.
    """
    ep = sample_eval_episodes(family, key, num_tasks, num_steps, batch_size, query_size)
    init_keys = jax.random.split(jax.random.fold_in(key, 1), num_tasks)
    blur_acc = jax.vmap(lambda s, q, k: blur_curve(genome, spec, s, q, k))(
        ep.support, ep.query, init_keys
    )
    out: dict[str, Any] = {
        "family": family.name,
        "blur": np.asarray(jnp.mean(blur_acc, axis=0)).tolist(),
        "blur_std": np.asarray(jnp.std(blur_acc, axis=0)).tolist(),
    }
    for name in baselines:
        lrs, curves = tuned_curves(init_keys, ep.support, ep.query, spec.layer_sizes, name)
        best = np.asarray(jnp.argmax(curves, axis=0))
        out[name] = {
            "curve": np.asarray(jnp.max(curves, axis=0)).tolist(),
            "lr": np.asarray(lrs)[best].tolist(),
        }
    return out


def format_table(results: list[dict[str, Any]], report_steps: tuple[int, ...]) -> str:
    """A plain-text table: family, then BLUR and each baseline at the report steps (%)."""
    baselines = (
        [k for k in results[0] if k not in ("family", "blur", "blur_std")] if results else []
    )
    head = ["task"] + [f"BLUR@{t}" for t in report_steps]
    for b in baselines:
        head += [f"{b.upper()}@{t}" for t in report_steps]
    rows = [head]
    for r in results:
        row = [r["family"]] + [f"{100 * r['blur'][t]:.1f}" for t in report_steps]
        for b in baselines:
            row += [f"{100 * r[b]['curve'][t]:.1f} ({r[b]['lr'][t]:g})" for t in report_steps]
        rows.append(row)
    if len(results) > 1:
        mean = ["mean"] + [
            f"{100 * np.mean([r['blur'][t] for r in results]):.1f}" for t in report_steps
        ]
        for b in baselines:
            mean += [
                f"{100 * np.mean([r[b]['curve'][t] for r in results]):.1f}" for t in report_steps
            ]
        rows.append(mean)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
