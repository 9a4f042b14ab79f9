"""``blur evolve``: CMA-ES meta-training (paper §4.4), resumable.

Fitness is maximised (query accuracy by default, or minus the meta-loss); the CMA-ES adapter
minimises, so it is told the negated fitness. A non-finite inner loop scores the worst fitness.
Each generation's tasks come from ``fold_in(seed key, generation)`` and are shared by the whole
population (common random numbers). Checkpoints hold the told fitness history; resuming replays
it through CMA-ES, which rebuilds the exact state.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from blur.experiments import runs
from blur.experiments.config import RunConfig, build_train_family
from blur.genome import Genome, ravel_genome
from blur.io.checkpoint import load_checkpoint, load_meta, save_checkpoint
from blur.io.genome_file import load_genome
from blur.io.metrics import truncate_metrics
from blur.outer.evolution import CMAES, fitness_from_aux, score_population

log = logging.getLogger("blur")


@dataclass
class EvolveResult:
    run_dir: Path
    genome: Genome
    best_score: float
    table: str
    wall_time: float
    best_step: int = -1  # generation of the selected genome


def evolve(
    config: RunConfig,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    evaluate: bool = True,
) -> EvolveResult:
    """Run (or resume) CMA-ES meta-training as configured; see the module docstring."""
    run_dir = runs.prepare_run_dir(config, resume)
    ev = config.evolution
    family = build_train_family(config.tasks)
    spec = config.network.spec_for(family)
    validator = runs.Validator(config)
    key = jax.random.PRNGKey(config.seed)
    genome0 = runs.initial_genome(config, spec.num_layers, jax.random.fold_in(key, 0))
    x0, unravel = ravel_genome(genome0)
    x0 = np.asarray(x0, np.float64)
    cfg = config.objective.objective(ev.num_steps)
    start, timer = 0, runs.Timer()
    if resume:
        path = run_dir / runs.CHECKPOINT
        meta = load_meta(path)
        like = [np.zeros((p,), np.float64) for p in meta["popsizes"]]
        history, meta = load_checkpoint(path, like=like)
        es = CMAES.replay(x0, ev.cma, list(history))
        if not np.allclose(es.mean, np.asarray(meta["mean"]), rtol=0, atol=1e-9):
            raise runs.RunDirError(
                f"{path}: replaying the fitness history did not reproduce the saved CMA-ES "
                "mean (was it written by another pycma version or configuration?)"
            )
        start, timer = es.generation, runs.Timer(float(meta.get("wall_time", 0.0)))
        validator.restore(meta)
        # Train records carry the 0-based index of their step, validation records the number
        # of steps done: the checkpoint at `start` covers train steps < start and validation
        # steps <= start (a validation at a checkpoint step runs before the checkpoint).
        truncate_metrics(run_dir / runs.METRICS, start - 1, max_step_by_kind={"validation": start})
        log.info("resumed %s at generation %d", run_dir, start)
    else:
        es = CMAES(x0, ev.cma)

    gen_key = jax.random.fold_in(key, 1)
    val_key = jax.random.fold_in(key, 2)
    end = ev.generations if stop_after is None else min(ev.generations, stop_after)
    bar = runs.progress_bar(ev.generations, start, f"evolve {config.preset}")

    def checkpoint(gen: int) -> None:
        save_checkpoint(
            run_dir / runs.CHECKPOINT,
            list(es.history),
            {
                "step": gen,
                "kind": "cma",
                "popsizes": [len(h) for h in es.history],
                "mean": es.mean.tolist(),
                "wall_time": timer.elapsed(),
                **validator.state(),
            },
        )

    def validate(gen: int) -> None:
        vcfg = dataclasses.replace(
            cfg,
            num_tasks=config.validate_tasks,
            num_steps=config.validation_steps(ev.num_steps),
        )
        mean = np.asarray(es.mean, np.float32)[None]
        scores = []
        for fam in validator.families:
            aux = score_population(
                mean,
                val_key,
                unravel=unravel,
                spec=config.network.spec_for(fam),
                family=fam,
                cfg=vcfg,
            )
            scores.append(fitness_from_aux(aux, "accuracy"))
        score = np.nan_to_num(np.mean(np.stack(scores), axis=0), neginf=0.0)
        improved = validator.consider(score, [unravel(mean[0])], gen, run_dir)
        runs.log_record(
            run_dir,
            {
                "step": gen,
                "kind": "validation",
                "T": vcfg.num_steps,
                "scored_after": list(vcfg.score_points()),
                "meta_val_accuracy": score.tolist(),
                "best_meta_val_accuracy": validator.best_score,
                "improved": improved,
                "wall_time": timer.elapsed(),
            },
        )

    if start == 0 and end > 0:
        validate(0)  # the initial mean competes too (genome.json then records generation 0)
    for gen in range(start, end):
        X = es.ask()
        aux = score_population(
            X.astype(np.float32),
            jax.random.fold_in(gen_key, gen),
            unravel=unravel,
            spec=spec,
            family=family,
            cfg=cfg,
        )
        fitness = fitness_from_aux(aux, ev.fitness)
        es.tell(X, -fitness)  # pycma minimises: tell minus the fitness to maximise
        bad = int(np.sum(~np.isfinite(fitness)))
        if bad:
            log.warning(
                "generation %d: %d of %d genomes diverged (given the worst fitness)",
                gen,
                bad,
                len(fitness),
            )
        bar.update(1)
        done = gen + 1
        if gen % config.log_every == 0 or done == ev.generations:
            finite = fitness[np.isfinite(fitness)]
            runs.log_record(
                run_dir,
                {
                    "step": gen,
                    "kind": "train",
                    "fitness_best": float(finite.max()) if finite.size else None,
                    "fitness_mean": float(finite.mean()) if finite.size else None,
                    "meta_train_accuracy": float(np.mean(np.asarray(aux.accuracy))),
                    "meta_loss": float(np.nanmean(np.asarray(aux.loss))),
                    "diverged": bad,
                    "sigma": es.sigma,
                    "popsize": len(X),
                    "restarts": es.restart_count,
                    "T": ev.num_steps,
                    "wall_time": timer.elapsed(),
                },
            )
            bar.set_postfix(best=f"{float(np.max(fitness)):.3f}", sigma=f"{es.sigma:.3f}")
        if done % config.validate_every == 0 or done == ev.generations:
            validate(done)
        if done % config.checkpoint_every == 0 or done == end:
            checkpoint(done)
    bar.close()
    if validator.best_run < 0 and end < ev.generations:
        # Stopped (stop_after) before the first validation: validating here would put a
        # selection into the checkpoint that an uninterrupted run never makes (see meta_train).
        return EvolveResult(
            run_dir,
            unravel(np.asarray(es.mean, np.float32)),
            validator.best_score,
            "",
            timer.elapsed(),
            validator.best_step,
        )
    if validator.best_run < 0:  # no validation happened (e.g. generations=0)
        validate(end)
        checkpoint(end)
    best = load_genome(run_dir / runs.GENOME)
    table = (
        runs.final_evaluation(config, best, run_dir) if evaluate and end == ev.generations else ""
    )
    return EvolveResult(
        run_dir, best, validator.best_score, table, timer.elapsed(), validator.best_step
    )
