"""``blur reproduce EXPERIMENT``: one paper experiment into a run folder (issue 13).

``blur reproduce --list`` names every experiment with its paper section, estimated CPU time and
whether it is implemented yet.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

ABLATIONS = ("states", "normalisation", "activations", "depth-transfer", "variants",
             "stability", "unsupervised")
OPTIONS: dict[str, tuple[str, ...]] = {
    "genome": ("symmetry", "sgd-sweep", "depth-transfer", "mnist-generalisation",
               "unsupervised"),
    "tasks": ("sgd-sweep",),
    "num_tasks": ("sgd-sweep",),
    "query_size": ("sgd-sweep",),
    "rules": ("symmetry",),
    "variants": ABLATIONS,
    "meta_steps": (*ABLATIONS, "toy", "cma-vs-gradient", "omniglot"),
    "num_runs": (*ABLATIONS, "toy", "cma-vs-gradient", "omniglot"),
    "generations": ("cma-vs-gradient",),
    "popsize": ("cma-vs-gradient",),
    "states": ("activations",),
    "eval_depths": ("depth-transfer",),
    "num_steps": ("stability",),
    "switch": ("stability",),
}
"""Each experiment-specific option and the experiments that take it."""


def parser() -> argparse.ArgumentParser:
    from blur.experiments.reproduce import EXPERIMENTS, SCALES

    p = argparse.ArgumentParser(
        prog="blur reproduce",
        description="Reproduce one experiment of the paper: a run folder with its figure(s) "
        "as PNG, table.md, table.json and run.json. `--list` shows them all.",
    )
    p.add_argument("experiment", nargs="?", help=f"one of: {', '.join(EXPERIMENTS)}")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder (default runs/reproduce/EXPERIMENT)")
    p.add_argument("--scale", choices=SCALES, default="small",
                   help="small (default, fits a 2-core CPU), paper (the paper's size), "
                   "tiny (seconds, for tests)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.add_argument("--genome", type=Path, default=None,
                   help="a genome file (symmetry: the learned rule; sgd-sweep: the genome; "
                   "depth-transfer: a shared genome evaluated instead of meta-training; "
                   "mnist-generalisation, unsupervised: a shipped name or file, default "
                   "mnist-k4)")
    p.add_argument("--tasks", nargs="+", default=None,
                   help="sgd-sweep: task families (default: the scale's)")
    p.add_argument("--num-tasks", type=int, default=None,
                   help="sgd-sweep: tasks per family (default: the scale's)")
    p.add_argument("--query-size", type=int, default=None,
                   help="sgd-sweep: query examples per task (default: the scale's)")
    p.add_argument("--rules", nargs="+", default=None,
                   help="symmetry: the rules to analyse (backprop feedback-alignment delta "
                   "learned; default all)")
    p.add_argument("--variants", nargs="+", default=None,
                   help="ablations: the variants to run (states: k2 k3 k4 k8 k16; "
                   "normalisation: none forward backward both; activations: FWD/BWD pairs, "
                   "e.g. relu/tanh; variants: sym|asym-single|multi-bp|rand; depth-transfer: "
                   "train1L train2L ...; stability: oja none normalize normalize+oja; "
                   "unsupervised: off on, meta-trained instead of evaluating a genome)")
    p.add_argument("--meta-steps", type=int, default=None,
                   help="ablations, toy, cma-vs-gradient, omniglot: meta-steps per variant "
                   "(default: the scale's)")
    p.add_argument("--num-runs", type=int, default=None,
                   help="ablations, toy, cma-vs-gradient, omniglot: best-of-N runs per "
                   "variant "
                   "(default: the scale's)")
    p.add_argument("--generations", type=int, default=None,
                   help="cma-vs-gradient: CMA-ES generations (default: the scale's)")
    p.add_argument("--popsize", type=int, default=None,
                   help="cma-vs-gradient: CMA-ES population (default: the scale's)")
    p.add_argument("--states", type=int, nargs="+", default=None,
                   help="activations: numbers of states to cross the pairs with")
    p.add_argument("--eval-depths", type=int, nargs="+", default=None,
                   help="depth-transfer: numbers of hidden layers to evaluate at")
    p.add_argument("--num-steps", type=int, default=None,
                   help="stability: inner steps of the evaluation (default: the scale's)")
    p.add_argument("--switch", type=int, default=None,
                   help="stability: the first inner step with permuted labels (0-based batch "
                   "index; default: the scale's)")
    return p


def list_text() -> str:
    from blur.experiments.reproduce import EXPERIMENTS

    rows = [("experiment", "paper", "implemented", "CPU time (small scale)", "reproduces")]
    rows += [(e.name, e.section, "yes" if e.implemented else "NO", e.cpu_time, e.reproduces)
             for e in EXPERIMENTS.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True))
                     + "  " + r[4] for r in rows)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.list:
        print(list_text())
        return 0
    if args.experiment is None:
        parser().error("name an EXPERIMENT, or --list to see them")
    from blur.experiments.reproduce import (
        ExperimentNotImplementedError,
        check_runnable,
        run_experiment,
    )

    try:
        check_runnable(args.experiment)
    except (ValueError, ExperimentNotImplementedError) as e:  # unknown, or listed but not built
        print(f"blur reproduce: error: {e}", file=sys.stderr)
        return 2
    options = {}
    for name, value in vars(args).items():
        if name in ("experiment", "list", "out", "scale", "seed") or value is None:
            continue
        allowed = OPTIONS.get(name, ())
        if args.experiment not in allowed:
            parser().error(f"--{name.replace('_', '-')} applies to {', '.join(allowed)} only")
        options[name] = tuple(value) if isinstance(value, list) else value
    out = args.out or Path("runs") / "reproduce" / args.experiment
    command = shlex.join(["blur", "reproduce", *argv])
    try:
        outcome = run_experiment(args.experiment, out, args.scale, args.seed, command=command,
                                 **options)
    except ValueError as e:  # a bad option value (the message names it and the fix)
        print(f"blur reproduce: error: {e}", file=sys.stderr)
        return 2
    print(outcome.markdown)
    print(f"\nwrote {outcome.out} ({', '.join(p.name for p in outcome.figures)}, table.md, "
          f"table.json, run.json) in {outcome.wall_s:.1f} s")
    return 0
