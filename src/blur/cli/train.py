"""``blur meta-train`` and ``blur evolve``: pick a preset (or a config file), override any field,
run or resume."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import tyro

from blur.experiments.config import PRESETS, RunConfig, get_preset


def _parse(argv: list[str], prog: str, default_preset: str, method: str) -> tuple[RunConfig, bool]:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=None)
    pre.add_argument("--config", type=Path, default=None)
    pre.add_argument("--resume", type=Path, default=None)
    known, rest = pre.parse_known_args(argv)
    wants_help = any(a in ("-h", "--help") for a in rest)
    if known.resume is not None and not wants_help:  # --help goes to tyro (it prints, exits)
        from blur.experiments.runs import load_run_config

        if rest or known.preset or known.config:
            raise SystemExit(f"{prog}: --resume takes no other options (the run's config.json "
                             f"is used as written); got {argv}")
        config = load_run_config(known.resume)
        if config.method != method:
            other = "blur evolve" if config.method == "cma" else "blur meta-train"
            raise SystemExit(f"{prog}: {known.resume} is a {config.method} run; resume it with "
                             f"`{other} --resume {known.resume}`")
        return config, True
    default = base_config(prog, known.preset, known.config, default_preset)
    default = dataclasses.replace(default, method=method)
    presets = "\n".join(f"  {n}: {d}" for n, (d, _) in PRESETS.items())
    config = tyro.cli(
        RunConfig, default=default, args=rest, prog=prog,
        description=(
            f"{prog}: meta-train a BLUR genome. --preset NAME picks a preset (default "
            f"{default_preset}), or --config FILE a config.json / a sweep's best_config.json; "
            f"every field below can be overridden; --resume RUN_DIR continues a run."
            f"\n\nPresets:\n{presets}"
        ),
    )
    if config.method != method:
        raise SystemExit(f"{prog}: --method {config.method} does not fit {prog}; use "
                         f"`blur {'evolve' if config.method == 'cma' else 'meta-train'}`")
    return config, False


def base_config(prog: str, preset: str | None, config: Path | None,
                default_preset: str) -> RunConfig:
    """The starting config: a preset (default ``default_preset``) or a config.json file
    (``run_dir`` cleared). Bad names or files exit with a message naming the fix."""
    if preset and config:
        raise SystemExit(f"{prog}: give --preset or --config, not both")
    if config is not None:
        from blur.experiments.config import config_from_json

        try:
            loaded = config_from_json(config.read_text("utf-8"))
        except FileNotFoundError:
            raise SystemExit(f"{prog}: --config {config}: no such file") from None
        except (ValueError, TypeError) as e:
            raise SystemExit(f"{prog}: --config {config} is not a valid run config: {e}") from None
        return dataclasses.replace(loaded, run_dir=None)
    try:
        return get_preset(preset or default_preset)
    except ValueError as e:
        raise SystemExit(f"{prog}: {e}") from None


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("jax").setLevel(logging.WARNING)


def _report(result: object, config: RunConfig) -> None:
    from blur.experiments.loop import RunResult

    assert isinstance(result, RunResult)
    unit = "meta-step" if config.method == "gradient" else "generation"
    s = result.summary
    if config.method == "gradient":
        counters = f"skipped updates per run: {s.get('skipped')}"
        if s.get("dropped"):
            counters += f"; dropped runs (diverged): {s['dropped']}"
        if "restarts" in s:
            counters += f"; runs restarted from a better run: {s['restarts']}"
    else:
        counters = (f"diverged candidates: {s.get('diverged', 0)} of {s.get('scored', 0)}; "
                    f"restarts: {s.get('restarts', 0)}")
    if "output_scale" in s:
        counters += f"; output scale x{s['output_scale']:g} chosen on validation"
    if "hebbian_decay" in s:
        counters += f"; Hebbian decay {s['hebbian_decay']:g} chosen on validation"
    print(f"\nselected: run {result.best_run} at {unit} {result.best_step}, validation "
          f"{100 * result.best_score:.1f}%; wall time {result.wall_time:.0f} s; {counters}")
    if result.table:
        baselines = ", ".join(b.upper() for b in config.evaluation.baselines)
        print(f"\nthe selected genome vs tuned {baselines} on {config.evaluation.num_tasks} fresh "
              "tasks per family (query accuracy %, mean ± s.e. after N inner steps; the tuned "
              "learning rate in brackets; BLUR minus the baseline on the same tasks with its "
              f"95% interval):\n{result.table}")
    d = result.run_dir
    print(f"\ngenome: {d / 'genome.json'}  metrics: {d / 'metrics.jsonl'}  "
          f"table: {d / 'eval.md'}  plots: {d / 'meta_training.png'}, "
          f"{d / 'accuracy_vs_step.png'}")


def _main(argv: list[str], prog: str, default_preset: str, method: str) -> int:
    config, resume = _parse(argv, prog, default_preset, method)
    _setup_logging()
    from blur.experiments.loop import run
    from blur.outer.sharding import is_primary

    primary = is_primary()  # one process, or process 0 of several: the one that prints
    if not resume and primary:
        print(f"run folder: {config.resolved_run_dir()} (full config in config.json)",
              file=sys.stderr)
    result = run(config, resume=resume)
    if primary:
        _report(result, config)
    return 0


def main_meta_train(argv: list[str]) -> int:
    return _main(argv, "blur meta-train", "toy2d", "gradient")


def main_evolve(argv: list[str]) -> int:
    return _main(argv, "blur evolve", "cma-mnist14", "cma")
