"""``blur``: a thin command line over the library. Each subcommand parses a typed config with
tyro and calls one library function."""

from __future__ import annotations

import os
import sys

# The commands that run JAX computations long enough for the allocator setting to matter; the
# rest (data, genomes, plot, help) start without re-executing.
COMPUTE_COMMANDS = ("meta-train", "evolve", "sweep", "evaluate", "compare", "bench", "reproduce")

COMMANDS = {
    "meta-train": ("blur.cli.train", "main_meta_train", "gradient meta-training (preset toy2d)"),
    "evolve": ("blur.cli.train", "main_evolve", "CMA-ES meta-training (preset cma-mnist14)"),
    "sweep": ("blur.cli.sweep", "main", "Optuna search over config fields, one run per trial"),
    "evaluate": ("blur.cli.evaluate", "main", "a genome vs tuned SGD/Adam on task families"),
    "compare": ("blur.cli.compare", "main", "several genomes vs the best tuned baseline"),
    "genomes": ("blur.cli.genomes", "main", "the shipped pretrained genomes and their cards"),
    "plot": ("blur.cli.plot", "main", "PNG plots of a run folder"),
    "bench": ("blur.cli.bench", "main", "speed benchmarks (ratios to SGD, same process)"),
    "data": ("blur.cli.data", "main", "fetch / import / list data sets"),
    "reproduce": ("blur.cli.reproduce", "main", "one experiment of the paper (--list)"),
}


def usage() -> str:
    lines = ["usage: blur COMMAND [ARGS...]   (blur COMMAND --help for its options)", ""]
    lines += [f"  {name:<11} {desc}" for name, (_, _, desc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        _reexec_with_huge_pages((sys.argv[1:2] or ["meta-train"])[0])
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        if not argv:
            argv = ["meta-train"]  # the main job: `blur` alone == `blur meta-train`
        else:
            print(usage())
            return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"blur: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    import importlib

    if os.environ.get("BLUR_COORDINATOR"):
        # BLUR_COORDINATOR / BLUR_NUM_PROCESSES / BLUR_PROCESS_ID: join the multi-process run
        # before any JAX computation (blur.outer.sharding).
        from blur.outer.sharding import initialize_distributed

        initialize_distributed()

    try:
        return int(getattr(importlib.import_module(module), func)(rest) or 0)
    except Exception as e:
        if not _is_user_error(e):
            raise
        print(f"blur {name}: error: {e}", file=sys.stderr)
        return 1


def _reexec_with_huge_pages(command: str) -> None:
    """Re-execute this process, same interpreter and arguments, with glibc's huge-page tunable
    set (:mod:`blur._allocator`): the console script's compute commands only, and once (the new
    process finds the tunable set). ``BLUR_HUGEPAGES=0`` runs without it."""
    from blur._allocator import tuned_environ

    argv = getattr(sys, "orig_argv", None)
    env = tuned_environ(os.environ)
    if env is None or not argv or command not in COMPUTE_COMMANDS:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, argv, env)
    except OSError:  # no exec here (odd sandboxes): run on without the setting
        return


def _is_user_error(error: Exception) -> bool:
    """Bad input files or run folders: reported in one line (the message names the file and
    the fix), not as a traceback."""
    from blur.data.errors import DataError
    from blur.experiments.runs import RunDirError
    from blur.genome import GenomeFormatError
    from blur.io.checkpoint import CheckpointError

    return isinstance(error, RunDirError | GenomeFormatError | CheckpointError | DataError)


if __name__ == "__main__":
    sys.exit(main())
