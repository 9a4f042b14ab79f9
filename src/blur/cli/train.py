"""``blur meta-train`` and ``blur evolve``: pick a preset, override any field, run or resume."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import tyro

from blur.experiments.config import PRESETS, RunConfig, config_to_json, get_preset


def _parse(argv: list[str], prog: str, default_preset: str) -> tuple[RunConfig, bool]:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=default_preset)
    pre.add_argument("--resume", type=Path, default=None)
    known, rest = pre.parse_known_args(argv)
    wants_help = any(a in ("-h", "--help") for a in rest)
    if known.resume is not None and not wants_help:  # --help goes to tyro (it prints, exits)
        from blur.experiments.runs import load_run_config

        if rest:
            raise SystemExit(f"{prog}: --resume takes no other options (the run's config.json "
                             f"is used as written); got {rest}")
        return load_run_config(known.resume), True
    try:
        default = get_preset(known.preset)
    except ValueError as e:
        raise SystemExit(f"{prog}: {e}") from None
    presets = "\n".join(f"  {n}: {d}" for n, (d, _) in PRESETS.items())
    config = tyro.cli(
        RunConfig, default=default, args=rest, prog=prog,
        description=(
            f"{prog}: meta-train a BLUR genome. --preset NAME picks a preset (default "
            f"{default_preset}); every field below can be overridden; --resume RUN_DIR "
            f"continues a run.\n\nPresets:\n{presets}"
        ),
    )
    return config, False


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("jax").setLevel(logging.WARNING)


def main_meta_train(argv: list[str]) -> int:
    config, resume = _parse(argv, "blur meta-train", "toy2d")
    _setup_logging()
    from blur.experiments.meta_train import meta_train

    if not resume:
        print(f"config ({config.resolved_run_dir()}/config.json):\n{config_to_json(config)}",
              file=sys.stderr)
    result = meta_train(config, resume=resume)
    print(f"\nrun folder: {result.run_dir}")
    print(f"wall time: {result.wall_time:.1f} s; best meta-validation accuracy "
          f"{100 * result.best_score:.1f}% (meta-step {result.best_step}); "
          f"skipped updates per run: {result.skipped}")
    print(f"\nlearned genome vs tuned SGD on held-out tasks (query accuracy %, "
          f"after N inner steps; SGD's best learning rate in brackets):\n{result.table}")
    return 0


def main_evolve(argv: list[str]) -> int:
    config, resume = _parse(argv, "blur evolve", "cma-mnist14")
    _setup_logging()
    from blur.experiments.evolve import evolve

    result = evolve(config, resume=resume)
    print(f"\nrun folder: {result.run_dir}")
    print(f"wall time: {result.wall_time:.1f} s; best meta-validation accuracy "
          f"{100 * result.best_score:.1f}% (generation {result.best_step})")
    print(f"\nevolved genome vs tuned baselines (query accuracy %):\n{result.table}")
    return 0
