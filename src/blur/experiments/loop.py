"""The one run loop: drives either meta-optimiser, validates, selects, checkpoints, resumes.

``blur meta-train`` and ``blur evolve`` are thin adapters over :func:`run`; the method comes
from ``config.method`` and the meta-optimiser from :func:`make_trainer`
(:class:`blur.outer.base.MetaTrainer`). Randomness: meta-step ``s`` gets
``fold_in(fold_in(seed key, 1), s)``, validation always ``fold_in(seed key, 2)`` (the same tasks
at every validation, so scores compare), the initial genome ``fold_in(seed key, 0)``, the
explore step ``fold_in(fold_in(seed key, 3), s)`` and the runs' initial spread
``fold_in(seed key, 4)``, the calibration (``config.calibration``) ``fold_in(seed key, 5)``.
A killed run resumed from its last checkpoint ends with the same
genome, metrics and checkpoint as an uninterrupted one (on the same machine).

Several processes (``jax.distributed``, :mod:`blur.outer.sharding`): every process runs this
loop on whole arrays and computes the same validation; only process 0 writes the run folder
(config, metrics, checkpoints, ``genome.json``, the final table and plots) and shows progress.

Hooks: ``on_validation(step, score)`` sees the best validation score of each validation and may
raise (a sweep's pruner stops a trial here); ``on_checkpoint(step)`` runs after each checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from blur.experiments import runs
from blur.experiments.config import RunConfig, build_family, build_train_family
from blur.experiments.evaluation import Contender, evaluate_report
from blur.genome import Genome, scale_output_logits
from blur.io.atomic import write_text_atomic
from blur.io.checkpoint import load_checkpoint, load_meta, save_checkpoint
from blur.io.genome_file import load_genome, load_genome_file, save_genome
from blur.io.metrics import append_metrics, read_metrics, truncate_metrics
from blur.network import NetworkConfig
from blur.outer.base import MetaTrainer
from blur.outer.evolution import EvolutionTrainer
from blur.outer.gradient import GradientTrainer, make_optimizer, parse_frozen, unstack
from blur.outer.objective import score_genomes
from blur.outer.sharding import device_count, is_primary, shard_population

log = logging.getLogger("blur")

Hook = Callable[[int, float], None]


@dataclass
class RunResult:
    """What a finished (or stopped) run returns.

    Attributes:
      run_dir: the run folder.
      genome: the selected genome (``genome.json``), or, when stopped before any validation,
        the first candidate.
      best_score: its validation score (-inf if none yet).
      best_step: the meta-step (generation) it was validated at; 0 is the initial genome.
      best_run: which run (0 for CMA-ES).
      table: the final evaluation table ("" when not evaluated).
      wall_time: seconds, over all sessions of the run.
      summary: the meta-optimiser's counters (``skipped`` and ``dropped`` runs, or
        ``diverged`` candidates), and ``output_scale`` / ``hebbian_decay`` where the run
        was calibrated.
    """

    run_dir: Path
    genome: Genome
    best_score: float
    best_step: int
    best_run: int
    table: str
    wall_time: float
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def skipped(self) -> list[int]:
        """Skipped updates per run (gradient meta-training)."""
        return list(self.summary.get("skipped", []))


def make_trainer(config: RunConfig, genome: Genome) -> MetaTrainer[Any]:
    """The meta-optimiser that ``config.method`` names, on the run's training tasks."""
    family = build_train_family(config.tasks)
    spec = config.network.spec_for(family)
    if config.method == "gradient":
        gs = config.gradient
        frozen = parse_frozen(gs.frozen)
        return GradientTrainer(
            genome=genome,
            spec=spec,
            family=family,
            objective=config.objective,
            curriculum=gs.curriculum,
            optimizer=make_optimizer(
                gs.learning_rate,
                gs.clip_norm,
                gs.scale_by_parameter,
                decay_steps=gs.meta_steps if gs.schedule == "cosine" else 0,
                final_fraction=gs.final_lr_fraction,
                frozen=frozen,
            ),
            num_runs=gs.num_runs,
            drop_after=gs.drop_after,
            exploit_below=gs.exploit_below,
            explore_scale=gs.explore_scale,
            init_spread=gs.init_spread,
            init_key=jax.random.fold_in(jax.random.PRNGKey(config.seed), 4),
            place=_placer(config.devices, strict=True),
            frozen=frozen,
        )
    return EvolutionTrainer(
        genome=genome,
        spec=spec,
        family=family,
        objective=config.objective,
        cma=config.evolution.cma,
        fitness=config.evolution.fitness,
        place=_placer(config.devices, strict=False),
    )


def _placer(devices: int | None, *, strict: bool) -> Callable[[Any], Any] | None:
    """Shard a population's leading axis over ``devices`` when there is more than one.

    ``strict``: a population not divisible by the device count is an error (the gradient runs,
    fixed for the whole run); otherwise it stays unsharded (a CMA-ES restart's population).
    """
    n = device_count(devices)
    if n <= 1:
        return None

    def place(tree: Any) -> Any:
        size = jax.tree_util.tree_leaves(tree)[0].shape[0]
        if size % n and not strict:
            return tree
        return shard_population(tree, devices=n)

    return place


@dataclass
class Validation:
    """Held-out families scored during a run, always on the same tasks (a fixed key)."""

    config: RunConfig
    key: jax.Array
    families: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        self.families = tuple(build_family(t) for t in self.config.tasks.validate)
        self.cfg = dataclasses.replace(
            self.config.objective,
            num_steps=self.config.validation_steps(),
            num_tasks=self.config.validate_tasks,
        )

    def __call__(self, genomes: Genome) -> np.ndarray:
        """Mean query accuracy [R] over the families (0 where an inner loop diverged)."""
        scores = []
        for family in self.families:
            aux = score_genomes(
                genomes, self.key, spec=self.config.network.spec_for(family), family=family,
                cfg=self.cfg,
            )
            scores.append(np.where(np.asarray(aux.finite), np.asarray(aux.accuracy), 0.0))
        return np.mean(np.stack(scores), axis=0)


def _calibration_run(config: RunConfig) -> RunConfig:
    """``config`` with its validation scored as the calibration asks (steps, tasks)."""
    cal = config.calibration
    return dataclasses.replace(
        config,
        validate_num_steps=max(cal.steps),
        validate_tasks=cal.num_tasks,
        objective=dataclasses.replace(config.objective, score_steps=tuple(cal.steps)),
    )


def calibrate_output_scale(
    config: RunConfig, genome: Genome, key: jax.Array
) -> tuple[float, np.ndarray]:
    """The factor of ``config.calibration.output_scales`` whose logit spread validates best.

    Each factor scales the output layer's forward-normalisation scale
    (:func:`blur.genome.scale_output_logits`); the variants are scored like a meta-validation
    (:class:`Validation`) on ``calibration.num_tasks`` tasks, the query accuracy averaged
    over ``calibration.steps``. The first listed factor wins a tie.

    Returns:
      (the chosen factor, the mean validation accuracy of every factor [S]).
    """
    cal = config.calibration
    variants = [scale_output_logits(genome, f) for f in cal.output_scales]
    stacked = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *variants)
    scores = Validation(_calibration_run(config), key)(stacked)
    return cal.output_scales[int(np.argmax(scores))], scores


def calibrate_hebbian_decay(
    config: RunConfig, genome: Genome, key: jax.Array
) -> tuple[float, np.ndarray]:
    """The step-size decay of ``config.calibration.hebbian_decays`` that validates best.

    ``genome`` trains networks with each decay in turn as ``network.hebbian_decay``
    (:func:`blur.inner.decay_synapse_change`), scored like :func:`calibrate_output_scale`
    (the same tasks for every decay). The first listed decay wins a tie.

    Returns:
      (the chosen decay, the mean validation accuracy of every decay [D]).
    """
    cal, scored = config.calibration, _calibration_run(config)
    scores = np.concatenate([
        Validation(dataclasses.replace(
            scored, network=dataclasses.replace(config.network, hebbian_decay=d)), key,
        )(jax.tree_util.tree_map(lambda x: x[None], genome))
        for d in cal.hebbian_decays
    ])
    return cal.hebbian_decays[int(np.argmax(scores))], scores


@dataclass
class Selection:
    """Best-of-N: keeps the best validated genome and writes it to ``genome.json``."""

    config: RunConfig
    run_dir: Path
    best_score: float = -np.inf
    best_step: int = -1
    best_run: int = -1
    write: bool = True
    best_genome: Genome | None = None

    def consider(self, scores: np.ndarray, eligible: np.ndarray, genomes: Genome,
                 step: int) -> bool:
        """Keep the best eligible of ``scores`` [R]; write ``genome.json`` when it improves."""
        masked = np.where(eligible, scores, -np.inf)
        r = int(np.argmax(masked))
        if not np.isfinite(masked[r]) or float(masked[r]) <= self.best_score:
            return False
        self.best_score, self.best_step, self.best_run = float(masked[r]), step, r
        self.best_genome = unstack(genomes)[r]
        if not self.write:  # not process 0 of a multi-process run
            return True
        save_genome(
            self.best_genome,
            self.run_dir / runs.GENOME,
            network=self.config.network,
            method=self.config.method,
            step=step,
            run=r,
            meta_val_accuracy=self.best_score,
            preset=self.config.preset,
            seed=self.config.seed,
        )
        return True

    def state(self) -> dict[str, Any]:
        # -inf (nothing validated yet) is not JSON: stored as null.
        best = self.best_score if np.isfinite(self.best_score) else None
        return {"best_score": best, "best_step": self.best_step, "best_run": self.best_run}

    def restore(self, meta: dict[str, Any]) -> None:
        best = meta.get("best_score")
        self.best_score = -np.inf if best is None else float(best)  # 0.0 is a valid best
        self.best_step = int(meta.get("best_step", -1))
        self.best_run = int(meta.get("best_run", -1))


def run(
    config: RunConfig,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    evaluate: bool = True,
    on_validation: Hook | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> RunResult:
    """Run (or resume) meta-training as configured; see the module docstring.

    Args:
      config: the resolved run configuration (``config.method`` picks the meta-optimiser).
      resume: continue from ``run_dir/checkpoint.npz``.
      stop_after: stop (after checkpointing) once this meta-step is reached; for tests.
      evaluate: run the final evaluation table (and plots) when the run completes.
      on_validation, on_checkpoint: hooks (module docstring).
    """
    primary = is_primary()
    run_dir = runs.prepare_run_dir(config, resume, write=primary)
    key = jax.random.PRNGKey(config.seed)
    genome0 = runs.initial_genome(config, config.network.num_layers, jax.random.fold_in(key, 0))
    trainer = make_trainer(config, genome0)
    devices = device_count(config.devices)
    if primary and devices > 1:
        log.info("the population is split over %d devices in %d processes", devices,
                 jax.process_count())
    validation = Validation(config, jax.random.fold_in(key, 2))
    selection = Selection(config, run_dir, write=primary)
    total = config.total_steps
    start, timer = 0, runs.Timer()
    unit = "meta-step" if config.method == "gradient" else "generation"
    if resume:
        path = run_dir / runs.CHECKPOINT
        meta = load_meta(path)
        if meta.get("kind", config.method) != config.method:
            raise runs.RunDirError(
                f"{path} was written by method {meta.get('kind')!r} but the run's config says "
                f"{config.method!r}; resume it with the command that started it"
            )
        tree, meta = load_checkpoint(path, like=trainer.checkpoint_template(meta))
        try:
            state = trainer.from_checkpoint(tree, meta)
        except ValueError as e:
            raise runs.RunDirError(f"{path}: {e}") from None
        start, timer = int(meta["step"]), runs.Timer(float(meta.get("wall_time", 0.0)))
        selection.restore(meta)
        # Train records carry the 0-based index of their step, validation records the number
        # of steps done: the checkpoint at `start` covers train steps < start and validation
        # steps <= start (a validation at a checkpoint step runs before the checkpoint).
        if primary:
            truncate_metrics(run_dir / runs.METRICS, start - 1,
                             max_step_by_kind={"validation": start})
        log.info("resumed %s at %s %d", run_dir, unit, start)
    else:
        state = trainer.init()

    step_key = jax.random.fold_in(key, 1)
    explore_key = jax.random.fold_in(key, 3)  # the validations' own keys (2 is the validation's)
    end = total if stop_after is None else min(total, stop_after)
    bar = runs.progress_bar(total, start, f"{config.method} {config.preset}", show=primary)

    def log_record(record: dict[str, Any]) -> None:
        if primary:
            append_metrics(run_dir / runs.METRICS, {**record, "wall_time": timer.elapsed()})

    def checkpoint(step: int) -> None:
        if not primary:
            return
        tree, extra = trainer.to_checkpoint(state)
        meta = {"step": step, "wall_time": timer.elapsed(), "kind": config.method, **extra,
                **selection.state()}
        save_checkpoint(run_dir / runs.CHECKPOINT, tree, meta)
        if on_checkpoint is not None:
            on_checkpoint(step)

    def validate(step: int) -> None:
        nonlocal state
        genomes, eligible = trainer.candidates(state)
        scores = validation(genomes)
        improved = selection.consider(scores, eligible, genomes, step)
        state, extra = trainer.after_validation(
            state, scores, jax.random.fold_in(explore_key, step)
        )
        log_record({
            "step": step,
            "kind": "validation",
            "T": validation.cfg.num_steps,
            "scored_after": list(validation.cfg.score_points()),
            "meta_val_accuracy": scores.tolist(),
            "best_meta_val_accuracy": selection.best_score,
            "best_run": selection.best_run,
            "improved": improved,
            **extra,
        })
        best_now = float(np.max(np.where(eligible, scores, -np.inf)))
        message = (f"{unit} {step}/{total}: validation {100 * best_now:.1f}% "
                   f"(best {100 * selection.best_score:.1f}% at {unit} {selection.best_step})")
        if extra.get("restarted_from"):
            message += f"; {len(extra['restarted_from'])} run(s) restarted from a better one"
        if primary:
            (log.info if bar.disable else bar.write)(message)
        if on_validation is not None:
            on_validation(step, best_now)

    if start == 0 and end > 0:
        # Score the initial genome too, so best-of-N never returns a genome that validates
        # worse than where meta-training started (genome.json then records step 0).
        validate(0)
    for step in range(start, end):
        state, report = trainer.step(state, step, jax.random.fold_in(step_key, step))
        for event in report.events if primary else ():
            log.warning(event)
        bar.update(1)
        done = step + 1
        if step % config.log_every == 0 or done == total:
            log_record({"step": step, "kind": "train", **report.record})
            bar.set_postfix(**report.postfix)
        if done % config.validate_every == 0 or done == total:
            validate(done)
        if done % config.checkpoint_every == 0 or done == end:
            checkpoint(done)
    bar.close()

    extra_summary: dict[str, Any] = {}

    def result(genome: Genome, table: str) -> RunResult:
        summary = {**trainer.summary(state), **extra_summary}
        if primary and config.method == "gradient" and config.gradient.exploit_below is not None:
            # counted from the run's validation records, so a resumed run counts them all
            summary["restarts"] = sum(
                len(r.get("restarted_from", {})) for r in read_metrics(run_dir / runs.METRICS)
                if r["kind"] == "validation"
            )
        return RunResult(run_dir, genome, selection.best_score, selection.best_step,
                         selection.best_run, table, timer.elapsed(), summary)

    if selection.best_run < 0 and end < total:
        # Stopped (stop_after) before the first validation: validating here would put a
        # selection into the checkpoint that an uninterrupted run never makes, so a resumed
        # run could end with another genome. Return the first candidate instead.
        return result(unstack(trainer.candidates(state)[0])[0], "")
    if selection.best_run < 0:  # no validation happened (e.g. zero meta-steps)
        validate(end)
        checkpoint(end)
    if primary:
        best = load_genome(run_dir / runs.GENOME)
    elif selection.best_genome is not None:
        best = selection.best_genome
    else:  # resumed, and nothing improved since: genome.json is the primary's to read
        best = load_genome(run_dir / runs.GENOME)
    network = config.network
    if end == total and config.calibration.enabled:
        best, network, chosen = _calibrate(config, run_dir, best, jax.random.fold_in(key, 5),
                                           primary, log_record)
        extra_summary.update(chosen)
    table = ""
    if evaluate and end == total and primary:
        table = final_evaluation(config, best, run_dir, network)
    return result(best, table)


# how the calibration's log line names each value: (what it is, the prefix of a value)
_CALIBRATION_LABELS = {
    "output_scale": ("output scale", "x"),
    "hebbian_decay": ("Hebbian decay", ""),
}


def _calibrate(
    config: RunConfig, run_dir: Path, selected: Genome, key: jax.Array, primary: bool,
    log_record: Callable[[dict[str, Any]], None],
) -> tuple[Genome, NetworkConfig, dict[str, float]]:
    """Calibrate the selected genome into ``genome.json``: the output scale
    (:func:`calibrate_output_scale`), then, with that scale, the step-size decay
    (:func:`calibrate_hebbian_decay`), each where ``config.calibration`` lists values.

    The selected genome is kept in ``genome_uncalibrated.json``; a finished run resumed again
    calibrates that one again (same key, same choice) instead of calibrating twice.

    Returns:
      (the calibrated genome, the network it trains, {"output_scale": ..,
      "hebbian_decay": ..} for what was calibrated).
    """
    cal = config.calibration
    path, kept = run_dir / runs.GENOME, run_dir / runs.UNCALIBRATED
    source = load_genome_file(path) if path.exists() else None
    if source is not None and "uncalibrated" in source.metadata:
        source = load_genome_file(kept)
        selected = source.genome
    genome, network = selected, config.network
    # what was calibrated: name -> (the chosen value, the values tried, their scores [V])
    done: dict[str, tuple[float, tuple[float, ...], np.ndarray]] = {}
    if cal.output_scales:
        factor, by_scale = calibrate_output_scale(config, genome, key)
        genome = scale_output_logits(genome, factor)
        done["output_scale"] = (factor, cal.output_scales, by_scale)
    if cal.hebbian_decays:
        decay, by_decay = calibrate_hebbian_decay(config, genome, key)
        network = dataclasses.replace(network, hebbian_decay=decay)
        done["hebbian_decay"] = (decay, cal.hebbian_decays, by_decay)
    chosen = {name: value for name, (value, _, _) in done.items()}
    if primary:
        scores = {f"{name}_scores": dict(zip(map(str, values), by.tolist(), strict=True))
                  for name, (_, values, by) in done.items()}
        meta = dict(source.metadata) if source is not None else {}
        save_genome(selected, kept, network=config.network, method=config.method, **meta)
        save_genome(genome, path, network=network, method=config.method, **meta, **chosen,
                    **scores, uncalibrated=runs.UNCALIBRATED)
        log_record({"step": config.total_steps, "kind": "calibration", **chosen, **scores})
        tried = []
        for name, (value, values, by) in done.items():
            label, unit = _CALIBRATION_LABELS[name]
            tried.append(f"{label} {unit}{value:g} of " + ", ".join(
                f"{unit}{v:g} {100 * a:.1f}%" for v, a in zip(values, by, strict=True)))
        log.info("calibration, chosen on validation (accuracy after steps %s): %s",
                 ", ".join(map(str, cal.steps)), "; ".join(tried))
    return genome, network, chosen


def final_evaluation(
    config: RunConfig, genome: Genome, run_dir: Path, network: NetworkConfig | None = None
) -> str:
    """Evaluate ``genome`` (training ``network``, by default the run's) on the run's
    evaluation families vs tuned baselines.

    Writes ``eval.json``, ``eval.md`` (the table) and the plots; returns the table.
    """
    from blur.io.plots import plot_run

    report = evaluate_report(
        [Contender("BLUR", genome, network or config.network)],
        config.tasks.evaluation_families(),
        config.evaluation,
        jax.random.fold_in(jax.random.PRNGKey(config.seed), 777),
    )
    write_text_atomic(run_dir / runs.EVAL, runs.dump_json(report.data))
    write_text_atomic(run_dir / "eval.md", report.table + "\n")
    plot_run(run_dir)
    return report.table
