"""``blur meta-train``: gradient meta-training of R runs side by side, resumable.

Each meta-step's randomness is ``fold_in(seed key, step)``, and checkpoints hold the genomes,
Adam states, skip counters and the validation best, so a killed run resumed from its last
checkpoint ends with the same genome as an uninterrupted one (on the same machine).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from blur.experiments import runs
from blur.experiments.config import RunConfig, build_train_family
from blur.genome import Genome
from blur.io.checkpoint import load_checkpoint, save_checkpoint
from blur.io.genome_file import load_genome
from blur.io.metrics import truncate_metrics
from blur.outer import gradient

log = logging.getLogger("blur")


@dataclass
class MetaTrainResult:
    run_dir: Path
    genome: Genome
    best_score: float
    table: str
    wall_time: float
    skipped: list[int]
    best_step: int = -1  # meta-step of the selected genome (0: the initial genome won)


def _unstack(genomes: Genome, R: int) -> list[Genome]:
    return [jax.tree_util.tree_map(lambda x, r=r: x[r], genomes) for r in range(R)]


def meta_train(
    config: RunConfig,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    evaluate: bool = True,
) -> MetaTrainResult:
    """Run (or resume) gradient meta-training as configured; see the module docstring.

    Args:
      config: the resolved run configuration.
      resume: continue from ``run_dir/checkpoint.npz``.
      stop_after: stop (after checkpointing) once this meta-step is reached; for tests.
      evaluate: run the final evaluation table.
    """
    run_dir = runs.prepare_run_dir(config, resume)
    gs = config.gradient
    family = build_train_family(config.tasks)
    spec = config.network.spec_for(family)
    validator = runs.Validator(config)
    key = jax.random.PRNGKey(config.seed)
    R = gs.num_runs
    genome0 = runs.initial_genome(config, spec.num_layers, jax.random.fold_in(key, 0))
    genomes = jax.tree_util.tree_map(lambda x: jnp.stack([x] * R), genome0)
    optimizer = gradient.make_optimizer(gs.learning_rate, gs.clip_norm, gs.scale_by_parameter)
    state = gradient.init(genomes, optimizer)
    start, timer = 0, runs.Timer()
    if resume:
        state, meta = load_checkpoint(run_dir / runs.CHECKPOINT, like=state)
        start, timer = int(meta["step"]), runs.Timer(float(meta.get("wall_time", 0.0)))
        validator.restore(meta)
        # Train records carry the 0-based index of their step, validation records the number
        # of steps done: the checkpoint at `start` covers train steps < start and validation
        # steps <= start (a validation at a checkpoint step runs before the checkpoint).
        truncate_metrics(run_dir / runs.METRICS, start - 1, max_step_by_kind={"validation": start})
        log.info("resumed %s at meta-step %d", run_dir, start)

    step_key = jax.random.fold_in(key, 1)
    val_key = jax.random.fold_in(key, 2)
    end = gs.meta_steps if stop_after is None else min(gs.meta_steps, stop_after)
    last_skipped = np.asarray(state.skipped).copy()
    bar = runs.progress_bar(gs.meta_steps, start, f"meta-train {config.preset}")

    def checkpoint(step: int) -> None:
        save_checkpoint(
            run_dir / runs.CHECKPOINT,
            state,
            {
                "step": step,
                "wall_time": timer.elapsed(),
                "kind": "gradient",
                **validator.state(),
            },
        )

    val_T = config.validation_steps(gs.curriculum.num_steps(max(gs.meta_steps - 1, 0)))

    def validate(step: int) -> None:
        cfg = dataclasses.replace(
            config.objective.objective(val_T), num_tasks=config.validate_tasks
        )
        scores = []
        for fam in validator.families:
            aux = gradient.evaluate_runs(
                state.genomes, val_key, spec=config.network.spec_for(fam), family=fam, cfg=cfg
            )
            scores.append(np.where(np.asarray(aux.finite), np.asarray(aux.accuracy), 0.0))
        per_run = np.mean(np.stack(scores), axis=0)
        improved = validator.consider(per_run, _unstack(state.genomes, R), step, run_dir)
        runs.log_record(
            run_dir,
            {
                "step": step,
                "kind": "validation",
                "T": val_T,
                "scored_after": list(cfg.score_points()),
                "meta_val_accuracy": per_run.tolist(),
                "best_meta_val_accuracy": validator.best_score,
                "best_run": validator.best_run,
                "improved": improved,
                "wall_time": timer.elapsed(),
            },
        )

    if start == 0 and end > 0:
        # Score the initial genome too, so best-of-N never returns a genome that validates
        # worse than where meta-training started (genome.json then records step 0).
        validate(0)
    for step in range(start, end):
        T = gs.curriculum.num_steps(step)
        cfg = config.objective.objective(T)
        state, m = gradient.meta_step(
            state,
            jax.random.fold_in(step_key, step),
            spec=spec,
            family=family,
            cfg=cfg,
            optimizer=optimizer,
        )
        bar.update(1)
        skipped = np.asarray(state.skipped)
        if np.any(skipped > last_skipped):
            runs_hit = np.nonzero(skipped > last_skipped)[0].tolist()
            log.warning(
                "meta-step %d: non-finite inner loop in runs %s; update skipped "
                "(skipped so far: %s)",
                step,
                runs_hit,
                skipped.tolist(),
            )
            last_skipped = skipped.copy()
        done = step + 1
        if step % config.log_every == 0 or done == gs.meta_steps:
            g = state.genomes
            runs.log_record(
                run_dir,
                {
                    "step": step,
                    "kind": "train",
                    "T": T,
                    "meta_loss": np.asarray(m.loss).tolist(),
                    "meta_train_accuracy": np.asarray(m.accuracy).tolist(),
                    "grad_norm": np.asarray(m.grad_norm).tolist(),
                    "skipped": skipped.tolist(),
                    "gates": {
                        "f": np.asarray(g.f).tolist(),
                        "eta": np.asarray(g.eta).tolist(),
                        "f_tilde": np.asarray(g.f_tilde).tolist(),
                        "eta_tilde": np.asarray(g.eta_tilde).tolist(),
                    },
                    "wall_time": timer.elapsed(),
                },
            )
            bar.set_postfix(loss=f"{float(np.nanmean(np.asarray(m.loss))):.3f}", T=T)
        if done % config.validate_every == 0 or done == gs.meta_steps:
            validate(done)
        if done % config.checkpoint_every == 0 or done == end:
            checkpoint(done)
    bar.close()

    if validator.best_run < 0 and end < gs.meta_steps:
        # Stopped (stop_after) before the first validation: validating here would put a
        # selection into the checkpoint that an uninterrupted run never makes, so a resumed
        # run could end with another genome. Return run 0's current genome instead.
        return MetaTrainResult(
            run_dir,
            _unstack(state.genomes, R)[0],
            validator.best_score,
            "",
            timer.elapsed(),
            np.asarray(state.skipped).tolist(),
            validator.best_step,
        )
    if validator.best_run < 0:  # no validation happened (e.g. meta_steps=0)
        validate(end)
        checkpoint(end)
    best = load_genome(run_dir / runs.GENOME)
    table = (
        runs.final_evaluation(config, best, run_dir) if evaluate and end == gs.meta_steps else ""
    )
    return MetaTrainResult(
        run_dir,
        best,
        validator.best_score,
        table,
        timer.elapsed(),
        np.asarray(state.skipped).tolist(),
        validator.best_step,
    )
