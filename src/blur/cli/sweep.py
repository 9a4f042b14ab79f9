"""``blur sweep``: Optuna search over RunConfig fields (blur.experiments.sweep), one run folder
per trial, resumable, shareable between workers through an RDB storage."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import tyro

from blur.experiments.config import PRESETS, RunConfig, get_preset

PROG = "blur sweep"

EXAMPLES = """\
space entries (FIELD=SPEC; FIELD as the CLI names it, e.g. gradient.learning-rate):
  choice:a,b,c | float:lo,hi | int:lo,hi | log:lo,hi   (tuple fields: choice:[8],[16,16])
  a .toml / .json file: FIELD = "log:1e-4,1e-2", FIELD = [choice, ...], or [group] tables

storage: SQLite in DIR by default; --storage URL (postgresql://USER@HOST/DB, mysql://...) with
  --study-name lets several workers (each with its own --sweep-dir) share one study. The
  password comes from $BLUR_SWEEP_DB_PASSWORD or ${VAR} in the URL and is never saved.

examples:
  blur sweep --preset toy2d --trials 20 --sweep-dir sweeps/toy2d-lr \\
      --space gradient.learning-rate=log:1e-3,3e-2 --space network.hidden=choice:[20],[32]
  blur sweep --sweep-dir sweeps/toy2d-lr --resume
"""


def _options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, allow_abbrev=False, add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Search RunConfig fields with Optuna (TPE + a pruner on the validation "
                    "score); each trial is a run folder DIR/trial_NNNN. Any other --FIELD VALUE "
                    "overrides the base config, as for blur meta-train.",
    )
    p.add_argument("--preset", default=None, help=f"base preset (default toy2d): {list(PRESETS)}")
    p.add_argument("--config", type=Path, default=None, help="base config.json instead")
    p.add_argument("--method", choices=("gradient", "cma"), default=None,
                   help="meta-optimiser (default: the preset's)")
    p.add_argument("--space", action="append", default=[], metavar="FILE|FIELD=SPEC",
                   help="a space file (.toml/.json) or one entry; repeatable")
    p.add_argument("--trials", type=int, default=None, help="trials this worker runs (default 20)")
    p.add_argument("--sweep-dir", type=Path, default=None, help="the sweep folder (required)")
    p.add_argument("--storage", default=None, help="Optuna RDB URL (default sqlite in DIR)")
    p.add_argument("--study-name", default=None, help="study name (needed with --storage)")
    p.add_argument("--resume", action="store_true", help="continue the sweep in --sweep-dir")
    p.add_argument("--sampler-seed", type=int, default=0, help="TPE seed (default 0)")
    p.add_argument("--tpe-startup-trials", type=int, default=10,
                   help="random trials before TPE (default 10)")
    p.add_argument("--pruner", choices=("median", "halving", "none"), default="median")
    p.add_argument("--pruner-startup-trials", type=int, default=3,
                   help="finished trials before the median pruner acts (default 3)")
    p.add_argument("--pruner-warmup-steps", type=int, default=1,
                   help="meta-steps before a trial can be pruned (default 1)")
    p.add_argument("--evaluate", action="store_true",
                   help="also run each trial's final evaluation table (slow)")
    p.add_argument("--top", type=int, default=5, help="rows of the best-trials table")
    p.add_argument("-h", "--help", action="store_true")
    return p


def _space_entries(specs: list[str]) -> dict[str, object]:
    from blur.experiments.sweep import SpaceError, load_space_file, normalise_field, parse_space_arg

    entries: dict[str, object] = {}
    for spec in specs:
        if "=" in spec:
            items = [parse_space_arg(spec)]
        else:
            items = list(load_space_file(spec).items())
        for name, value in items:
            key = normalise_field(name)
            if key in entries:
                raise SpaceError(f"sweep space field {key!r} is given twice; keep one entry")
            entries[key] = value
    return entries


def _base_config(known: argparse.Namespace, rest: list[str]) -> RunConfig:
    from blur.cli.train import base_config

    default = base_config(PROG, known.preset, known.config, "toy2d")
    if known.method:
        default = dataclasses.replace(default, method=known.method)
    if any(a == "--run-dir" or a.startswith("--run-dir=") for a in rest):
        raise SystemExit(f"{PROG}: the sweep names each trial's folder (DIR/trial_NNNN); give "
                         "--sweep-dir DIR instead of --run-dir")
    config = tyro.cli(RunConfig, default=dataclasses.replace(default, run_dir=None), args=rest,
                      prog=PROG, description="the base run config; override any field")
    if known.method and config.method != known.method:
        raise SystemExit(f"{PROG}: give the method once, with --method")
    return config


def main(argv: list[str]) -> int:
    parser = _options()
    known, rest = parser.parse_known_args(argv)
    if known.help:
        parser.print_help()
        print("\nbase run config fields (as for blur meta-train / blur evolve):")
        tyro.cli(RunConfig, default=get_preset("toy2d"), args=["--help"], prog=PROG)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("jax").setLevel(logging.WARNING)
    from blur.experiments.sweep import (
        SpaceError,
        SweepError,
        SweepSettings,
        load_settings,
        run_sweep,
    )

    if known.sweep_dir is None:
        print(f"{PROG}: error: give --sweep-dir DIR (the sweep folder)", file=sys.stderr)
        return 2
    try:
        if known.resume:
            extra = [a for a in argv if a.startswith("--") and a.split("=")[0] not in (
                "--resume", "--sweep-dir", "--trials", "--storage")]
            if extra or known.space:
                raise SweepError(f"--resume takes only --sweep-dir, --trials and --storage (the "
                                 f"rest is read from {known.sweep_dir}/sweep.json); got {extra}")
            settings, base, entries = load_settings(known.sweep_dir)
            changes = {}
            if known.trials is not None:
                changes["trials"] = known.trials
            if known.storage is not None:
                changes["storage"] = known.storage
            settings = dataclasses.replace(settings, **changes)
        else:
            base = _base_config(known, rest)
            entries = _space_entries(known.space)
            settings = SweepSettings(
                sweep_dir=known.sweep_dir,
                trials=20 if known.trials is None else known.trials,
                storage=known.storage, study_name=known.study_name,
                sampler_seed=known.sampler_seed, tpe_startup_trials=known.tpe_startup_trials,
                pruner=known.pruner, pruner_startup_trials=known.pruner_startup_trials,
                pruner_warmup_steps=known.pruner_warmup_steps, evaluate=known.evaluate,
                top=known.top,
            )
        result = run_sweep(base, entries, settings, resume=known.resume)
    except (SpaceError, SweepError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(f"\nbest trials of study {settings.name()!r} (validation score, maximised):")
    print(result.table)
    where = f"best config: {result.best_config}" if result.best_config else "no completed trial"
    print(f"\n{where}  all trials: {result.trials_csv}")
    if result.best_config:
        flag = "evolve" if base.method == "cma" else "meta-train"
        print(f"train it: blur {flag} --config {result.best_config}")
    return 0
